"""Coarse-to-fine stochastic ascent on the prior implicit in a blind denoiser (Kadkhodaie & Simoncelli).

A blind MMSE denoiser's residual ``d = D(y) − y`` is σ²∇log p_σ(y) at the (unknown) level σ of y,
and its size tells that level: ``σ_t² ≈ ‖d‖²/N``. So no schedule is needed: each step moves a
fraction h_t of the way towards the denoised image and adds back fresh noise γ_t z, chosen so that
the effective noise level falls by the factor (1 − β h_t); the loop stops once σ_t is small.

References
----------
Z. Kadkhodaie, E. P. Simoncelli, "Stochastic solutions for linear inverse problems using the
prior implicit in a denoiser", NeurIPS 2021, arXiv:2007.13640 (Algorithm 1).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import DenoiselabError
from ._common import check_count, check_denoiser, check_positive, check_shape, randn, resolve_generator

__all__ = ["sample_implicit_prior"]


def sample_implicit_prior(denoiser: Callable[[Tensor, float], Tensor], shape: tuple[int, int, int, int], *,
                          h0: float = 0.01, beta: float = 0.5, sigma_init: float = 1.0, mean_init: float = 0.5,
                          sigma_stop: float = 0.01, max_steps: int = 2000, seed: int | None = None,
                          generator: torch.Generator | None = None, device: str | torch.device = "cpu",
                          dtype: torch.dtype = torch.float32, progress: bool = False,
                          callback: Callable[[dict[str, Any]], None] | None = None) -> Tensor:
    """Draw images from the prior implicit in a (blind) denoiser, Kadkhodaie & Simoncelli's Alg. 1.

    Starting from ``y ~ N(mean_init, sigma_init² I)``, for t = 1, 2, ...::

        d   = D(y) − y                                  # σ² ∇log p_σ(y)
        σ_t = ‖d‖ / √N                                  # N pixels per image; stop if σ_t ≤ sigma_stop
        h_t = h0 t / (1 + h0 (t − 1))                   # step fraction, grows towards 1
        γ_t = √((1 − β h_t)² − (1 − h_t)²) · σ_t        # injected noise
        y   ← y + h_t d + γ_t z,   z ~ N(0, I)

    Each image of the batch stops on its own when its σ_t reaches `sigma_stop`.

    Parameters
    ----------
    denoiser : callable
        ``denoiser(x, sigma)``, ideally blind; it receives the previous σ_t estimate as `sigma`
        (`sigma_init` at the first step), so non-blind denoisers work too.
    shape : tuple (B, C, H, W)
        Shape of the batch to draw.
    h0 : float, optional
        Initial step fraction, in (0, 1] (0.01 in the paper). Larger is faster and coarser.
    beta : float, optional
        Noise injection, in (0, 1]: 1 is deterministic ascent (γ = 0), small values inject more
        noise. The paper uses 0.5 for synthesis and 0.01 for inverse problems.
    sigma_init, mean_init : float, optional
        Start distribution N(mean_init, sigma_init²) per pixel (paper: N(0.5, 1)).
    sigma_stop : float, optional
        Stop when the estimated noise std falls to this level on [0, 1] (paper: 0.01).
    max_steps : int, optional
        Safety limit on iterations; a warning says if some image had not reached `sigma_stop`.
    seed : int, optional
        Seed for every random draw; give this or `generator`.
    generator : torch.Generator, optional
        Random source; results are reproducible for a given seed, thread count and device.
    device, dtype : optional
        Where and in which float type the chain runs.
    progress : bool, optional
        Show a tqdm bar (its length is `max_steps`; the loop usually ends well before).
    callback : callable, optional
        Called after each step with ``{"i", "sigma", "h", "y"}`` (sigma: (B,) tensor).

    Returns
    -------
    y : Tensor, shape `shape`, not clamped; its residual noise std is about `sigma_stop`

    Examples
    --------
    >>> from denoiselab.denoisers import load_denoiser
    >>> y = sample_implicit_prior(load_denoiser("bfdncnn-gray"), (1, 1, 16, 16), h0=0.2, seed=0)
    >>> tuple(y.shape), bool(torch.isfinite(y).all())
    ((1, 1, 16, 16), True)
    """
    check_denoiser(denoiser)
    shape = check_shape(shape)
    h0 = check_positive("h0", h0)
    beta = check_positive("beta", beta)
    if h0 > 1 or beta > 1:
        raise DenoiselabError(f"h0={h0} and beta={beta} must lie in (0, 1]")
    sigma_init = check_positive("sigma_init", sigma_init)
    sigma_stop = check_positive("sigma_stop", sigma_stop)
    max_steps = check_count("max_steps", max_steps)
    gen = resolve_generator(seed, generator)

    with torch.no_grad():
        y, sigma = _ascend(denoiser, shape, gen, h0=h0, beta=beta, sigma_init=sigma_init, mean_init=float(mean_init),
                           sigma_stop=sigma_stop, max_steps=max_steps, device=device, dtype=dtype,
                           progress=progress, callback=callback)
    if bool((sigma > sigma_stop).any()):
        warnings.warn(f"sample_implicit_prior stopped after max_steps={max_steps} with noise std up to "
                      f"{float(sigma.max()):.3g} > sigma_stop={sigma_stop}; raise max_steps or h0", stacklevel=2)
    return y


def _ascend(denoiser, shape, gen, *, h0, beta, sigma_init, mean_init, sigma_stop, max_steps, device, dtype,
            progress, callback) -> tuple[Tensor, Tensor]:
    """The loop of :func:`sample_implicit_prior`; returns y and the last (B,) noise estimates."""
    y = mean_init + sigma_init * randn(shape, gen, dtype=dtype, device=device)
    sigma = torch.full((shape[0],), sigma_init, dtype=dtype, device=device)
    active = torch.ones(shape[0], dtype=torch.bool, device=device)
    n_pixels = shape[1] * shape[2] * shape[3]
    bar = tqdm(total=max_steps, desc="implicit prior", disable=not progress, leave=False)
    for t in range(1, max_steps + 1):
        d = denoiser(y, sigma) - y
        sigma = torch.where(active, d.flatten(1).norm(dim=1) / n_pixels**0.5, sigma)  # Alg. 1: σ_t² = ‖d‖²/N
        active = active & (sigma > sigma_stop)
        if not bool(active.any()):
            break
        h = h0 * t / (1 + h0 * (t - 1))
        gamma = ((1 - beta * h) ** 2 - (1 - h) ** 2) ** 0.5 * sigma
        z = randn(shape, gen, dtype=dtype, device=device)  # drawn for every image: same stream for any batch
        step = h * d + gamma.view(-1, 1, 1, 1) * z
        y = y + torch.where(active.view(-1, 1, 1, 1), step, torch.zeros_like(step))
        if callback is not None:
            callback({"i": t - 1, "sigma": sigma, "h": h, "y": y})
        bar.update()
    bar.close()
    return y, sigma
