"""Synthetic noise models shared by training, tests, SVNR and the benchmarks.

All take clean images ``x`` (B, C, H, W) in [0, 1], standard deviations on the [0, 1] scale, and
an optional seeded ``torch.Generator``; none of them clips the result (a benchmark that wants an
8-bit-like observation clips explicitly).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..denoisers.protocol import as_sigma
from ..errors import DenoiselabError

__all__ = ["add_gaussian_noise", "add_poisson_gaussian_noise", "poisson_gaussian_sigma", "add_correlated_noise", "bayer_demosaic"]


def _randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


def add_gaussian_noise(x: Tensor, sigma: float | Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Additive Gaussian noise ``y = x + sigma·n``, n ~ N(0, I); white when sigma is a float or (B,).

    `sigma` may also be a (B, 1, H, W) or (B, C, H, W) map of per-pixel standard deviations.

    Examples
    --------
    >>> x = torch.full((1, 1, 64, 64), 0.5)
    >>> y = add_gaussian_noise(x, 0.1, generator=torch.Generator().manual_seed(0))
    >>> round(float((y - x).std()), 2)
    0.1
    """
    return x + as_sigma(sigma, x) * _randn_like(x, generator)


def poisson_gaussian_sigma(x: Tensor, read_sigma: float, shot_sigma: float) -> Tensor:
    """Per-pixel std of shot + read noise: ``σ² = read_sigma² + shot_sigma²·x`` (x clipped at 0).

    Parameters
    ----------
    x : Tensor (B, C, H, W)
        Clean intensities in [0, 1] (linear, not gamma-encoded, for a physical sensor model).
    read_sigma : float
        Signal-independent (read) noise std, [0, 1] scale, >= 0.
    shot_sigma : float
        Shot-noise gain: a pixel of value x has shot variance ``shot_sigma²·x``, >= 0.
    """
    if read_sigma < 0 or shot_sigma < 0:
        raise DenoiselabError(f"read_sigma={read_sigma} and shot_sigma={shot_sigma} must be >= 0")
    return (read_sigma**2 + shot_sigma**2 * x.clamp_min(0)).sqrt()


def add_poisson_gaussian_noise(x: Tensor, read_sigma: float, shot_sigma: float, *, exact: bool = False,
                               generator: torch.Generator | None = None) -> Tensor:
    """Shot + read noise, ``σ² = read_sigma² + shot_sigma²·x``.

    With ``exact=False`` (default) the heteroscedastic Gaussian approximation
    ``y = x + σ(x)·n``; with ``exact=True`` a scaled Poisson count plus Gaussian read noise,
    ``y = shot_sigma²·Poisson(x / shot_sigma²) + read_sigma·n``, which has the same mean and variance.

    Examples
    --------
    >>> x = torch.full((1, 1, 128, 128), 0.25)
    >>> y = add_poisson_gaussian_noise(x, 0.02, 0.1, generator=torch.Generator().manual_seed(0))
    >>> round(float((y - x).var()), 4)  # 0.02² + 0.1²·0.25 = 0.0029
    0.0029
    """
    if not exact or shot_sigma == 0:
        return x + poisson_gaussian_sigma(x, read_sigma, shot_sigma) * _randn_like(x, generator)
    gain = shot_sigma**2
    device = generator.device if generator is not None else x.device
    rate = (x.clamp_min(0) / gain).to(device)
    counts = torch.poisson(rate, generator=generator).to(x.device, x.dtype)
    return gain * counts + read_sigma * _randn_like(x, generator)


def add_correlated_noise(x: Tensor, sigma: float, *, correlation_px: float = 1.0,
                         generator: torch.Generator | None = None) -> Tensor:
    """Spatially correlated Gaussian noise of marginal std `sigma`.

    White noise is blurred by a Gaussian kernel of std `correlation_px` pixels (per channel) and
    rescaled so each pixel's std is exactly `sigma` — a stand-in for the demosaicing and
    in-camera processing that make real sRGB noise structured.

    Examples
    --------
    >>> x = torch.zeros(1, 1, 128, 128)
    >>> y = add_correlated_noise(x, 0.1, correlation_px=1.5, generator=torch.Generator().manual_seed(0))
    >>> round(float(y.std()), 1), bool(torch.corrcoef(torch.stack([y[0,0,:,:-1].flatten(), y[0,0,:,1:].flatten()]))[0, 1] > 0.5)
    (0.1, True)
    """
    if correlation_px <= 0:
        raise DenoiselabError(f"correlation_px={correlation_px} must be > 0 (use add_gaussian_noise for white noise)")
    radius = max(1, int(3 * correlation_px + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k1 = torch.exp(-0.5 * (t / correlation_px) ** 2)
    k2 = (k1[:, None] * k1[None, :])
    k2 = k2 / k2.pow(2).sum().sqrt()  # unit energy: filtered white noise keeps unit variance
    c = x.shape[1]
    n = _randn_like(x, generator)
    n = torch.nn.functional.pad(n, (radius,) * 4, mode="circular")
    n = torch.nn.functional.conv2d(n, k2.expand(c, 1, -1, -1).contiguous(), groups=c)
    return x + sigma * n


def bayer_demosaic(x: Tensor) -> Tensor:
    """Sample RGB images on an RGGB colour-filter array and interpolate them back bilinearly.

    A stand-in for a camera's demosaicking: each output pixel keeps the one colour its site
    sampled and averages the others from its 2 or 4 nearest sites of that colour, so noise
    added before this step becomes spatially correlated and its variance depends on the
    site's place in the 2×2 cell (an interpolated red or blue value averages 2 or 4 samples:
    1/2 or 1/4 of the variance). Borders are reflected.

    Parameters
    ----------
    x : Tensor, shape (B, 3, H, W)
        Linear RGB images (any scale), H and W even.

    Returns
    -------
    Tensor, shape (B, 3, H, W)
        The demosaicked images, same dtype and device.

    Examples
    --------
    >>> x = torch.rand(1, 3, 8, 8)
    >>> y = bayer_demosaic(x)
    >>> bool(torch.equal(y[0, 0, 0::2, 0::2], x[0, 0, 0::2, 0::2]))   # red sites keep their red
    True
    >>> bool(torch.allclose(bayer_demosaic(torch.full((1, 3, 4, 4), 0.5)), torch.tensor(0.5)))
    True
    """
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[-2] % 2 or x.shape[-1] % 2:
        raise DenoiselabError(f"bayer_demosaic needs (B, 3, H, W) images with even H and W, got shape {tuple(x.shape)}")
    mask = torch.zeros_like(x[:1])
    mask[0, 0, 0::2, 0::2] = mask[0, 2, 1::2, 1::2] = 1
    mask[0, 1, 0::2, 1::2] = mask[0, 1, 1::2, 0::2] = 1
    k_rb = torch.tensor([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]], dtype=x.dtype, device=x.device)
    k_g = torch.tensor([[0.0, 0.25, 0.0], [0.25, 1.0, 0.25], [0.0, 0.25, 0.0]], dtype=x.dtype, device=x.device)
    kernels = torch.stack([k_rb, k_g, k_rb])[:, None]
    return torch.nn.functional.conv2d(torch.nn.functional.pad(x * mask, (1, 1, 1, 1), mode="reflect"), kernels, groups=3)
