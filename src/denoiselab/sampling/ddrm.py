"""DDRM: denoising diffusion restoration for ``y = A x + σ_y n`` in the SVD coordinates of A.

Variance-exploding form with a σ-parameterised denoiser: the chain state at level σ_t is
``x_t ≈ x + σ_t ε`` and the model's clean estimate is ``x̂ = D(x_t, σ_t)``. With ``A = U diag(s) Vᵀ``,
``x̄ = Vᵀx`` and ``ȳ = Uᵀy / s`` (noise std σ_y/s_i on coefficient i), one step from σ_{t+1} to σ_t
draws each coefficient as (Kawar, Elad, Ermon & Song 2022, Eq. 7–8)::

    s_i = 0:                x̄_t = x̂ + √(1 − η²) σ_t (x̄_{t+1} − x̂)/σ_{t+1} + η σ_t ε
    σ_t < σ_y / s_i:        x̄_t = x̂ + √(1 − η²) σ_t (ȳ − x̂)/(σ_y/s_i)    + η σ_t ε
    σ_t ≥ σ_y / s_i:        x̄_t = (1 − η_b) x̂ + η_b ȳ + √(σ_t² − η_b² σ_y²/s_i²) ε

and the chain starts at ``x̄_T ~ N(ȳ, σ_T² − σ_y²/s_i²)`` (observed) or ``N(½, σ_T²)`` in image space
(unobserved; ½ is mid-grey on [0, 1], as 0 is on the [−1, 1] scale of diffusion models). The last
step goes to σ = 0, so the output is the last ``x̂`` (and exactly ``ȳ`` on noiseless coefficients).

Published settings: 20 steps, η = 0.85, η_b = 1 (the paper's main results). Deviation: DDRM's 20
levels are uniformly skipped timesteps of a linear-β VP diffusion (VE levels from ≈ 0.005 to ≈ 47 on
[0, 1]); we use 20 geometric levels from `sigma_max` to `sigma_min` = 0.01, because our denoisers
were trained only up to σ ≈ 0.39. When every singular value is positive (denoising, for example),
the default `sigma_max` is σ_y / min s: with η_b = 1 each level above it only redraws
``ȳ + noise`` from scratch, so starting there gives the same chain with no wasted calls (for
denoising, x̂ at the first step is the MMSE estimate ``D(y, σ_y)``). Otherwise it is
``max(1, σ_y / min s)``, enough to swamp the prior of [0, 1] images on the unobserved coefficients.

References
----------
B. Kawar, M. Elad, S. Ermon, J. Song, "Denoising diffusion restoration models", NeurIPS 2022,
arXiv:2201.11793 (Eq. 7–8, Sec. 4.3 and Appendix for η = 0.85, η_b = 1, 20 steps).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import DenoiselabError
from ..noise.schedules import sigmas_geometric
from ._common import check_count, check_denoiser, randn, resolve_generator
from ._spectral import check_levels, check_noise_sigma, check_observation, image_shape, spectral_view

__all__ = ["sample_ddrm"]


def _check_unit(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise DenoiselabError(f"{name}={value!r} must be a number in [0, 1]")
    return float(value)


@torch.no_grad()
def sample_ddrm(y: Tensor, op, denoiser: Callable[[Tensor, float], Tensor], *, sigma: float, eta: float = 0.85,
                eta_b: float = 1.0, n_steps: int = 20, sigmas: Tensor | None = None, sigma_max: float | None = None,
                sigma_min: float = 0.01, seed: int | None = None, generator: torch.Generator | None = None,
                progress: bool = False, callback: Callable[[dict[str, Any]], None] | None = None) -> Tensor:
    """Sample p(x | y) approximately for ``y = A x + σ_y n`` with DDRM and a denoiser.

    Parameters
    ----------
    y : Tensor
        Measurements ``A(x) + noise``, float, shape as ``op.A`` gives it.
    op : physics.DecomposableOperator
        The forward operator with its SVD: ``Identity``, ``BoxDownsample``, ``Inpainting``.
    denoiser : callable
        ``denoiser(x, sigma)``, an MMSE Gaussian denoiser on (B, C, H, W) images in [0, 1]; it is
        called once per step (`n_steps` calls).
    sigma : float
        σ_y, the std of the white Gaussian noise in `y` on [0, 1], in [0, 1] (0 = noiseless).
    eta : float, optional
        η in [0, 1], the share of fresh noise on unobserved and noisy coefficients (0.85, paper).
    eta_b : float, optional
        η_b in [0, 1], the weight of the measurement on coefficients it pins down (1.0, paper).
    n_steps : int, optional
        Number of denoiser calls / levels, >= 1 (20 in the paper); ignored if `sigmas` is given.
    sigmas : Tensor, shape (N,), optional
        Strictly decreasing levels σ_T > ... > σ_1 > 0 (a final step to 0 is added). Default:
        ``sigmas_geometric(n_steps, sigma_max, sigma_min)``.
    sigma_max : float, optional
        Top level of the default schedule; default σ_y / min s if every singular value is
        positive, else ``max(1, σ_y / min s)`` (see the module notes).
    sigma_min : float, optional
        Lowest level of the default schedule, > 0 (0.01).
    seed : int, optional
        Seed for every random draw; give this or `generator`.
    generator : torch.Generator, optional
        Random source; results are reproducible for a given seed, thread count and device.
    progress : bool, optional
        Show a tqdm bar over the steps.
    callback : callable, optional
        Called after each step with ``{"i", "sigma", "x", "denoised"}``.

    Returns
    -------
    x : Tensor, shape of ``op.A_adjoint(y)``, dtype of `y`, not clamped

    Raises
    ------
    DenoiselabError
        If `op` has no SVD, `y` does not fit it, `sigma`, `eta` or `eta_b` is outside [0, 1], or
        the schedule is invalid.

    Notes
    -----
    DDRM is not an exact posterior sampler even with an exact denoiser: on a Gaussian prior its
    samples are under-dispersed at the published settings: on i.i.d. Gaussian pixels, denoising at
    σ_y = 0.1 = τ, they have about 0.2× the posterior variance and one sample's MSE is about 1.3×
    the MMSE instead of 2× (see ``tests/sampling/test_posterior.py``). η = 1 restores most of the
    spread but then the denoised estimates ignore y below σ_y, and the mean drifts.

    Examples
    --------
    >>> from denoiselab.physics import Identity
    >>> prior = lambda x, s: (0.01 * x + s**2 * 0.5) / (0.01 + s**2)      # i.i.d. N(0.5, 0.1²) pixels
    >>> g = torch.Generator().manual_seed(0)
    >>> x = 0.5 + 0.1 * torch.randn(1, 1, 32, 32, generator=g)
    >>> y = x + 0.1 * torch.randn(1, 1, 32, 32, generator=g)
    >>> x_hat = sample_ddrm(y, Identity(), prior, sigma=0.1, seed=0)
    >>> mse = float(((x_hat - x) ** 2).mean()) / 0.005      # in units of the MMSE, 0.005
    >>> 1.0 < mse < 1.8                                      # under-dispersed: below a true sample's 2
    True
    >>> torch.equal(x_hat, sample_ddrm(y, Identity(), prior, sigma=0.1, seed=0))
    True
    """
    check_observation(y)
    check_denoiser(denoiser)
    sigma_y = check_noise_sigma(sigma, allow_zero=True)
    eta, eta_b = _check_unit("eta", eta), _check_unit("eta_b", eta_b)
    shape = image_shape(op, y, None)
    dtype, device = y.dtype, y.device
    s, y_bar, observed = spectral_view(op, y, shape, dtype=dtype, device=device)
    if sigmas is None:
        n_steps = check_count("n_steps", n_steps)
        if isinstance(sigma_min, bool) or not isinstance(sigma_min, (int, float)) or not sigma_min > 0:
            raise DenoiselabError(f"sigma_min={sigma_min!r} must be a positive level (std on [0, 1])")
        if sigma_max is None:
            s_min = float(s[observed].min()) if bool(observed.any()) else math.inf
            top = sigma_y / s_min if s_min < math.inf else 0.0
            sigma_max = top if bool(observed.all()) and top > sigma_min else max(1.0, top)
        levels = [float(v) for v in sigmas_geometric(n_steps, float(sigma_max), float(sigma_min))]
    else:
        levels = check_levels(sigmas)
    gen = resolve_generator(seed, generator)
    safe_s = torch.where(observed, s, torch.ones_like(s))
    noise_bar = torch.where(observed, sigma_y / safe_s, torch.zeros_like(s))  # σ_y/s_i per coefficient
    grey = op.V_adjoint(torch.full(shape, 0.5, dtype=dtype, device=device))

    def draw() -> Tensor:
        return op.V_adjoint(randn(shape, gen, dtype=dtype, device=device))  # white in image space = in V's

    top = levels[0]
    xt = torch.where(observed, y_bar + (top**2 - noise_bar**2).clamp_min(0).sqrt() * draw(), grey + top * draw())
    bar = tqdm(total=len(levels), desc="DDRM", disable=not progress, leave=False)
    x_hat = op.V(xt)
    for i, sig in enumerate(levels):
        nxt = levels[i + 1] if i + 1 < len(levels) else 0.0
        x_hat = denoiser(op.V(xt), sig)
        xh = op.V_adjoint(x_hat)
        keep = math.sqrt(1 - eta**2) * nxt
        fresh = eta * nxt * draw() if nxt > 0 else torch.zeros_like(xt)
        # DDRM Eq. 8, case by case
        unobserved = xh + keep * (xt - xh) / sig + fresh
        noisier = xh + keep * (y_bar - xh) / noise_bar.clamp_min(torch.finfo(dtype).tiny) + fresh
        pinned = (1 - eta_b) * xh + eta_b * y_bar
        if nxt > 0:
            pinned = pinned + (nxt**2 - eta_b**2 * noise_bar**2).clamp_min(0).sqrt() * draw()
        is_pinned = observed & (nxt >= noise_bar)
        xt = torch.where(~observed, unobserved, torch.where(is_pinned, pinned, noisier))
        if callback is not None:
            callback({"i": i, "sigma": sig, "x": op.V(xt), "denoised": x_hat})
        bar.update()
    bar.close()
    return op.V(xt)
