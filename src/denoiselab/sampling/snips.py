"""SNIPS: annealed Langevin sampling of p(x | y) for ``y = A x + σ_0 n`` in the SVD coordinates of A.

With ``A = U diag(s) Vᵀ``, ``x̃ = Vᵀx`` and ``ȳ = Uᵀy / s`` (where s > 0), each coefficient sees its
own measurement ``ȳ_j = x̃_j + (σ_0/s_j) ñ_j``. At annealing level σ_i the chain's noise ``ṽ_j`` is
built from that measurement noise where possible, which gives three cases per coefficient
(Kawar, Vaksman & Elad 2021, Sec. 3):

- ``s_j = 0`` (unobserved): only the prior score, ``g_j = [Vᵀ (D(x, σ_i) − x)/σ_i²]_j``;
- ``s_j σ_i < σ_0`` (measurement noisier than the level): prior score plus
  ``s_j² (ȳ_j − x̃_j) / (σ_0² − s_j² σ_i²)``;
- ``s_j σ_i ≥ σ_0`` (measurement cleaner than the level): ``x̃_j | y ~ N(ȳ_j, σ_i² − σ_0²/s_j²)``
  exactly, so ``g_j = (ȳ_j − x̃_j) / (σ_i² − σ_0²/s_j²)``.

Each coefficient then takes a Langevin step ``x̃ ← x̃ + c λ_j g + √(2 c λ_j) z`` with the
Newton-like per-coefficient step of SNIPS, ``λ_j = σ_i²``, ``σ_i² (1 − s_j² σ_i²/σ_0²)`` and
``σ_i² − σ_0²/s_j²`` in the three cases, and ``c = ε/σ_L²``. With ``A = I`` and σ_i < σ_0 this is
Kawar et al.'s stochastic denoiser with a smaller step close to σ_0.

Published settings (SNIPS's CelebA configuration, inherited from NCSNv2): 500 geometric levels from
90 to 0.01, T = 5 steps each, ε = 3.3e-6, start from uniform noise. Deviation: the default keeps only
the levels of that grid at or below ``sigma_max = 1`` (≈ 250 levels): our images span [0, 1] and
our denoisers were trained up to σ ≈ 0.39, so the levels from 90 to 1 cost calls and add nothing.
Pass ``sigmas=ncsnv2_levels()`` for the full published grid.

References
----------
B. Kawar, G. Vaksman, M. Elad, "SNIPS: Solving noisy inverse problems stochastically", NeurIPS 2021,
arXiv:2105.14951 (Algorithm 1, Eq. 9 and the step-size matrix).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import DenoiselabError
from ._common import check_count, check_denoiser, check_positive, initial_state, randn, resolve_generator
from ._spectral import check_levels, check_noise_sigma, check_observation, image_shape, spectral_view
from .langevin import score_from_denoiser
from .posterior import ncsnv2_levels

__all__ = ["sample_snips"]


@torch.no_grad()
def sample_snips(y: Tensor, op, denoiser: Callable[[Tensor, float], Tensor], *, sigma: float,
                 sigmas: Tensor | None = None, sigma_max: float = 1.0, n_steps_each: int = 5,
                 step_scale: float = 3.3e-6, final_denoise: bool = True, x_init: Tensor | None = None,
                 seed: int | None = None, generator: torch.Generator | None = None, progress: bool = False,
                 callback: Callable[[dict[str, Any]], None] | None = None) -> Tensor:
    """Sample p(x | y) for a linear inverse problem ``y = A x + σ_0 n`` with SNIPS.

    Parameters
    ----------
    y : Tensor
        Measurements ``A(x) + noise``, float, shape as ``op.A`` gives it (e.g. (B, C, H, W) for
        denoising and inpainting, (B, C, H/f, W/f) for ×f box downsampling).
    op : physics.DecomposableOperator
        The forward operator with its SVD: ``Identity``, ``BoxDownsample``, ``Inpainting``.
    denoiser : callable
        ``denoiser(x, sigma)``, an MMSE Gaussian denoiser on (B, C, H, W) images in [0, 1].
    sigma : float
        σ_0, the std of the white Gaussian noise in `y` on [0, 1], in [0, 1] (0 = noiseless).
    sigmas : Tensor, shape (L,), optional
        Strictly decreasing annealing levels; the last (σ_L) sets the step. Default: the NCSNv2
        CelebA grid (:func:`~denoiselab.sampling.ncsnv2_levels`, 90 → 0.01) from `sigma_max` down.
    sigma_max : float, optional
        Highest level of the default grid, > 0.01 (1.0; the paper starts at 90).
    n_steps_each : int, optional
        Langevin steps per level, T >= 1 (5 in the paper's CelebA configuration).
    step_scale : float, optional
        ε > 0; ``c = ε/σ_L²`` multiplies the per-coefficient steps (3.3e-6 in the paper).
    final_denoise : bool, optional
        Finish with one denoiser call at σ_L (the NCSNv2 convention).
    x_init : Tensor, optional
        Starting images, shape of ``op.A_adjoint(y)``; default uniform noise on [0, 1] (the paper's).
    seed : int, optional
        Seed for every random draw; give this or `generator`.
    generator : torch.Generator, optional
        Random source; results are reproducible for a given seed, thread count and device.
    progress : bool, optional
        Show a tqdm bar over the L·T steps.
    callback : callable, optional
        Called after each step with ``{"i", "level", "sigma", "x"}``.

    Returns
    -------
    x : Tensor, shape of ``op.A_adjoint(y)``, dtype of `y`, not clamped

    Raises
    ------
    DenoiselabError
        If `op` has no SVD, `y` does not fit it, `sigma` is outside [0, 1], or an option is out of
        range.

    Examples
    --------
    Inpainting i.i.d. N(0.5, 0.1²) pixels with their exact denoiser; lost pixels come out with the
    prior's spread, observed ones close to y:

    >>> from denoiselab.physics import Inpainting, box_mask
    >>> prior = lambda x, s: (0.01 * x + s**2 * 0.5) / (0.01 + s**2)
    >>> op = Inpainting(box_mask((1, 1, 16, 16), (0, 0, 16, 8)))
    >>> y = op.A(torch.full((1, 1, 16, 16), 0.8))
    >>> x = sample_snips(y, op, prior, sigma=0.01, seed=0)             # 252 levels x 5 steps
    >>> bool(abs(float(x[..., 8:].mean()) - 0.8) < 0.01), bool(0.08 < float(x[..., :8].std()) < 0.12)
    (True, True)
    """
    check_observation(y)
    check_denoiser(denoiser)
    sigma0 = check_noise_sigma(sigma, allow_zero=True)
    n_steps_each = check_count("n_steps_each", n_steps_each)
    eps = check_positive("step_scale", step_scale)
    if sigmas is None:
        top = check_positive("sigma_max", sigma_max)
        levels = [float(s) for s in ncsnv2_levels() if s <= top]
        if not levels:
            raise DenoiselabError(f"sigma_max={sigma_max} is below the grid's last level 0.01")
    else:
        levels = check_levels(sigmas)
    shape = image_shape(op, y, None)
    dtype, device = y.dtype, y.device
    spec = spectral_view(op, y, shape, dtype=dtype, device=device)
    s, y_bar, observed = spec
    gen = resolve_generator(seed, generator)
    x = initial_state(shape, x_init, gen, dtype=dtype, device=device)
    xt = op.V_adjoint(x)
    sigma_last = levels[-1]
    c = eps / sigma_last**2
    safe_s = torch.where(observed, s, torch.ones_like(s))
    bar = tqdm(total=len(levels) * n_steps_each, desc="SNIPS", disable=not progress, leave=False)
    i = 0
    for level, sig in enumerate(levels):
        # SNIPS Eq. 9: which coefficients the measurement pins down better than the level does
        clean = observed & (s * sig >= sigma0)
        noisy = observed & ~clean
        if sigma0 > 0:
            lam_noisy = sig**2 * (1 - (s * sig / sigma0) ** 2)
        else:
            lam_noisy = torch.zeros_like(s)
        lam = torch.where(clean, sig**2 - (sigma0 / safe_s) ** 2, torch.where(noisy, lam_noisy, torch.full_like(s, sig**2)))
        lam = lam.clamp_min(0)
        for _ in range(n_steps_each):
            prior = op.V_adjoint(score_from_denoiser(denoiser, op.V(xt), sig))
            # λ·g per case (written so that no case divides by a vanishing σ_0² − s²σ²)
            drift_lik = (sig**2 * s**2 / sigma0**2) * (y_bar - xt) if sigma0 > 0 else torch.zeros_like(xt)
            drift = torch.where(clean, y_bar - xt, torch.where(noisy, lam * prior + drift_lik, lam * prior))
            z = randn(shape, gen, dtype=dtype, device=device)
            xt = xt + c * drift + (2 * c * lam).sqrt() * z
            if callback is not None:
                callback({"i": i, "level": level, "sigma": sig, "x": op.V(xt)})
            i += 1
            bar.update()
    bar.close()
    x = op.V(xt)
    if final_denoise:
        x = denoiser(x, sigma_last)
    return x
