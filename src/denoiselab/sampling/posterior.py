"""Stochastic denoising by sampling from the posterior (Kawar, Vaksman & Elad), and averaging K samples.

For ``y = x + σ_0 n`` the chain runs annealed Langevin dynamics on ``p(x_i | y)``, where
``x_i = x + v_i`` and the annealing noise ``v_i`` (std σ_i < σ_0) is taken to be a part of the
measurement noise ``n``. Then ``y − x_i`` is Gaussian with variance ``σ_0² − σ_i²`` and independent
of ``x_i``, so the posterior score is the prior score plus a simple likelihood term:

    ∇log p(x_i | y) = (D(x_i, σ_i) − x_i)/σ_i² + (y − x_i)/(σ_0² − σ_i²).

A sample has twice the MMSE on average, ``E‖x − x̂‖² = 2·MMSE``; the mean of K samples has
``MMSE·(1 + 1/K)`` (:func:`posterior_mean` draws K samples in one batch). That holds for an exact
score (the Gaussian toy prior in the tests: 2.00, 1.51, 1.27, 1.15 for K = 1, 2, 4, 8). With our
small trained priors the samples' mean stays 0.4–0.7 MMSE further from the truth than the
denoiser itself: on 10 CBSD68 crops at σ = 25/255 the mean of 8 samples measured 1.79 × MMSE
(benchmarks/results/perception_distortion/).

Conventions. The step follows the NCSNv2 code that both Kawar et al. papers build on:
``x ← x + α_i ∇ + √(2α_i) z`` with ``α_i = ε σ_i² / σ_L²`` (the paper writes ``(α_i/2)∇ + √α_i z``,
the same update with α doubled). Levels come from NCSNv2's CelebA grid (500 geometric levels from
90 to 0.01), of which those below σ_0 are used. Deviation, written here as STYLE.md asks: levels so
close to σ_0 that the likelihood step would overshoot (``α_i > (σ_0² − σ_i²)/2``) are skipped; the
paper starts at the first grid level below σ_0, which for some σ_0 makes the first steps unstable.

References
----------
B. Kawar, G. Vaksman, M. Elad, "Stochastic image denoising by sampling from the posterior
distribution", ICCV Workshops 2021, arXiv:2101.09552 (Algorithm 1).
Y. Song, S. Ermon, "Improved techniques for training score-based generative models" (NCSNv2),
NeurIPS 2020, arXiv:2006.09011 (the CelebA noise levels and step size ε = 3.3e-6, T = 5).
Y. Blau, T. Michaeli, "The perception-distortion tradeoff", CVPR 2018 (MSE of a posterior sample).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import DenoiselabError
from ..noise.schedules import sigmas_geometric
from ._common import check_count, check_denoiser, check_positive, randn, resolve_generator
from ._spectral import check_levels, check_noise_sigma, check_observation
from .langevin import score_from_denoiser

__all__ = ["sample_posterior_denoising", "posterior_mean", "PosteriorSamples", "ncsnv2_levels"]


def ncsnv2_levels(sigma_max: float = 90.0, sigma_min: float = 0.01, n_levels: int = 500) -> Tensor:
    """NCSNv2's CelebA noise levels: 500 geometric steps from 90 down to 0.01 (std on [0, 1]).

    Parameters
    ----------
    sigma_max, sigma_min : float, optional
        First and last level (Song & Ermon 2020, CelebA 64×64: 90 and 0.01).
    n_levels : int, optional
        Number of levels (500 for CelebA); the ratio between neighbours is about 0.982.

    Returns
    -------
    sigmas : Tensor, shape (n_levels,), float64, decreasing

    Examples
    --------
    >>> s = ncsnv2_levels()
    >>> len(s), round(float(s[0]), 2), round(float(s[-1]), 4), int((s < 0.1).sum())
    (500, 90.0, 0.01, 127)
    """
    return sigmas_geometric(n_levels, sigma_max, sigma_min)


@torch.no_grad()
def sample_posterior_denoising(y: Tensor, denoiser: Callable[[Tensor, float], Tensor], *, sigma: float,
                               sigmas: Tensor | None = None, n_steps_each: int = 5, step_scale: float = 3.3e-6,
                               final_denoise: bool = True, seed: int | None = None,
                               generator: torch.Generator | None = None, progress: bool = False,
                               callback: Callable[[dict[str, Any]], None] | None = None) -> Tensor:
    """Denoise by drawing a sample from p(x | y) with annealed Langevin dynamics (Kawar et al. 2021).

    Starting from ``x = y``, for each level σ_i < σ_0, `n_steps_each` times (Kawar et al., Alg. 1)::

        g = (D(x, σ_i) − x)/σ_i² + (y − x)/(σ_0² − σ_i²)
        x ← x + α_i g + √(2α_i) z,     α_i = step_scale · σ_i² / σ_L²,  z ~ N(0, I)

    then, if `final_denoise`, ``x ← D(x, σ_L)`` (removes the last σ_L of annealing noise).

    Parameters
    ----------
    y : Tensor, shape (B, C, H, W)
        Noisy images, float, values nominally in [0, 1] (not clipped). Each image of the batch is
        sampled independently; repeat an image along the batch (or use :func:`posterior_mean`) to
        draw several samples of it at once.
    denoiser : callable
        ``denoiser(x, sigma)``, an MMSE Gaussian denoiser, sigma a std on [0, 1].
    sigma : float
        σ_0, the std of the white Gaussian noise in `y`, on [0, 1] (25/255 ≈ 0.098), in (0, 1].
    sigmas : Tensor, shape (L,), optional
        Strictly decreasing annealing levels, all below `sigma`; σ_L (the last) sets the step
        scale. Default: the NCSNv2 CelebA grid (:func:`ncsnv2_levels`) below σ_0, without the
        levels too close to σ_0 for a stable step (see the module notes); about 125 levels for
        σ_0 = 0.1, i.e. 625 denoiser calls with T = 5.
    n_steps_each : int, optional
        Langevin steps per level, T >= 1 (5: NCSNv2's CelebA setting).
    step_scale : float, optional
        ε > 0, the step at the last level (3.3e-6: NCSNv2's CelebA setting). The chain is accurate
        while ``α_i`` is small next to the posterior variance at level i; larger ε mixes faster.
    final_denoise : bool, optional
        Finish with one denoiser call at σ_L.
    seed : int, optional
        Seed for the Langevin noise; give this or `generator`.
    generator : torch.Generator, optional
        Random source; results are reproducible for a given seed, thread count and device.
    progress : bool, optional
        Show a tqdm bar over the L·T steps.
    callback : callable, optional
        Called after each step with ``{"i", "level", "sigma", "x"}``.

    Returns
    -------
    x : Tensor, shape and dtype of `y`, not clamped
        One posterior sample per image; its expected squared error is about twice the MMSE.

    Raises
    ------
    DenoiselabError
        If `y` is not a finite (B, C, H, W) float tensor, `sigma` is not in (0, 1], a level is
        not below `sigma`, or an option is out of range.

    References
    ----------
    B. Kawar, G. Vaksman, M. Elad, ICCV Workshops 2021, arXiv:2101.09552, Algorithm 1.

    Examples
    --------
    Images of i.i.d. N(0.5, 0.1²) pixels have the exact denoiser ``(τ²x + σ²μ)/(τ² + σ²)``:

    >>> prior = lambda x, s: (0.01 * x + s**2 * 0.5) / (0.01 + s**2)
    >>> g = torch.Generator().manual_seed(0)
    >>> x = 0.5 + 0.1 * torch.randn(1, 1, 32, 32, generator=g)
    >>> y = x + 0.1 * torch.randn(1, 1, 32, 32, generator=g)
    >>> x_hat = sample_posterior_denoising(y, prior, sigma=0.1, seed=0)
    >>> mse = float(((x_hat - x) ** 2).mean()) / 0.005      # in units of the MMSE, 0.005
    >>> 1.6 < mse < 2.4
    True
    """
    check_observation(y)
    check_denoiser(denoiser)
    sigma0 = check_noise_sigma(sigma)
    n_steps_each = check_count("n_steps_each", n_steps_each)
    eps = check_positive("step_scale", step_scale)
    if sigmas is None:
        grid = [float(s) for s in ncsnv2_levels()]
        sigma_last = grid[-1]
        levels = [s for s in grid if s < sigma0 and eps * s**2 / sigma_last**2 <= (sigma0**2 - s**2) / 2]
        if not levels:
            raise DenoiselabError(f"sigma={sigma0} is at or below the last annealing level {sigma_last}; "
                                  "the image is already as clean as the chain would make it")
    else:
        levels = check_levels(sigmas)
        if levels[0] >= sigma0:
            raise DenoiselabError(f"every annealing level must be below the noise std sigma={sigma0}, "
                                  f"got {levels[0]}")
        sigma_last = levels[-1]
    gen = resolve_generator(seed, generator)
    x = y.clone()
    bar = tqdm(total=len(levels) * n_steps_each, desc="posterior Langevin", disable=not progress, leave=False)
    i = 0
    for level, s in enumerate(levels):
        alpha = eps * s**2 / sigma_last**2  # Kawar et al., Alg. 1 (NCSNv2 step convention)
        for _ in range(n_steps_each):
            grad = score_from_denoiser(denoiser, x, s) + (y - x) / (sigma0**2 - s**2)
            z = randn(tuple(x.shape), gen, dtype=x.dtype, device=x.device)
            x = x + alpha * grad + (2 * alpha) ** 0.5 * z
            if callback is not None:
                callback({"i": i, "level": level, "sigma": s, "x": x})
            i += 1
            bar.update()
    bar.close()
    if final_denoise:
        x = denoiser(x, sigma_last)
    return x


class PosteriorSamples(NamedTuple):
    """K posterior samples of each image and their mean (the MMSE estimate as K grows)."""

    samples: Tensor
    """(K, B, C, H, W): sample k of image b is ``samples[k, b]``."""
    mean: Tensor
    """(B, C, H, W): the mean over the K samples; expected MSE ``MMSE·(1 + 1/K)``."""


def posterior_mean(sample_fn: Callable[..., Tensor], y: Tensor, *args: Any, n_samples: int = 8,
                   **kwargs: Any) -> PosteriorSamples:
    """Draw `n_samples` posterior samples of each image in one batched call and average them.

    ``y`` is tiled K times along the batch, ``sample_fn(y_tiled, *args, **kwargs)`` is called
    once, and the result is split into K samples per image. With an exact sampler the mean of K
    samples has expected squared error ``MMSE·(1 + 1/K)``: 2× the MMSE for one sample, 1.125× for 8.

    Parameters
    ----------
    sample_fn : callable
        A sampler whose first argument is the measurement, e.g. :func:`sample_posterior_denoising`,
        :func:`~denoiselab.sampling.sample_snips` or :func:`~denoiselab.sampling.sample_ddrm`.
    y : Tensor, shape (B, ...)
        The measurements (noisy images, or an operator's measurements).
    *args, **kwargs
        Passed on to `sample_fn` (the operator, the denoiser, ``sigma=``, ``seed=``, ...). An
        operator whose constants have a batch dimension (a per-image mask) must have batch size 1.
    n_samples : int, optional
        K >= 1, the number of samples per image (memory grows K-fold).

    Returns
    -------
    PosteriorSamples
        ``samples`` of shape (K, B, C, H, W) and their ``mean`` (B, C, H, W).

    Examples
    --------
    >>> prior = lambda x, s: (0.01 * x + s**2 * 0.5) / (0.01 + s**2)
    >>> y = torch.full((2, 1, 8, 8), 0.7)
    >>> draws = posterior_mean(sample_posterior_denoising, y, prior, sigma=0.1, n_samples=4, seed=0)
    >>> tuple(draws.samples.shape), tuple(draws.mean.shape)
    ((4, 2, 1, 8, 8), (2, 1, 8, 8))
    >>> abs(float(draws.mean.mean()) - 0.6) < 0.02              # the posterior mean (0.7 + 0.5)/2
    True
    """
    if not callable(sample_fn):
        raise DenoiselabError(f"sample_fn must be a sampler such as sample_ddrm, got {type(sample_fn).__name__}")
    n_samples = check_count("n_samples", n_samples)
    if not isinstance(y, Tensor) or y.ndim < 1:
        raise DenoiselabError(f"y must be a batched tensor (B, ...), got {type(y).__name__}")
    batch = y.shape[0]
    out = sample_fn(y.repeat(n_samples, *([1] * (y.ndim - 1))), *args, **kwargs)
    samples = out.reshape(n_samples, batch, *out.shape[1:])
    return PosteriorSamples(samples=samples, mean=samples.mean(dim=0))
