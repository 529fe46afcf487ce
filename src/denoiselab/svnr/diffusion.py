"""SVNR's diffusion: training pairs, the per-pixel reverse step and the two samplers.

All images live on the linear scale of :mod:`denoiselab.svnr.noise`; times are in schedule
steps (fractional allowed) and time maps have shape (B, 1, H, W), shared by the channels. The
model is any callable ``model(y, x_t, t) -> ε̂`` (an :class:`~denoiselab.svnr.unet.SVNRUNet`),
and ``x̂_0 = x_t − √γ_t ε̂``.

- :func:`training_sample` — SVNR's pair, drawn from the chain pinned at both ends,
  q(x_t | x_0, x_{t*} = y) (Eq. 11, [reconstructed]); ``correlated=False`` is the ablation with
  independent noise.
- :func:`reverse_step` — one ancestral step of the VE chain per pixel (Eq. 8, [reconstructed]).
- :func:`sample_svnr` — Alg. 2: start from y at the time map t* = γ⁻¹(σ²), ⌈max t*⌉ model calls.
- :func:`conditional_training_sample`, :func:`sample_conditional` — the SR3-style baseline on the
  same network and schedule: one time per image, started from pure noise at T.

Why Eq. 11 is the right pair: with no signal scaling the forward chain is a Brownian motion in
"γ-time", so given both ends x_0 and x_{t*} = y the state at γ_t ≤ γ_{t*} is the Brownian bridge
``x_t = x_0 + ρ (y − x_0) + √(γ_t (1 − ρ)) ε′``, ρ = γ_t/γ_{t*}, which is Eq. 11's
``x_0 + √γ_t ε̃`` with ``ε̃ = √ρ ε_y + √(1 − ρ) ε′``. Eq. 8 is the same bridge between x_0 and x_t.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import DenoiselabError
from ..sampling._common import randn, resolve_generator
from .schedule import DEFAULT_SCHEDULE, VESchedule

__all__ = ["DiffusionSample", "training_sample", "conditional_training_sample", "reverse_step", "sample_svnr",
           "sample_conditional", "conditional_timesteps"]

Model = Callable[[Tensor, Tensor, Tensor], Tensor]


class DiffusionSample(NamedTuple):
    """One training input and its target.

    Attributes
    ----------
    x_t : Tensor (B, C, H, W)
        The chain state fed to the network.
    t : Tensor (B, 1, H, W)
        Its per-pixel time (steps).
    target : Tensor (B, C, H, W)
        ε̃, what the network should predict (``x_t = x_0 + √γ_t · target``).
    t_star : Tensor (B, 1, H, W) or None
        The time map of y (SVNR pairs only).
    """

    x_t: Tensor
    t: Tensor
    target: Tensor
    t_star: Tensor | None = None


def _check_images(**images: Tensor) -> Tensor:
    """All float (B, C, H, W) tensors of one shape; returns the first."""
    first = None
    for name, v in images.items():
        if not isinstance(v, Tensor) or v.ndim != 4 or not v.is_floating_point():
            shape = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise DenoiselabError(f"{name} must be a float (B, C, H, W) tensor, got {shape}")
        if first is not None and v.shape != first[1].shape:
            raise DenoiselabError(f"{name} shape {tuple(v.shape)} differs from {first[0]} shape {tuple(first[1].shape)}")
        first = first or (name, v)
    return first[1]


def _check_sigma2(sigma2: Tensor, y: Tensor) -> None:
    b, c, h, w = y.shape
    if not isinstance(sigma2, Tensor) or sigma2.ndim != 4 or sigma2.shape[0] != b or sigma2.shape[1] not in (1, c) \
            or tuple(sigma2.shape[2:]) != (h, w):
        shape = tuple(sigma2.shape) if isinstance(sigma2, Tensor) else type(sigma2).__name__
        raise DenoiselabError(f"sigma2 must be per-pixel noise variances of shape ({b}, {c} or 1, {h}, {w}), got {shape}")


def _check_time_map(t: Tensor, x: Tensor, T: int) -> Tensor:
    b, _, h, w = x.shape
    if not isinstance(t, Tensor) or tuple(t.shape) != (b, 1, h, w):
        shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise DenoiselabError(f"t must be a time map of shape ({b}, 1, {h}, {w}), got {shape}")
    if t.numel() and not (bool(torch.isfinite(t).all()) and float(t.min()) >= 0 and float(t.max()) <= T):
        raise DenoiselabError(f"times must lie in [0, T={T}], got [{float(t.min()):g}, {float(t.max()):g}]")
    return t


def _check_model(model) -> None:
    if not callable(model):
        raise DenoiselabError(f"model must be callable as model(y, x_t, t), got {type(model).__name__}")


def training_sample(x0: Tensor, y: Tensor, sigma2: Tensor, *, correlated: bool = True, tau: Tensor | None = None,
                    schedule: VESchedule | None = None, generator: torch.Generator | None = None) -> DiffusionSample:
    """SVNR's training pair from a clean image, its noisy version and a noise variance map (Eq. 11).

    Per pixel ``t*_p = γ⁻¹(σ²_p)`` (max over channels); per image τ ~ U(0, max t*), and
    ``t_p = max(t*_p − τ, 0)`` — exactly the maps the sampler visits. With ``ρ = γ_t/γ_{t*}`` and
    ``ε_y = (y − x_0)/√γ_{t*}`` (the noise y actually carries, clipping included):

    - correlated (SVNR): ``ε̃ = √ρ ε_y + √(1 − ρ) ε′``, ε′ ~ N(0, I) fresh;
    - uncorrelated (ablation): ``ε̃ = ε′``;

    and ``x_t = x_0 + √γ_t ε̃``, target ε̃. So the correlated x_t equals y where τ = 0 and moves
    towards x_0 along the Brownian bridge as τ grows. Where γ_{t*} = 0 (σ² = 0) ρ is taken as 1
    and ε_y as 0 (x_t = x_0 there); the floor σ >= 1e-3 keeps real data away from that.

    Parameters
    ----------
    x0, y : Tensor (B, C, H, W)
        Clean and noisy images on the linear scale (:func:`~denoiselab.svnr.noise.make_noisy_batch`).
    sigma2 : Tensor (B, C or 1, H, W)
        The per-pixel noise variance the time maps come from, >= 0, at most γ_T: the one y was made
        with, or its estimate from y, as the sampler will be given it (``SVNRConfig.time_map``).
    correlated : bool, optional
        True: Eq. 11 (SVNR); False: independent noise (the ablation "without the correlation fix").
    tau : Tensor (B,), optional
        Time offsets in steps, >= 0; default drawn U(0, max t*) per image.
    schedule : VESchedule, optional
        Default: T = 1000, λ = 5.
    generator : torch.Generator, optional
        Random source for τ and ε′ (draws made on its device, then moved).

    Returns
    -------
    DiffusionSample
        ``(x_t, t, target, t_star)``.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> x0 = torch.full((1, 1, 4, 4), 0.5); s2 = torch.full_like(x0, 0.04)
    >>> y = x0 + 0.2 * torch.randn(x0.shape, generator=g)
    >>> s = training_sample(x0, y, s2, tau=torch.zeros(1), generator=g)     # τ = 0: x_t is y itself
    >>> bool(torch.allclose(s.x_t, y)), bool(torch.allclose(s.t, s.t_star))
    (True, True)
    """
    _check_images(x0=x0, y=y)
    _check_sigma2(sigma2, y)
    sched = schedule or DEFAULT_SCHEDULE
    t_star = sched.time_map(sigma2)
    b = y.shape[0]
    where = generator.device if generator is not None else y.device
    if tau is None:
        t_max = t_star.flatten(1).amax(1).to(where, torch.float64)
        tau = torch.rand(b, generator=generator, dtype=torch.float64, device=where) * t_max
    tau = torch.as_tensor(tau, dtype=torch.float64)
    if tau.shape != (b,) or not bool(torch.isfinite(tau).all()) or float(tau.min()) < 0:
        raise DenoiselabError(f"tau must be {b} finite offsets >= 0 (steps), one per image; got shape {tuple(tau.shape)}")
    t = (t_star.to(torch.float64) - tau.to(y.device).view(-1, 1, 1, 1)).clamp_min(0)
    g_t, g_star = sched.gamma(t), sched.gamma(t_star.to(torch.float64))
    eps_fresh = randn(tuple(y.shape), generator, dtype=y.dtype, device=y.device)
    if correlated:
        ok = g_star > 0
        rho = torch.where(ok, g_t / torch.where(ok, g_star, 1.0), 1.0).clamp(0, 1)
        eps_y = torch.where(ok, (y - x0).to(torch.float64) / torch.where(ok, g_star, 1.0).sqrt(), 0.0)
        target = (rho.sqrt() * eps_y + (1 - rho).sqrt() * eps_fresh).to(y.dtype)
    else:
        target = eps_fresh
    x_t = x0 + g_t.sqrt().to(y.dtype) * target
    return DiffusionSample(x_t, t.to(y.dtype), target, t_star)


def conditional_training_sample(x0: Tensor, *, t: Tensor | None = None, schedule: VESchedule | None = None,
                                generator: torch.Generator | None = None) -> DiffusionSample:
    """The baseline's training pair: one integer time per image, t ~ U{1..T}, ``x_t = x_0 + √γ_t ε``.

    The condition y is given to the network alongside (it plays no part in x_t). Target ε.

    Parameters
    ----------
    x0 : Tensor (B, C, H, W)
        Clean images on the linear scale.
    t : Tensor (B,), optional
        Times per image in [0, T]; default drawn uniformly from the integers 1..T.
    schedule, generator : optional
        As in :func:`training_sample`.

    Returns
    -------
    DiffusionSample
        ``(x_t, t, target, None)`` with t a constant map per image.

    Examples
    --------
    >>> s = conditional_training_sample(torch.zeros(2, 3, 4, 4), generator=torch.Generator().manual_seed(0))
    >>> tuple(s.t.shape), bool((s.t == s.t[:, :, :1, :1]).all())
    ((2, 1, 4, 4), True)
    """
    _check_images(x0=x0)
    sched = schedule or DEFAULT_SCHEDULE
    b, _, h, w = x0.shape
    if t is None:
        where = generator.device if generator is not None else "cpu"
        t = torch.randint(1, sched.T + 1, (b,), generator=generator, device=where)
    t = torch.as_tensor(t, dtype=torch.float64).to(x0.device)
    if t.shape != (b,):
        raise DenoiselabError(f"t must hold one time per image, shape ({b},); got {tuple(t.shape)}")
    t_map = t.view(-1, 1, 1, 1).expand(b, 1, h, w)
    g = sched.gamma(t_map)
    eps = randn(tuple(x0.shape), generator, dtype=x0.dtype, device=x0.device)
    return DiffusionSample(x0 + g.sqrt().to(x0.dtype) * eps, t_map.to(x0.dtype), eps)


def reverse_step(x_t: Tensor, x0_hat: Tensor, t: Tensor, *, s: Tensor | None = None,
                 schedule: VESchedule | None = None, generator: torch.Generator | None = None) -> Tensor:
    """One ancestral step per pixel, from time t to s = max(t − 1, 0) (Eq. 8), or to a given s <= t.

    ``x_s ~ N((γ_s/γ_t) x_t + (η/γ_t) x̂_0, γ_s η / γ_t)``, η = γ_t − γ_s: the Brownian bridge
    between x̂_0 and x_t, which for s = t − 1 is Eq. 8. Pixels with s = 0 (t <= 1 by default)
    take x̂_0 exactly; pixels with t = 0 keep x_t.

    Parameters
    ----------
    x_t, x0_hat : Tensor (B, C, H, W)
        Current state and the model's clean estimate.
    t : Tensor (B, 1, H, W)
        Per-pixel times in [0, T] (steps).
    s : Tensor (B, 1, H, W), optional
        Per-pixel target times, 0 <= s <= t; default max(t − 1, 0).
    schedule, generator : optional
        Schedule (default T = 1000, λ = 5) and random source.

    Returns
    -------
    x_prev : Tensor, shape of `x_t`

    Examples
    --------
    >>> x_t, x0_hat = torch.ones(1, 1, 1, 3), torch.zeros(1, 1, 1, 3)
    >>> reverse_step(x_t, x0_hat, torch.tensor([[[[0.0, 0.5, 1.0]]]]))       # t = 0 stays, t <= 1 takes x̂_0
    tensor([[[[1., 0., 0.]]]])
    """
    _check_images(x_t=x_t, x0_hat=x0_hat)
    sched = schedule or DEFAULT_SCHEDULE
    t = _check_time_map(t, x_t, sched.T).to(torch.float64)
    if s is None:
        s = (t - 1).clamp_min(0)
    else:
        s = _check_time_map(s, x_t, sched.T).to(torch.float64)
        if bool((s > t).any()):
            raise DenoiselabError("the target times s must not exceed the current times t")
    g_t, g_prev = sched.gamma(t), sched.gamma(s)
    safe = torch.where(g_t > 0, g_t, 1.0)
    eta = g_t - g_prev
    mean = (g_prev / safe) * x_t + (eta / safe) * x0_hat
    std = (g_prev * eta / safe).clamp_min(0).sqrt()
    x_prev = (mean + std * randn(tuple(x_t.shape), generator, dtype=torch.float64, device=x_t.device)).to(x_t.dtype)
    x_prev = torch.where(s <= 0, x0_hat, x_prev)
    return torch.where(t <= 0, x_t, x_prev)


def _x0_hat(model: Model, y: Tensor, x: Tensor, t: Tensor, sched: VESchedule) -> Tensor:
    eps = model(y, x, t.to(torch.float32))
    if not isinstance(eps, Tensor) or eps.shape != x.shape:
        shape = tuple(eps.shape) if isinstance(eps, Tensor) else type(eps).__name__
        raise DenoiselabError(f"model(y, x_t, t) must return ε̂ of shape {tuple(x.shape)}, got {shape}")
    return x - sched.gamma(t).sqrt().to(x.dtype) * eps.to(x.dtype)


def check_steps(steps, *, name: str = "steps=") -> int | None:
    """`steps` must be None (set by the noise) or an integer >= 1 (`name` prefixes it in the message)."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise DenoiselabError(f"{name}{steps!r} must be an integer >= 1 (network calls per chain), or left out "
                              "to let the noise set them")
    return steps


@torch.no_grad()
def sample_svnr(model: Model, y: Tensor, sigma2: Tensor, *, steps: int | None = None,
                schedule: VESchedule | None = None, seed: int | None = None,
                generator: torch.Generator | None = None, clamp: bool = False,
                progress: bool = False, callback: Callable[[dict], None] | None = None,
                return_calls: bool = False) -> Tensor | tuple[Tensor, int]:
    """Denoise by SVNR's reverse chain started from the noisy image itself (Alg. 2).

    ``x ← y``, ``t ← t* = γ⁻¹(σ²)`` per pixel; while max t > 0: ``ε̂ = model(y, x, t)``,
    ``x̂_0 = x − √γ_t ε̂``, ``x ← reverse_step(x, x̂_0, t)``, ``t ← max(t − 1, 0)``. The first step
    starts from the fractional γ(t*) exactly; each pixel keeps its fractional part until its last
    step (t <= 1), which returns x̂_0. Model calls: ⌈max t*⌉ (whole batch per call).

    With `steps` = N instead, every pixel walks its own t* down in N equal parts,
    t_i = t*·(1 − i/N), each a :func:`reverse_step` to the next time (the same bridge over a
    coarser grid, like a strided DDPM schedule): N calls, whatever the noise.

    Parameters
    ----------
    model : callable
        ``model(y, x_t, t) -> ε̂``, t a float32 (B, 1, H, W) time map in steps.
    y : Tensor (B, C, H, W)
        Noisy images on the linear scale (the scale the model was trained on).
    sigma2 : Tensor (B, C or 1, H, W)
        Per-pixel noise variance of y, >= 0 (:func:`~denoiselab.svnr.noise.estimate_variance`).
    steps : int, optional
        Model calls N >= 1 on the per-pixel grid t*·(1 − i/N); default None: Alg. 2's unit steps,
        ⌈max t*⌉ calls.
    schedule : VESchedule, optional
        The model's schedule (default T = 1000, λ = 5).
    seed, generator : optional
        Random source of the ancestral noise (give one, not both); a seed reproduces the result
        for a given device and thread count.
    clamp : bool, optional
        Clamp σ² > γ_T to T with a warning instead of raising (:meth:`VESchedule.time_map`).
    progress : bool, optional
        tqdm bar over the model calls.
    callback : callable, optional
        Called after each step with ``{"i", "t", "x", "x0_hat"}``.
    return_calls : bool, optional
        Also return the number of model calls.

    Returns
    -------
    x_hat : Tensor, shape of `y`, linear scale, not clamped
    calls : int, only with ``return_calls=True``

    Examples
    --------
    >>> from denoiselab.svnr.schedule import gamma
    >>> x0 = torch.full((1, 1, 8, 8), 0.5)
    >>> s2 = torch.full_like(x0, 0.04)                              # t* ≈ 24.2 everywhere
    >>> y = x0 + 0.2 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    >>> oracle = lambda y, x, t: (x - x0) / gamma(t.double()).clamp_min(1e-12).sqrt().float()
    >>> x_hat, calls = sample_svnr(oracle, y, s2, seed=0, return_calls=True)
    >>> calls, bool(torch.allclose(x_hat, x0, atol=1e-5))
    (25, True)
    """
    _check_model(model)
    _check_images(y=y)
    _check_sigma2(sigma2, y)
    sched = schedule or DEFAULT_SCHEDULE
    gen = resolve_generator(seed, generator)
    check_steps(steps)
    t_star = sched.time_map(sigma2, clamp=clamp).to(torch.float64)
    t_max = float(t_star.max()) if t_star.numel() else 0.0
    n_calls = math.ceil(t_max) if steps is None else (steps if t_max > 0 else 0)

    def time_at(i: int) -> Tensor:  # computed from t*, not by repeated subtraction: exact call counts
        if steps is None:
            return (t_star - i).clamp_min(0)
        return t_star * max(1 - i / steps, 0.0)

    x = y.clone()
    for i in tqdm(range(n_calls), desc="SVNR", disable=not progress, leave=False):
        t = time_at(i)
        x0_hat = _x0_hat(model, y, x, t, sched)
        x = reverse_step(x, x0_hat, t, s=time_at(i + 1), schedule=sched, generator=gen)
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "x0_hat": x0_hat})
    return (x, n_calls) if return_calls else x


def conditional_timesteps(steps: int, T: int = 1000) -> list[int]:
    """The baseline's descending integer times T = t_0 > t_1 > ... > t_steps = 0 (evenly strided).

    Examples
    --------
    >>> conditional_timesteps(4)
    [1000, 750, 500, 250, 0]
    >>> conditional_timesteps(1000)[:3]
    [1000, 999, 998]
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
        raise DenoiselabError(f"steps={steps!r} must be an integer in [1, T={T}]")
    return [round(T * (steps - k) / steps) for k in range(steps + 1)]


@torch.no_grad()
def sample_conditional(model: Model, y: Tensor, *, steps: int = 1000, eta: float | None = None, start: str = "noise",
                       schedule: VESchedule | None = None, seed: int | None = None,
                       generator: torch.Generator | None = None, progress: bool = False,
                       callback: Callable[[dict], None] | None = None,
                       return_calls: bool = False) -> Tensor | tuple[Tensor, int]:
    """The SR3-style baseline: conditional diffusion from pure noise at T, one time for all pixels.

    Over the times of :func:`conditional_timesteps` (t → s), with ``x̂_0 = x − √γ_t ε̂``:
    ``x_s = x̂_0 + √(γ_s − c²) ε̂ + c z``, ``c² = eta² · γ_s (γ_t − γ_s)/γ_t``. eta = 1 with all T
    steps is the ancestral chain (Eq. 8); eta = 0 is the deterministic DDIM-style update for VE,
    ``x_s = x̂_0 + √γ_s ε̂``. The last step (s = 0) returns x̂_0.

    Parameters
    ----------
    model : callable
        ``model(y, x_t, t) -> ε̂`` trained by :func:`conditional_training_sample`.
    y : Tensor (B, C, H, W)
        Noisy images (the condition), linear scale.
    steps : int, optional
        Model calls, 1..T: T (1000) = every step; fewer = an evenly strided schedule.
    eta : float, optional
        Stochasticity in [0, 1]; default 1 (ancestral) when ``steps == T``, else 0 (DDIM).
    start : {"noise", "y"}, optional
        x_T = √γ_T n (default, SR3), or y + √γ_T n (centred on the data; the VE chain at T still
        carries x_0, whose linear values reach 1/w, so a zero-mean start is a prior mismatch that
        the conditioning has to absorb).
    schedule, seed, generator, progress, callback, return_calls
        As in :func:`sample_svnr` (callback gets ``{"i", "t", "x", "x0_hat"}`` with t an int).

    Returns
    -------
    x_hat : Tensor, shape of `y`, not clamped
    calls : int, only with ``return_calls=True``

    Examples
    --------
    >>> from denoiselab.svnr.schedule import gamma
    >>> x0 = torch.full((1, 3, 8, 8), 0.5)
    >>> oracle = lambda y, x, t: (x - x0) / gamma(t.double()).sqrt().float()
    >>> x_hat = sample_conditional(oracle, x0, steps=10, seed=0)
    >>> bool(torch.allclose(x_hat, x0, atol=1e-5))
    True
    """
    _check_model(model)
    _check_images(y=y)
    sched = schedule or DEFAULT_SCHEDULE
    times = conditional_timesteps(steps, sched.T)
    if eta is None:
        eta = 1.0 if steps == sched.T else 0.0
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 <= eta <= 1:
        raise DenoiselabError(f"eta={eta!r} must be a number in [0, 1] (0: DDIM, 1: ancestral)")
    if start not in ("noise", "y"):
        raise DenoiselabError(f"start={start!r} must be 'noise' (x_T = √γ_T n) or 'y' (x_T = y + √γ_T n)")
    gen = resolve_generator(seed, generator)
    b, _, h, w = y.shape
    x = math.sqrt(sched.gamma_max) * randn(tuple(y.shape), gen, dtype=y.dtype, device=y.device)
    if start == "y":
        x = x + y
    for i in tqdm(range(steps), desc="conditional", disable=not progress, leave=False):
        t, s = times[i], times[i + 1]
        t_map = torch.full((b, 1, h, w), float(t), dtype=torch.float64, device=y.device)
        x0_hat = _x0_hat(model, y, x, t_map, sched)
        g_t, g_s = float(sched.table[t]), float(sched.table[s])
        if s == 0:
            x = x0_hat
        else:
            eps = (x - x0_hat) / math.sqrt(g_t)
            c2 = eta**2 * g_s * (g_t - g_s) / g_t
            x = x0_hat + math.sqrt(max(g_s - c2, 0.0)) * eps
            if c2 > 0:
                x = x + math.sqrt(c2) * randn(tuple(y.shape), gen, dtype=y.dtype, device=y.device)
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "x0_hat": x0_hat})
    return (x, steps) if return_calls else x
