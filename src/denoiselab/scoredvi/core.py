"""ScoreDVI: score-prior guided deep variational inference for real-world single-image denoising.

Algorithm 1 of Cheng et al. (ICCV 2023). For each noisy image y, fresh seeded networks map y
to the variational parameters Θ (Eq. 10); every iteration draws M samples per component,
runs prior k (a blind MMSE Gaussian denoiser) on the samples of component k, and takes one
Adam step on L1 + λ(y)·L2 + L3 + L4 + L5 (Eqs. 11-17, 19) where the prior enters through the
score unit (Eq. 5). The output is the moving average of Σ_k π_k µ_k (Eq. 18) and the
per-pixel posterior variance Σ_k π_k² σ²_k.

Layout: :func:`scoredvi` (public: input forms, priors, λ and β, tiling, restart) →
:func:`fit_scoredvi` (the optimisation for a (B, C, H, W) batch; no host syncs in the loop).

References
----------
J. Cheng, T. Liu, S. Tan, "Score priors guided deep variational inference for unsupervised
real-world single image denoising", ICCV 2023, arXiv:2308.04682.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .._utils import resolve_device
from ..errors import DenoiselabError
from .nets import PosteriorNets
from ..noise import RealNoiseEstimate, colour_whitening
from ..pixel_shuffle import pd_refine
from .objective import ScoreIdentity, apply_priors, compute_loss_terms, compute_prior_samples
from .presets import PUBLISHED_COLOR_PRIORS, PUBLISHED_GRAY_PRIORS, Preset, get_preset
from ..tiling import count_tiles, denoise_tiled
from .prior_weight import choose_beta, choose_prior_weight, estimate_delta

__all__ = ["ScoreDVIResult", "scoredvi", "fit_scoredvi", "default_prior_names", "GrayFromColor", "load_priors"]

ALPHA = 1.0  # Gamma shape hyperprior α (§4.1)
D_PRIOR = 1.0  # Dirichlet hyperprior d (§4.1)

DenoiserFn = Callable[[Tensor, "float | Tensor"], Tensor]
MEAN_INITS = ("y", "prior", "pd", "auto")  # what µ_k is a residual on (NetConfig.mean_init)


@dataclass
class ScoreDVIResult:
    """What :func:`scoredvi` returns.

    Attributes
    ----------
    image : Tensor (B, C, H, W) or ndarray (H, W[, C])
        Denoised image(s), float32, **not clamped** (clamp to [0, 1] to show or save); same form as the input.
    variance : Tensor or ndarray, same form as `image`
        Per-pixel posterior variance Σ_k π_k² σ²_k (Eq. 18) on the [0, 1]² scale; ≥ 0.
    record : dict
        ``delta255`` (estimated noise std, 0-255, per image), ``lam`` (λ per image), ``beta``
        (per image), ``iterations``, ``seconds``, ``restarted`` (per image), ``preset``,
        ``priors`` (names), ``n_tiles``, ``loss`` ((T, B) history of the computable loss, for
        untiled runs), ``mean_sigma`` (mean posterior std per image after the kept run).
    """

    image: Tensor | np.ndarray
    variance: Tensor | np.ndarray
    record: dict = field(default_factory=dict)


class GrayFromColor(torch.nn.Module):
    """Use a colour denoiser on gray images: replicate to 3 channels, denoise, average back to 1."""

    def __init__(self, color_denoiser: torch.nn.Module):
        super().__init__()
        self.inner = color_denoiser

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        s = sigma.expand(-1, 3, -1, -1) if isinstance(sigma, Tensor) and sigma.ndim == 4 else sigma
        return self.inner(y.expand(-1, 3, -1, -1), s).mean(1, keepdim=True)


def default_prior_names(channels: int, preset: str | Preset = "fast") -> tuple[str, ...]:
    """The K = 3 priors `preset` uses when none are named, for images with `channels` channels."""
    cfg = get_preset(preset)
    return cfg.color_priors if channels == 3 else cfg.gray_priors


def load_priors(priors: Sequence[str | DenoiserFn] | None, channels: int, device: torch.device,
                precision: str = "fp32", preset: str | Preset = "fast") -> tuple[list[DenoiserFn], list[str]]:
    """Resolve prior names (or pass denoiser callables through) for images with `channels` channels,
    networks in `precision` (see :func:`denoiselab.denoisers.load_denoiser`); None: `preset`'s.

    Colour priors named for a gray image are wrapped in :class:`GrayFromColor`.
    """
    names = list(default_prior_names(channels, preset) if priors is None else priors)
    if not names:
        raise DenoiselabError("priors is empty; pass at least one denoiser name (see denoiselab.denoisers.list_denoisers())")
    out: list[DenoiserFn] = []
    labels: list[str] = []
    for p in names:
        if isinstance(p, str):
            try:
                from ..denoisers import load_denoiser  # type: ignore[attr-defined]
            except ImportError as err:
                raise DenoiselabError("denoiselab.denoisers.load_denoiser is not available; pass denoiser objects as priors") from err
            net = load_denoiser(p, device=str(device), precision=precision)
            net_ch = getattr(net, "channels", channels)
            if net_ch == 3 and channels == 1:
                net = GrayFromColor(net)
            elif net_ch != channels:
                raise DenoiselabError(f"prior {p!r} takes {net_ch}-channel images, the input has {channels}; pick a {channels}-channel prior")
            out.append(net)
            labels.append(p)
        elif callable(p):
            if isinstance(p, torch.nn.Module):
                p = p.to(device).eval()
                for q in p.parameters():
                    q.requires_grad_(False)
            out.append(p)
            labels.append(getattr(p, "name", type(p).__name__))
        else:
            raise DenoiselabError(f"prior {p!r} is neither a denoiser name nor a callable denoiser(y, sigma)")
    return out, labels


class _Adam:
    """Adam (Kingma & Ba 2015) with PyTorch's defaults and update formula, in a few foreach ops.

    Used instead of ``torch.optim.Adam`` because the first optimizer built in a process imports
    ``torch._dynamo`` (4-12 s on our 2-core CPU), a large part of a 45 s budget for one image.
    """

    def __init__(self, params: list[Tensor], *, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        grads = [p.grad for p in self.params]
        torch._foreach_lerp_(self.m, grads, 1 - b1)
        torch._foreach_mul_(self.v, b2)
        torch._foreach_addcmul_(self.v, grads, grads, value=1 - b2)
        bc1, bc2 = 1 - b1**self.t, 1 - b2**self.t
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_div_(denom, bc2**0.5)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, self.m, denom, value=-self.lr / bc1)


def _as_batch(y: Tensor | np.ndarray) -> tuple[Tensor, Callable[[Tensor], Tensor | np.ndarray]]:
    """Validate the input and return it as (B, C, H, W) float32 plus a function restoring its form."""
    if isinstance(y, np.ndarray):
        if y.ndim not in (2, 3) or (y.ndim == 3 and y.shape[2] not in (1, 3)):
            raise DenoiselabError(f"expected an (H, W) or (H, W, C) image with C = 1 or 3, got an array of shape {y.shape}")
        if not np.issubdtype(y.dtype, np.floating):
            raise DenoiselabError(f"expected a float image in [0, 1], got dtype {y.dtype}; divide 8-bit data by 255 (16-bit by 65535)")
        arr = y if y.ndim == 3 else y[:, :, None]
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).permute(2, 0, 1)[None]
        ndim2 = y.ndim == 2

        def back(x: Tensor) -> np.ndarray:
            a = x[0].permute(1, 2, 0).detach().cpu().numpy()
            return a[:, :, 0] if ndim2 else a

        return t, back
    if isinstance(y, Tensor):
        if y.ndim != 4 or y.shape[1] not in (1, 3):
            raise DenoiselabError(f"expected a (B, C, H, W) tensor with C = 1 or 3, got shape {tuple(y.shape)}")
        if not y.is_floating_point():
            raise DenoiselabError(f"expected a float tensor in [0, 1], got dtype {y.dtype}; divide 8-bit data by 255")
        dev, dt = y.device, y.dtype
        return y.detach().float(), lambda x: x.to(dev, dt)
    raise DenoiselabError(f"expected a torch.Tensor (B, C, H, W) or a numpy (H, W[, C]) image, got {type(y).__name__}")


def _check_values(y: Tensor) -> None:
    if y.shape[-1] < 2 or y.shape[-2] < 2:
        raise DenoiselabError(f"image of size {tuple(y.shape[-2:])} is too small; ScoreDVI needs at least 2×2 pixels")
    if not bool(torch.isfinite(y).all()):
        raise DenoiselabError("the image contains NaN or infinite values; replace them (e.g. numpy.nan_to_num) first")
    lo, hi = float(y.min()), float(y.max())
    if hi > 2.0 or lo < -1.0:  # unclipped noise may leave [0, 1] (σ = 0.1: ±0.55 over 24 MP), 0-255 data far more
        raise DenoiselabError(f"pixel values span [{lo:.3g}, {hi:.3g}]; ScoreDVI expects [0, 1] - divide 8-bit data by 255 (16-bit by 65535)")


def _warm_start(starts: Sequence[DenoiserFn], y: Tensor, mode: str, correlated: Tensor | None, *,
                stride: int = 2, whiten: bool = False, noise_estimate: RealNoiseEstimate | None = None) -> Tensor:
    """The images µ_k is a residual on, (B, K, C, H, W): each start prior's denoised y.

    ``mode`` "prior": D_k(y); "pd": D_k through PD-`stride` and PD refinement
    (:func:`pd_refine`), for spatially correlated noise, which a Gaussian denoiser leaves as
    blotches at full resolution; with `whiten`, on colours in which the noise is white across
    channels where that is safe (:func:`~denoiselab.noise.colour_whitening`); "auto": "pd" for
    the images flagged in `correlated`, "prior" for the others. `noise_estimate`: the
    :func:`~denoiselab.noise.estimate_real_noise` of the whole images `y` is a part of (a tile),
    whose noise levels the whitening then reuses instead of estimating them again.
    """
    b = y.shape[0]
    if mode == "auto":
        use_pd = torch.zeros(b, dtype=torch.bool) if correlated is None else correlated.reshape(b).bool().cpu()
    else:
        use_pd = torch.full((b,), mode == "pd")
    sigma = 1e-2  # blind priors ignore it; non-blind ones are told the noise is small
    base = torch.empty(b, len(starts), *y.shape[1:], device=y.device)
    with torch.no_grad():
        for sel, pd in ((use_pd, True), (~use_pd, False)):
            if bool(sel.any()):
                idx = sel.nonzero().flatten().to(y.device)
                ys = y[idx]
                if pd and whiten:
                    est = None if noise_estimate is None else noise_estimate.select(idx)
                    w, w_inv, _ = colour_whitening(ys.detach().double().cpu(), estimate=est)
                    w, w_inv = w.to(y.device, y.dtype), w_inv.to(y.device, y.dtype)
                    yw = torch.einsum("bij,bjhw->bihw", w, ys)
                    outs = [torch.einsum("bij,bjhw->bihw", w_inv, pd_refine(d, yw, stride, sigma)) for d in starts]
                elif pd:
                    outs = [pd_refine(d, ys, stride, sigma) for d in starts]
                else:
                    outs = [d(ys, sigma) for d in starts]
                base[idx] = torch.stack(outs, dim=1)
    return base


def fit_scoredvi(
    y: Tensor,
    priors: Sequence[DenoiserFn],
    *,
    lam: Tensor,
    beta: Tensor,
    preset: Preset,
    seed: int = 0,
    progress: bool = False,
    desc: str = "ScoreDVI",
    callback: Callable[[dict], None] | None = None,
    init_priors: Sequence[DenoiserFn] | None = None,
    correlated: Tensor | None = None,
    noise_estimate: RealNoiseEstimate | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Run Algorithm 1 once on a batch, with fresh networks seeded by `seed`.

    Parameters
    ----------
    y : Tensor, shape (B, C, H, W)
        Noisy images in [0, 1], on the device to compute on.
    priors : sequence of K denoisers ``D(y, sigma)`` taking C-channel images
    lam, beta : Tensor, shape (B,)
        λ(y) (Eq. 20) and the Gamma rate β per image.
    preset : Preset
        Iterations, samples, network sizes, optimiser and output settings.
    seed : int
        Seeds the network weights and the Monte Carlo draws (the same weights for every image).
    callback : callable, optional
        Called after every step with ``{"i": t, "image": ema, "theta": Θ, "loss": (B,)}`` (tensors
        on the device; the loop itself never syncs, a callback that reads values does).
    init_priors : sequence of K denoisers, optional
        For a warm start (``mean_init`` other than "y"): the denoisers of D_k(y); default `priors`.
    correlated : Tensor of bool, shape (B,), optional
        For ``mean_init="auto"``: which images have spatially correlated noise (warm start
        through PD, see :func:`_warm_start`); default none.
    noise_estimate : RealNoiseEstimate, optional
        :func:`~denoiselab.noise.estimate_real_noise` of the whole images (`y` may be a tile of
        them): the whitened warm start reuses its noise levels; default: estimated again.

    Returns
    -------
    image : Tensor (B, C, H, W)
        Moving average of Σ_k π_k µ_k over the iterations.
    variance : Tensor (B, C, H, W)
        Σ_k π_k² σ²_k of the last iteration (Eq. 18).
    loss : Tensor (T, B)
        Computable part of the loss per iteration (L without -E_q log p; λ applied).
    mean_sigma : Tensor (B,)
        Mean over pixels and components of σ_k after the last step (the restart test).
    """
    from tqdm.auto import tqdm

    b, c, h, w = y.shape
    k, m = len(priors), preset.n_samples
    dev = y.device
    gen_init = torch.Generator().manual_seed(int(seed))
    nets = PosteriorNets(b, c, k, preset.nets, gen_init, beta=beta).to(dev).train()
    opt = _Adam(list(nets.parameters()), lr=preset.lr)
    # one generator per image, all seeded alike: a batch gives exactly what single-image runs give
    gens = [torch.Generator(device=dev).manual_seed(int(seed) + 7919) for _ in range(b)]
    lam_b = lam.to(dev, torch.float32)
    beta_b = beta.to(dev, torch.float32)
    losses = torch.zeros(preset.n_iter, b, device=dev)
    ema = y.clone() if preset.ema_from_y else None
    variance = torch.zeros_like(y)
    mean_sigma = torch.zeros(b, device=dev)
    base = None
    if preset.nets.mean_init not in MEAN_INITS:
        raise DenoiselabError(f"mean_init={preset.nets.mean_init!r} must be one of {', '.join(map(repr, MEAN_INITS))}")
    if preset.nets.residual_mean and preset.nets.mean_init != "y":  # warm start: µ_k = D_k(y) + residual
        starts = priors if init_priors is None else init_priors
        if len(starts) != k:
            raise DenoiselabError(f"{len(starts)} warm-start priors for {k} components; give one per prior")
        base = _warm_start(starts, y, preset.nets.mean_init, correlated, stride=preset.nets.pd_stride,
                           whiten=preset.nets.pd_whiten, noise_estimate=noise_estimate)
    for t in tqdm(range(preset.n_iter), desc=desc, disable=not progress, leave=False):
        theta = nets(y, base)  # Alg. 1 line 2
        eps = torch.stack([torch.randn((k, m, c, h, w), generator=g, device=dev) for g in gens], dim=2)
        z = compute_prior_samples(theta, eps)  # Eq. 5: z = µ_k + σ_k ε
        var_k = theta.var.detach().transpose(0, 1).unsqueeze(1)  # (K, 1, B, C, H, W)
        denoised = apply_priors(priors, z.detach(), var_k)  # D_k(z), no gradient (Alg. 1 line 4)
        if preset.score_zero_mean:  # priors may not shift the global colour (see Preset)
            denoised = denoised - (denoised - z.detach()).mean(dim=(-2, -1), keepdim=True)
        score_term = ScoreIdentity.apply(z, denoised, var_k)  # identity, gradient = score (Eq. 17)
        if not preset.pi_score_gradient:  # value 0: π gets no gradient from the unknown E_q log p
            score_term = score_term - z.detach()
        terms = compute_loss_terms(y, theta, alpha=ALPHA, beta=beta_b, d_prior=D_PRIOR, score_term=score_term)
        loss = terms["L1"] + lam_b * terms["L2"] + terms["L3"] + terms["L4"] + terms["L5"]  # Eqs. 11, 19
        opt.zero_grad()
        loss.sum().backward()  # Alg. 1 line 6
        opt.step()  # line 7
        with torch.no_grad():
            losses[t] = loss.detach()
            mean_t = (theta.pi * theta.mu).sum(1)  # Eq. 18, from this iteration's Θ
            ema = mean_t if ema is None else preset.ema * ema + (1 - preset.ema) * mean_t
            if t == preset.n_iter - 1:
                variance = (theta.pi**2 * theta.var).sum(1)
                mean_sigma = torch.sqrt(theta.var).reshape(b, -1).mean(1)
            if callback is not None:
                callback({"i": t, "image": ema, "theta": theta, "loss": losses[t]})
    assert ema is not None
    return ema.detach(), variance.detach(), losses, mean_sigma


def scoredvi(
    y: Tensor | np.ndarray,
    *,
    preset: str | Preset = "fast",
    priors: Sequence[str | DenoiserFn] | None = None,
    n_iter: int | None = None,
    beta: float | str = "auto",
    gamma: float = 2.0,
    seed: int = 0,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    progress: bool = True,
    callback: Callable[[dict], None] | None = None,
    return_record: bool = True,
) -> ScoreDVIResult:
    """Denoise real-world noisy images with ScoreDVI (Cheng et al., ICCV 2023).

    Parameters
    ----------
    y : Tensor of shape (B, C, H, W) or ndarray of shape (H, W) / (H, W, C)
        Noisy images, float, values in [0, 1]; C = 1 (gray) or 3 (RGB).
    preset : {"fast", "paper"} or Preset, optional
        "paper": the authors' settings (K = 3 published priors, M = 5, full-size nets, 400
        iterations; its docstring lists what still differs). "fast": a CPU-sized setting
        (≈ 45 s for 256×256 RGB on 2 cores: K = 1 published prior, 40 iterations).
    priors : sequence of names or denoisers, optional
        The K image priors (one mixture component each): names for
        ``denoiselab.denoisers.load_denoiser`` or callables ``D(y, sigma)``. Default: the
        preset's (``fast``: the first published colour (CBSD300) or gray (BSD400) BF-DnCNN; ``paper``: the authors' three
        published ones; for gray input gray priors plus colour ones on replicated channels).
    n_iter : int, optional
        Overrides the preset's iteration count.
    beta : float or "auto", optional
        Rate β of the Gamma noise-precision hyperprior. Paper: 0.02 heavy noise (SIDD, FMDD),
        0.01 medium (CC), 0.005 light (PolyU). "auto": the preset's rule (``fast``: 0.02 for
        every image; ``paper``: picked among the three from the estimated δ).
    gamma : float, optional
        Prior assignment coefficient γ of Eq. 20 (paper: 2).
    seed : int, optional
        Seeds networks and samples; the same seed gives the same output on the CPU.
    device : str, optional
        "auto", "cpu", "cuda" or "cuda:N".
    precision : {"fp32", "bf16", "auto"}, optional
        Arithmetic of the prior networks (:func:`denoiselab.denoisers.load_denoiser`); the
        variational networks always train in float32.
    progress : bool, optional
        Show a tqdm bar over the iterations.
    callback : callable, optional
        Passed to :func:`fit_scoredvi` (called after every step with the running output);
        only for images that fit in one tile.
    return_record : bool, optional
        If False, `record` is an empty dict.

    Returns
    -------
    ScoreDVIResult
        ``image`` and ``variance`` in the input's form (not clamped), and ``record``.

    Raises
    ------
    DenoiselabError
        For inputs of the wrong shape or dtype, NaN/inf values, values far outside [0, 1],
        unknown presets or priors, or bad β/γ.

    Examples
    --------
    >>> from denoiselab.denoisers.bfdncnn import BFDnCNN
    >>> y = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> res = scoredvi(y, priors=[BFDnCNN(3, depth=3, width=8)], n_iter=3, progress=False, device="cpu")
    >>> res.image.shape, bool((res.variance >= 0).all())
    (torch.Size([1, 3, 16, 16]), True)
    """
    t0 = time.perf_counter()
    yb, back = _as_batch(y)
    _check_values(yb)
    cfg = get_preset(preset, n_iter=n_iter)
    if cfg.n_iter < 1 or cfg.n_samples < 1:
        raise DenoiselabError(f"n_iter={cfg.n_iter} and n_samples={cfg.n_samples} must be >= 1")
    dev = resolve_device(device)
    yb = yb.to(dev)
    bsz, ch = yb.shape[:2]
    if cfg.warm_start_priors not in ("same", "published"):  # checked before any network is loaded
        raise DenoiselabError(f"warm_start_priors={cfg.warm_start_priors!r} must be 'same' or 'published'")
    prior_fns, prior_names = load_priors(priors, ch, dev, precision, cfg)
    init_fns = None
    if cfg.warm_start_priors == "published":
        init_fns, _ = load_priors(PUBLISHED_COLOR_PRIORS if ch == 3 else PUBLISHED_GRAY_PRIORS, ch, dev, precision, cfg)
    if callback is not None and count_tiles(int(yb.shape[-2]), int(yb.shape[-1]), cfg.max_side, cfg.tile_overlap) > 1:
        raise DenoiselabError(f"callback needs an image that fits one tile (sides <= {cfg.max_side}); crop it first")

    # Eq. 20's δ (PD stride 4, 0-255 scale) and, from the same estimate, the white / correlated
    # decision that picks the warm start of mean_init="auto"
    delta, noise_estimate = estimate_delta(yb, return_estimate=True)
    delta = delta.reshape(-1).float().cpu()
    correlated = None
    if cfg.nets.mean_init == "auto":
        correlated = torch.zeros(bsz, dtype=torch.bool) if noise_estimate is None else noise_estimate.correlated.cpu()
    lam = choose_prior_weight(delta, gamma=gamma)
    if beta == "auto" and cfg.auto_beta is not None:
        beta_t = torch.full((bsz,), float(cfg.auto_beta))
    elif beta == "auto":
        beta_t = choose_beta(delta)
    elif isinstance(beta, (int, float)) and not isinstance(beta, bool) and beta > 0:
        beta_t = torch.full((bsz,), float(beta))
    else:
        raise DenoiselabError(f"beta={beta!r} must be 'auto' or a positive float (paper: 0.005, 0.01 or 0.02)")

    def run(sub: Tensor, idx: Tensor, run_seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        def fit(tile: Tensor):
            img, var, loss, ms = fit_scoredvi(tile, prior_fns, lam=lam[idx], beta=beta_t[idx], preset=cfg,
                                              seed=run_seed, progress=progress, callback=callback,
                                              init_priors=init_fns, correlated=None if correlated is None else correlated[idx],
                                              noise_estimate=None if noise_estimate is None else noise_estimate.select(idx))
            fit.losses.append(loss)
            fit.sigmas.append(ms)
            return img, var

        fit.losses, fit.sigmas = [], []  # type: ignore[attr-defined]
        img, var = denoise_tiled(fit, sub, cfg.max_side, cfg.tile_overlap)
        ms = torch.stack(fit.sigmas).mean(0)  # type: ignore[attr-defined]
        loss = fit.losses[0] if len(fit.losses) == 1 else torch.empty(0)  # type: ignore[attr-defined]
        return img, var, loss, ms

    all_idx = torch.arange(bsz)
    image, variance, loss, mean_sigma = run(yb, all_idx, seed)
    restarted = torch.zeros(bsz, dtype=torch.bool)
    if cfg.restart:  # authors' rule: a run whose mean σ_k stays above the threshold is redone from scratch
        again = (mean_sigma.cpu() > cfg.restart_threshold).nonzero().flatten()
        if again.numel():
            img2, var2, _, ms2 = run(yb[again.to(dev)], again, seed + 1)
            image[again.to(dev)], variance[again.to(dev)], mean_sigma[again.to(dev)] = img2, var2, ms2
            restarted[again] = True
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    n_tiles = count_tiles(int(yb.shape[-2]), int(yb.shape[-1]), cfg.max_side, cfg.tile_overlap)
    record = {}
    if return_record:
        record = {
            "delta255": delta.tolist(), "lam": lam.tolist(), "beta": beta_t.tolist(), "gamma": gamma,
            "correlated": None if correlated is None else correlated.tolist(),
            "iterations": cfg.n_iter, "seconds": seconds, "restarted": restarted.tolist(), "preset": cfg.name,
            "priors": prior_names, "n_samples": cfg.n_samples, "seed": seed, "n_tiles": n_tiles,
            "mean_sigma": mean_sigma.cpu().tolist(), "loss": loss.cpu(), "device": str(dev),
        }
    return ScoreDVIResult(image=back(image), variance=back(variance), record=record)
