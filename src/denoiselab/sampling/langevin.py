"""Annealed Langevin dynamics with a denoiser's score (NCSN-style image synthesis).

The score of the noisy image density at level σ follows from the MMSE denoiser by Tweedie's
formula, ``s(x, σ) = ∇log p_σ(x) = (D(x, σ) − x) / σ²``, so any ``denoiser(x, sigma)`` is a
score model. With a blind denoiser (BF-DnCNN) the division uses the schedule's σ while the
network estimates the level itself; it works as long as the chain's noise follows the schedule.

References
----------
Y. Song, S. Ermon, "Generative modeling by estimating gradients of the data distribution",
NeurIPS 2019, arXiv:1907.05600 (Algorithm 1: annealed Langevin dynamics).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import DenoiselabError
from ..noise.schedules import sigmas_geometric
from ._common import check_count, check_denoiser, check_positive, check_shape, initial_state, randn, resolve_generator

__all__ = ["sample_annealed_langevin", "score_from_denoiser"]


def score_from_denoiser(denoiser: Callable[[Tensor, float], Tensor], x: Tensor, sigma: float) -> Tensor:
    """Tweedie's score ``(D(x, σ) − x) / σ²`` of the density of x at noise level σ (std on [0, 1]).

    Examples
    --------
    >>> x = torch.ones(1, 1, 2, 2)
    >>> score_from_denoiser(lambda v, s: torch.zeros_like(v), x, 0.5)   # a N(0, ·) prior pulls to 0
    tensor([[[[-4., -4.],
              [-4., -4.]]]])
    """
    return (denoiser(x, sigma) - x) / sigma**2


@torch.no_grad()
def sample_annealed_langevin(denoiser: Callable[[Tensor, float], Tensor], shape: tuple[int, int, int, int], *,
                             sigmas: Tensor | None = None, n_levels: int = 10, sigma_max: float = 1.0,
                             sigma_min: float = 0.01, n_steps_each: int = 100, step_scale: float = 2e-5,
                             final_denoise: bool = True, x_init: Tensor | None = None, seed: int | None = None,
                             generator: torch.Generator | None = None, device: str | torch.device = "cpu",
                             dtype: torch.dtype = torch.float32, progress: bool = False,
                             callback: Callable[[dict[str, Any]], None] | None = None) -> Tensor:
    """Draw images from the prior implicit in a denoiser by annealed Langevin dynamics.

    For each level σ_i of a descending schedule, `n_steps_each` times (Song & Ermon, Alg. 1):
    ``x ← x + α_i s(x, σ_i) + √(2α_i) z`` with ``α_i = step_scale · σ_i² / σ_L²`` and z ~ N(0, I);
    then, if `final_denoise`, ``x ← x + σ_L² s(x, σ_L) = D(x, σ_L)`` (removes the last σ_L of noise).

    Parameters
    ----------
    denoiser : callable
        ``denoiser(x, sigma)`` on (B, C, H, W) images in [0, 1], sigma a std on [0, 1]; it sets
        the channel count the shape must have.
    shape : tuple (B, C, H, W)
        Shape of the batch to draw.
    sigmas : Tensor, shape (L,), optional
        Descending noise levels on [0, 1]; default ``sigmas_geometric(n_levels, sigma_max, sigma_min)``.
    n_levels, sigma_max, sigma_min : optional
        The default schedule: Song & Ermon use L = 10 levels from σ_1 = 1 (about the largest
        distance between training images, per pixel) to 0.01. Our BF-DnCNN priors were trained up
        to σ = 100/255 ≈ 0.39; above that they extrapolate.
    n_steps_each : int, optional
        Langevin steps per level, T (100 in the paper).
    step_scale : float, optional
        ε, the step size at the last level, > 0 (2e-5 in the paper). Keep ``ε/σ_L² < 2``: for
        Gaussian data of per-pixel variance v a step contracts by ``1 − α_i/(v + σ_i²)``, and
        ``α_i/(v + σ_i²) ≤ ε/σ_L²``. Smaller is more accurate and slower to mix.
    final_denoise : bool, optional
        Finish with one denoiser call at σ_L (recommended; the raw chain keeps σ_L of noise).
    x_init : Tensor, optional
        Starting images of `shape`; default uniform noise on [0, 1] (the paper's choice).
    seed : int, optional
        Seed for every random draw (start and Langevin noise); give this or `generator`.
    generator : torch.Generator, optional
        Random source; results are reproducible for a given seed, thread count and device.
    device : str or torch.device, optional
        Where the chain runs ("cpu", "cuda"); the denoiser must live there too.
    dtype : torch.dtype, optional
        Floating type of the chain (float32 for the networks).
    progress : bool, optional
        Show a tqdm bar over the L·T steps.
    callback : callable, optional
        Called after each step with ``{"i", "level", "sigma", "x"}``.

    Returns
    -------
    x : Tensor, shape `shape`, not clamped

    Examples
    --------
    >>> from denoiselab.denoisers import load_denoiser
    >>> x = sample_annealed_langevin(load_denoiser("bfdncnn-gray"), (1, 1, 16, 16), n_levels=3,
    ...                              sigma_max=0.3, n_steps_each=5, step_scale=2e-4, seed=0)
    >>> tuple(x.shape), bool(torch.isfinite(x).all())
    ((1, 1, 16, 16), True)
    """
    check_denoiser(denoiser)
    shape = check_shape(shape)
    if sigmas is None:
        sigmas = sigmas_geometric(check_count("n_levels", n_levels), sigma_max, sigma_min)
    levels = [float(s) for s in torch.as_tensor(sigmas, dtype=torch.float64).flatten()]
    if not levels or any(not s > 0 for s in levels) or any(b > a for a, b in zip(levels, levels[1:])):
        raise DenoiselabError("sigmas must be a non-empty, non-increasing sequence of positive levels (std on [0, 1])")
    n_steps_each = check_count("n_steps_each", n_steps_each)
    eps = check_positive("step_scale", step_scale)
    gen = resolve_generator(seed, generator)
    x = initial_state(shape, x_init, gen, dtype=dtype, device=device)
    sigma_last = levels[-1]
    bar = tqdm(total=len(levels) * n_steps_each, desc="Langevin", disable=not progress, leave=False)
    i = 0
    for level, sigma in enumerate(levels):
        alpha = eps * sigma**2 / sigma_last**2  # Song & Ermon, Alg. 1
        for _ in range(n_steps_each):
            z = randn(shape, gen, dtype=dtype, device=device)
            x = x + alpha * score_from_denoiser(denoiser, x, sigma) + (2 * alpha) ** 0.5 * z
            if callback is not None:
                callback({"i": i, "level": level, "sigma": sigma, "x": x})
            i += 1
            bar.update()
    bar.close()
    if final_denoise:
        x = x + sigma_last**2 * score_from_denoiser(denoiser, x, sigma_last)
    return x
