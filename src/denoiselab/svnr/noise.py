"""SVNR's noise model in linear RGB: shot + read noise with a per-pixel variance.

Where the gamma lives. Users (and our image files) hold sRGB values in [0, 1]; the noise model
and the networks work in *linear* values scaled by a white level w ([reconstructed]):

    x = srgb_to_linear(x_srgb) / w                               (:func:`to_linear`)
    y = max(x + σ ⊙ n, 0),  σ² = σ_r² + σ_s² · x,  σ >= 1e-3      (:func:`add_svnr_noise`)
    x_srgb ≈ linear_to_srgb(clip(x̂ · w, 0, 1))                    (:func:`to_srgb`)

so the only conversions are at the two ends: sRGB → linear before the noise (training, and a
benchmark that simulates noise on clean sRGB images) and linear → sRGB after the sampler (to
save or score a result). The sampler itself never sees sRGB values. Dividing by w <= 1
brightens, so clean linear values reach 1/w (up to 10); noisy values are clipped at 0 only.

At test time the clean image is unknown and the variance is estimated from the noisy one,
``σ̂² = σ_r² + σ_s² · clip(y, 0, 1/w)`` (:func:`estimate_variance`; w = 1 gives the notes'
``clip(y, 0, 1)``). Training draws σ_r, σ_s, w per image (:func:`draw_noise_params`), by
default from the narrower [guess] ranges σ_r ~ U(1e-3, 0.2), σ_s ~ U(1e-4, 0.05), w ~ U(0.1, 1).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from ..errors import DenoiselabError
from ..noise.models import poisson_gaussian_sigma

__all__ = ["SIGMA_FLOOR", "READ_RANGE", "SHOT_RANGE", "WHITE_RANGE", "VARIANCES", "srgb_to_linear", "linear_to_srgb",
           "to_linear", "to_srgb", "svnr_variance", "add_svnr_noise", "estimate_variance", "draw_noise_params",
           "make_noisy_batch"]

SIGMA_FLOOR = 1e-3
READ_RANGE = (1e-3, 0.2)   # [guess]; the notes' wide range is (1e-3, 0.5)
SHOT_RANGE = (1e-4, 0.05)  # [guess]; the notes' wide range is (1e-4, 0.3)
WHITE_RANGE = (0.1, 1.0)


def _check_image(name: str, x) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise DenoiselabError(f"{name} must be a float (B, C, H, W) tensor, got {shape}")
    return x


def srgb_to_linear(x: Tensor) -> Tensor:
    """Inverse sRGB transfer function (IEC 61966-2-1) on values clipped to [0, 1].

    Examples
    --------
    >>> [round(v, 4) for v in srgb_to_linear(torch.tensor([0.0, 0.04, 0.5, 1.0])).tolist()]
    [0.0, 0.0031, 0.214, 1.0]
    """
    x = x.clamp(0, 1)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: Tensor) -> Tensor:
    """sRGB transfer function (IEC 61966-2-1) on linear values clipped to [0, 1].

    Examples
    --------
    >>> x = torch.linspace(0, 1, 11)
    >>> bool(torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-6))
    True
    """
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def _per_image(value: float | Tensor, x: Tensor, name: str) -> Tensor:
    """A float or (B,) tensor as a (B, 1, 1, 1) float64 tensor on x's device."""
    v = torch.as_tensor(value, dtype=torch.float64).to(x.device)
    if v.ndim == 0:
        v = v.expand(x.shape[0])
    if v.shape != (x.shape[0],):
        raise DenoiselabError(f"{name} must be a number or one value per image, shape ({x.shape[0]},); got {tuple(v.shape)}")
    if not bool(torch.isfinite(v).all()):
        raise DenoiselabError(f"{name} must be finite, got {v.tolist()}")
    return v.view(-1, 1, 1, 1)


def to_linear(x_srgb: Tensor, white_level: float | Tensor = 1.0) -> Tensor:
    """sRGB images in [0, 1] to the model's linear scale: ``srgb_to_linear(x) / w``.

    Parameters
    ----------
    x_srgb : Tensor (B, C, H, W)
        sRGB values in [0, 1] (clipped there).
    white_level : float or Tensor (B,)
        w in (0, 1]; values then reach 1/w.

    Examples
    --------
    >>> round(float(to_linear(torch.full((1, 1, 1, 1), 0.5), 0.5)), 3)        # 0.214 / 0.5
    0.428
    """
    _check_image("x_srgb", x_srgb)
    w = _per_image(white_level, x_srgb, "white_level")
    if float(w.min()) <= 0:
        raise DenoiselabError(f"white_level must be > 0, got {w.flatten().tolist()}")
    return (srgb_to_linear(x_srgb) / w).to(x_srgb.dtype)


def to_srgb(x_lin: Tensor, white_level: float | Tensor = 1.0) -> Tensor:
    """Back from the linear scale to sRGB in [0, 1]: ``linear_to_srgb(clip(x · w, 0, 1))``.

    Examples
    --------
    >>> x = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.allclose(to_srgb(to_linear(x, 0.3), 0.3), x, atol=1e-5))
    True
    """
    _check_image("x_lin", x_lin)
    w = _per_image(white_level, x_lin, "white_level")
    if float(w.min()) <= 0:
        raise DenoiselabError(f"white_level must be > 0, got {w.flatten().tolist()}")
    return linear_to_srgb(x_lin.to(torch.float64) * w).to(x_lin.dtype)


def svnr_variance(x: Tensor, read_sigma: float | Tensor, shot_sigma: float | Tensor) -> Tensor:
    """Per-pixel noise variance ``max(σ_r² + σ_s² · max(x, 0), SIGMA_FLOOR²)``.

    Parameters
    ----------
    x : Tensor (B, C, H, W)
        Linear intensities (clean ones for simulation, clipped noisy ones for estimation).
    read_sigma, shot_sigma : float or Tensor (B,)
        σ_r and σ_s, >= 0, one value or one per image.

    Returns
    -------
    sigma2 : Tensor, shape and dtype of `x`

    Examples
    --------
    >>> x = torch.tensor([0.0, 0.25, 1.0]).view(1, 1, 1, 3)
    >>> [round(v, 6) for v in svnr_variance(x, 0.02, 0.1).flatten().tolist()]   # 0.02² + 0.1²·x
    [0.0004, 0.0029, 0.0104]
    """
    _check_image("x", x)
    r = _per_image(read_sigma, x, "read_sigma").flatten().tolist()
    s = _per_image(shot_sigma, x, "shot_sigma").flatten().tolist()
    if len(set(r)) == 1 and len(set(s)) == 1:  # one setting for the batch: one call
        sigma = poisson_gaussian_sigma(x, r[0], s[0])
    else:  # poisson_gaussian_sigma takes one (read, shot) pair: image by image
        sigma = torch.cat([poisson_gaussian_sigma(x[i : i + 1], r[i], s[i]) for i in range(x.shape[0])])
    return sigma.clamp_min(SIGMA_FLOOR) ** 2


def add_svnr_noise(x: Tensor, read_sigma: float | Tensor, shot_sigma: float | Tensor, *,
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Shot + read noise on linear images: ``y = max(x + σ ⊙ n, 0)``, ``σ² = svnr_variance(x, ...)``.

    Parameters
    ----------
    x : Tensor (B, C, H, W)
        Clean linear intensities, >= 0 (see :func:`to_linear`).
    read_sigma, shot_sigma : float or Tensor (B,)
        σ_r and σ_s, >= 0.
    generator : torch.Generator, optional
        Random source; draws are made on its device, then moved to x's.

    Returns
    -------
    y : Tensor, shape of `x`, >= 0
    sigma2 : Tensor, shape of `x`, the true per-pixel variance (before the clip at 0)

    Examples
    --------
    >>> x = torch.full((1, 1, 128, 128), 0.25)
    >>> y, s2 = add_svnr_noise(x, 0.02, 0.1, generator=torch.Generator().manual_seed(0))
    >>> round(float((y - x).var()), 4), round(float(s2[0, 0, 0, 0]), 4)
    (0.0029, 0.0029)
    """
    sigma2 = svnr_variance(x, read_sigma, shot_sigma)
    where = generator.device if generator is not None else x.device
    n = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=where).to(x.device)
    return (x + sigma2.sqrt() * n).clamp_min(0), sigma2


def estimate_variance(y: Tensor, read_sigma: float | Tensor, shot_sigma: float | Tensor, *,
                      white_level: float | Tensor = 1.0) -> Tensor:
    """Test-time variance from the noisy image: ``σ̂² = σ_r² + σ_s² · clip(y, 0, 1/w)``, floored at 1e-6.

    With the default w = 1 this is the notes' ``clip(y, 0, 1)``; the clean value cannot exceed 1/w.

    Examples
    --------
    >>> y = torch.tensor([-0.1, 0.5, 3.0]).view(1, 1, 1, 3)
    >>> [round(v, 5) for v in estimate_variance(y, 0.02, 0.1).flatten().tolist()]
    [0.0004, 0.0054, 0.0104]
    """
    _check_image("y", y)
    w = _per_image(white_level, y, "white_level")
    if float(w.min()) <= 0:
        raise DenoiselabError(f"white_level must be > 0, got {w.flatten().tolist()}")
    y_clean_range = torch.minimum(y.clamp_min(0).to(torch.float64), 1 / w).to(y.dtype)
    return svnr_variance(y_clean_range, read_sigma, shot_sigma)


def _check_range(name: str, lo_hi: Sequence[float], *, positive: bool = False) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in lo_hi)
    except (TypeError, ValueError) as err:
        raise DenoiselabError(f"{name}={lo_hi!r} must be a pair (low, high)") from err
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi) or (positive and lo <= 0):
        bound = "0 < low" if positive else "0 <= low"
        raise DenoiselabError(f"{name}={lo_hi!r} must satisfy {bound} <= high (finite)")
    return lo, hi


def draw_noise_params(batch: int, *, read_range: Sequence[float] = READ_RANGE, shot_range: Sequence[float] = SHOT_RANGE,
                      white_range: Sequence[float] = WHITE_RANGE,
                      generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Per-image σ_r, σ_s and white level w, each uniform in its range (float64 tensors, shape (batch,)).

    Examples
    --------
    >>> r, s, w = draw_noise_params(4, generator=torch.Generator().manual_seed(0))
    >>> bool(((r >= 1e-3) & (r <= 0.2)).all() and ((s >= 1e-4) & (s <= 0.05)).all() and ((w >= 0.1) & (w <= 1)).all())
    True
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise DenoiselabError(f"batch={batch!r} must be a positive integer")
    (r0, r1), (s0, s1) = _check_range("read_range", read_range), _check_range("shot_range", shot_range)
    w0, w1 = _check_range("white_range", white_range, positive=True)

    where = generator.device if generator is not None else "cpu"

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(batch, generator=generator, dtype=torch.float64, device=where).cpu()

    return uniform(r0, r1), uniform(s0, s1), uniform(w0, w1)


VARIANCES = ("estimated", "true")


def make_noisy_batch(x_srgb: Tensor, *, read_range: Sequence[float] = READ_RANGE, shot_range: Sequence[float] = SHOT_RANGE,
                     white_range: Sequence[float] = WHITE_RANGE, variance: str = "true",
                     generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """A training batch: clean sRGB patches to linear ``x0``, noisy ``y`` and a per-pixel variance ``sigma2``.

    Draws σ_r, σ_s, w per image (:func:`draw_noise_params`), then ``x0 = to_linear(x_srgb, w)``
    and ``y, sigma2 = add_svnr_noise(x0, σ_r, σ_s)``.

    Parameters
    ----------
    variance : {"true", "estimated"}, optional
        Which ``sigma2`` is returned: "true", the variance the noise was drawn with (from the
        clean ``x0``); "estimated", the one a sampler is given at test time,
        ``estimate_variance(y, σ_r, σ_s, white_level=w)`` (from the noisy ``y``).

    Returns
    -------
    x0, y, sigma2 : Tensor, shape of `x_srgb`, linear scale

    Examples
    --------
    >>> x0, y, s2 = make_noisy_batch(torch.rand(2, 3, 8, 8), generator=torch.Generator().manual_seed(0))
    >>> x0.shape == y.shape == s2.shape, bool((y >= 0).all()), bool((s2 >= 1e-6).all())
    (True, True, True)
    """
    _check_image("x_srgb", x_srgb)
    if variance not in VARIANCES:
        raise DenoiselabError(f"variance={variance!r} must be one of {', '.join(VARIANCES)}")
    r, s, w = draw_noise_params(x_srgb.shape[0], read_range=read_range, shot_range=shot_range,
                                white_range=white_range, generator=generator)
    x0 = to_linear(x_srgb, w)
    y, sigma2 = add_svnr_noise(x0, r, s, generator=generator)
    if variance == "estimated":
        sigma2 = estimate_variance(y, r, s, white_level=w)
    return x0, y, sigma2
