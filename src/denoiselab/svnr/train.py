"""Training of the SVNR networks and of the conditional-diffusion baseline, and loading them back.

Three kinds share the UNet, the schedule, the data and the noise model; only the training pair
differs:

- ``"svnr"``: the correlation-aware pair of Eq. 11 (:func:`~denoiselab.svnr.diffusion.training_sample`);
- ``"svnr-uncorrelated"``: the same time maps with independent noise (the ablation);
- ``"conditional"``: the SR3-style baseline, one time t ~ U{1..T} per image.

and two parameterisations: ``"eps"``, the UNet's output is ε̂ (SVNR's and SR3's choice), and
``"edm"``, the UNet wrapped in :class:`~denoiselab.svnr.unet.Preconditioned` (Karras et al.'s
scalings and loss weight). The shipped baseline is trained the EDM way on DDPM's chain:
``parameterization="edm", schedule_form="vp", lam=1, time_sampling="lognormal"``. At the CPU
budget (3000 steps of 8 crops) that was the only recipe of four that beat the noisy input at
all (``benchmarks/results/svnr/``): plain ε on SVNR's chain, and EDM with uniform times or with
the x̂_0 loss, stayed below it.

Random crops of clean sRGB images are converted to linear values over a random white level and
given shot + read noise (:func:`~denoiselab.svnr.noise.make_noisy_batch`); the time maps come from
the variance estimated on the noisy crop, as at test time (``time_map``, see :class:`SVNRConfig`); the loss is the MSE
between ε̂ and the target (times the parameterisation's weight), averaged over the pixels with
t > 0 (at t = 0 the target is noise the sampler never uses: it multiplies ε̂ by √γ_0 = 0). Adam with the cosine decay of
:mod:`denoiselab.training.train`, gradient-norm clipping, checkpoints every `checkpoint_every`
steps that resume exactly (model, optimiser, RNG, loss log), bf16 autocast on CUDA only, and at the
end safetensors weights with a JSON card that records the validation PSNR on a few fixed crops.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._utils import resolve_device
from ..denoisers.weights import load_state, read_card, save_weights
from ..errors import DenoiselabError
from ..training.patches import PatchSampler, load_training_images
from ..training.train import _learning_rate, _load_checkpoint, _save_checkpoint
from .diffusion import conditional_training_sample, sample_conditional, sample_svnr, training_sample
from .noise import READ_RANGE, SHOT_RANGE, SIGMA_FLOOR, VARIANCES, WHITE_RANGE, add_svnr_noise, estimate_variance, \
    make_noisy_batch, to_linear, to_srgb
from .schedule import VESchedule
from .unet import Preconditioned, SVNRUNet

__all__ = ["KINDS", "PARAMETERIZATIONS", "LOSS_WEIGHTINGS", "TIME_SAMPLINGS", "SVNRConfig", "build_model",
           "SVNRModel", "training_loss", "evaluate_svnr", "train_svnr", "load_svnr"]

KINDS = ("svnr", "svnr-uncorrelated", "conditional")
PARAMETERIZATIONS = ("eps", "edm")
LOSS_WEIGHTINGS = ("natural", "x0")
TIME_SAMPLINGS = ("uniform", "lognormal")


@dataclass
class SVNRConfig:
    """Everything that defines an SVNR training run (stored in checkpoints and in the model card).

    Noise parameters are on the linear [0, 1/w] scale of :mod:`denoiselab.svnr.noise`;
    `val_noise` lists ``[read_sigma, shot_sigma, white_level]`` settings for the validation.
    `parameterization` (eps, edm), `sigma_data` (σ_d of edm), `loss_weighting` (natural, x0),
    `time_sampling` (uniform, lognormal; conditional kind only) and `schedule_form` (svnr, vp;
    with `lam`) are the recipe choices of :func:`training_loss`, :func:`build_model` and
    :class:`~denoiselab.svnr.schedule.VESchedule`.

    `time_map` (svnr kinds): the variance the training time maps t* = γ⁻¹(σ²) come from.
    "estimated" (default): from the noisy image, ``σ_r² + σ_s²·clip(y, 0, 1/w)``, the map the
    sampler is given at test time. "true": from the clean image, as the notes' reconstruction
    has it; the map then carries the clean image wherever shot noise dominates (σ² grows with
    x), a hint the network learns to read and that the test-time map, made from y, gives
    noisily. Models trained that way do best told about half the true shot noise
    (``benchmarks/results/real_noise_estimation/``, part ``svnr-told``). Checkpoints written
    before the field existed resume as "true".
    """

    name: str
    train_dirs: list[str]
    kind: str = "svnr"
    parameterization: str = "eps"
    sigma_data: float = 0.5
    loss_weighting: str = "natural"
    time_sampling: str = "uniform"
    time_map: str = "estimated"
    val_dir: str | None = None
    channels: int = 3
    base_width: int = 32
    levels: int = 2
    time_pairs: int = 16
    patch_size: int = 64
    batch_size: int = 16
    steps: int = 100_000
    lr: float = 2e-4
    lr_min: float = 1e-6
    grad_clip: float = 1.0
    read_range: list[float] = field(default_factory=lambda: list(READ_RANGE))
    shot_range: list[float] = field(default_factory=lambda: list(SHOT_RANGE))
    white_range: list[float] = field(default_factory=lambda: list(WHITE_RANGE))
    T: int = 1000
    lam: float = 5.0
    schedule_form: str = "svnr"
    seed: int = 0
    max_minutes: float | None = None
    checkpoint_every: int = 1000
    log_every: int = 100
    val_crops: int = 8
    val_noise: list[list[float]] = field(default_factory=lambda: [[0.05, 0.02, 1.0], [0.15, 0.05, 0.5]])
    val_conditional_steps: int = 100
    amp: str = "bf16"
    device: str = "auto"


# Settings that may change between a run and its resumption (length, budget, logging, validation, hardware).
_NOT_RECIPE = ("steps", "max_minutes", "checkpoint_every", "log_every", "val_dir", "val_crops", "val_noise",
               "val_conditional_steps", "amp", "device")


def _recipe(config: dict) -> dict:
    return {k: v for k, v in json.loads(json.dumps(config)).items() if k not in _NOT_RECIPE}


def _check_config(cfg: SVNRConfig) -> None:
    if cfg.kind not in KINDS:
        raise DenoiselabError(f"kind={cfg.kind!r} must be one of {', '.join(KINDS)}")
    VESchedule(T=cfg.T, lam=cfg.lam, form=cfg.schedule_form)  # its own checks
    for name, allowed in (("parameterization", PARAMETERIZATIONS), ("loss_weighting", LOSS_WEIGHTINGS),
                          ("time_sampling", TIME_SAMPLINGS), ("time_map", VARIANCES)):
        if getattr(cfg, name) not in allowed:
            raise DenoiselabError(f"{name}={getattr(cfg, name)!r} must be one of {', '.join(allowed)}")
    if cfg.time_sampling != "uniform" and cfg.kind != "conditional":
        raise DenoiselabError(f"time_sampling={cfg.time_sampling!r} is for the conditional kind; SVNR's times come "
                              "from the noise")
    if cfg.amp not in ("bf16", "fp16", "none"):
        raise DenoiselabError(f"amp={cfg.amp!r} must be 'bf16', 'fp16' or 'none' (used on CUDA only)")
    for name in ("steps", "batch_size", "patch_size", "checkpoint_every", "log_every", "val_crops",
                 "val_conditional_steps"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DenoiselabError(f"{name}={value!r} must be a positive integer")
    if not 0 < cfg.lr_min <= cfg.lr:
        raise DenoiselabError(f"need 0 < lr_min <= lr, got lr={cfg.lr}, lr_min={cfg.lr_min}")
    for setting in cfg.val_noise:
        if len(setting) != 3 or min(setting) < 0 or setting[2] <= 0:
            raise DenoiselabError(f"val_noise entry {setting!r} must be [read_sigma >= 0, shot_sigma >= 0, white_level > 0]")


def training_loss(model: nn.Module, kind: str, x_srgb: Tensor, *, cfg: SVNRConfig, schedule: VESchedule,
                  generator: torch.Generator | None = None) -> Tensor:
    """The MSE on ε for one batch of clean sRGB patches (B, C, P, P) in [0, 1], by `kind`.

    Makes the noisy linear batch, the kind's training pair, calls ``model(y, x_t, t)`` and averages
    the weighted squared error over channels and the pixels with t > 0. Weights by
    ``cfg.loss_weighting``: "natural" is the parameterisation's own loss (1 for ε; for
    :class:`~denoiselab.svnr.unet.Preconditioned`, ``model.loss_weight(t)``, the MSE on F), "x0"
    is the MSE on x̂_0 (γ_t/σ_d², every time by its error in the image). The baseline's times are
    U{1..T} ("uniform", SR3) or EDM's log-normal ln σ ~ N(−1.2, 1.2²) ("lognormal"), as
    fractional times. On DDPM's chain uniform t puts three quarters of the draws at σ > 1, where
    x_t shows almost nothing; the log-normal puts 95 % in σ ≈ 0.03–3.
    """
    x0, y, sigma2 = make_noisy_batch(x_srgb, read_range=cfg.read_range, shot_range=cfg.shot_range,
                                     white_range=cfg.white_range, variance=cfg.time_map, generator=generator)
    if kind == "conditional":
        t = None
        if cfg.time_sampling == "lognormal":
            z = torch.randn(x0.shape[0], generator=generator, dtype=torch.float64, device=generator.device
                            if generator is not None else "cpu")
            s2 = torch.exp(2 * (-1.2 + 1.2 * z)).clamp(float(schedule.table[1]), schedule.gamma_max)
            t = schedule.time_map(s2.view(-1, 1, 1, 1).cpu()).view(-1)
        pair = conditional_training_sample(x0, t=t, schedule=schedule, generator=generator)
    else:
        pair = training_sample(x0, y, sigma2, correlated=kind == "svnr", schedule=schedule, generator=generator)
    eps_hat = model(y, pair.x_t, pair.t).float()
    mask = (pair.t > 0).float()
    if cfg.loss_weighting == "x0":
        mask = mask * schedule.gamma(pair.t.double()).float() / cfg.sigma_data**2
    elif hasattr(model, "loss_weight"):
        mask = mask * model.loss_weight(pair.t)
    err = ((eps_hat - pair.target.float()) ** 2 * mask).sum()
    return err / ((pair.t > 0).sum() * x0.shape[1]).clamp_min(1)


def _val_crops(cfg: SVNRConfig) -> Tensor | None:
    """Centre crops (patch_size²) of the first `val_crops` images of `val_dir` (sorted by name), float in [0, 1]."""
    if not cfg.val_dir:
        return None
    images = load_training_images([cfg.val_dir], channels=cfg.channels, min_side=cfg.patch_size)[: cfg.val_crops]
    p = cfg.patch_size
    crops = [im[:, (im.shape[1] - p) // 2 : (im.shape[1] - p) // 2 + p, (im.shape[2] - p) // 2 : (im.shape[2] - p) // 2 + p]
             for im in images]
    return torch.stack(crops).float().div_(255)


@torch.no_grad()
def evaluate_svnr(model: nn.Module, kind: str, x_srgb: Tensor, val_noise: list[list[float]], *, schedule: VESchedule,
                  seed: int = 0, conditional_steps: int = 100) -> dict[str, dict]:
    """PSNR (dB, sRGB, data range 1) of `model` on clean sRGB crops `x_srgb` under each noise setting.

    For each ``[read_sigma, shot_sigma, white_level]``: ``x = to_linear(x_srgb, w)``, noise with a
    generator seeded by `seed`, then SVNR sampling from ``σ̂² = estimate_variance(y, ...)`` (the
    test-time estimate, not the true σ²) or, for the conditional kind, `conditional_steps` DDIM
    steps; both seeded by `seed`. Scores ``to_srgb(x̂, w)`` and ``to_srgb(y, w)`` against `x_srgb`.

    Returns
    -------
    results : dict
        ``{"read=… shot=… w=…": {"noisy_psnr", "psnr", "calls"}}``, PSNR means over the crops.
    """
    from ..metrics import psnr

    model.eval()
    device = next(model.parameters()).device
    out = {}
    for read, shot, white in val_noise:
        gen = torch.Generator().manual_seed(seed)
        x_lin = to_linear(x_srgb, white)
        y, _ = add_svnr_noise(x_lin, read, shot, generator=gen)
        y = y.to(device)
        if kind == "conditional":
            x_hat, calls = sample_conditional(model, y, steps=conditional_steps, schedule=schedule, seed=seed,
                                              return_calls=True)
        else:
            sigma2 = estimate_variance(y, read, shot, white_level=white)
            x_hat, calls = sample_svnr(model, y, sigma2, schedule=schedule, seed=seed, clamp=True, return_calls=True)
        key = f"read={read:g} shot={shot:g} w={white:g}"
        out[key] = {"noisy_psnr": round(float(psnr(to_srgb(y.cpu(), white), x_srgb).mean()), 3),
                    "psnr": round(float(psnr(to_srgb(x_hat.float().cpu(), white), x_srgb).mean()), 3), "calls": calls}
    return out


def _amp_context(cfg: SVNRConfig, device: torch.device):
    if device.type != "cuda" or cfg.amp == "none":
        return torch.autocast("cpu", enabled=False)
    return torch.autocast("cuda", dtype=torch.bfloat16 if cfg.amp == "bf16" else torch.float16)


def _resume(ckpt: Path, model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator, cfg: SVNRConfig) -> dict:
    from safetensors import safe_open

    with safe_open(str(ckpt), framework="pt") as f:
        stored = json.loads(f.metadata()["meta"])["config"]
    stored.setdefault("time_map", "true")  # written before the setting existed: the clean image's variance
    if _recipe(asdict(SVNRConfig(**stored))) != _recipe(asdict(cfg)):  # fields added later take their defaults
        raise DenoiselabError(f"{ckpt} was written by a different training configuration; use another output folder")
    return _load_checkpoint(ckpt, model, opt, gen, None)  # the recipe is checked above, the SVNR way


def train_svnr(cfg: SVNRConfig, out_dir: str | Path, *, progress: bool = True,
               stop_at_step: int | None = None) -> Path | None:
    """Train one of the three kinds as `cfg` says; resume from ``out_dir/checkpoint.safetensors``.

    Writes ``out_dir/<name>.safetensors`` and its ``.json`` card at the end and returns the weights
    path. With `stop_at_step`, stops there with a checkpoint only (as an interrupted run would) and
    returns None; calling again with the same configuration continues exactly.

    Examples
    --------
    >>> cfg = SVNRConfig(name="svnr-rgb", train_dirs=["/work/shared/data/train/color"],
    ...                  val_dir="/work/shared/data/test/synthetic/CBSD68")
    >>> cfg.kind, cfg.patch_size, cfg.read_range, cfg.shot_range
    ('svnr', 64, [0.001, 0.2], [0.0001, 0.05])
    """
    _check_config(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    schedule = VESchedule(T=cfg.T, lam=cfg.lam, form=cfg.schedule_form)
    torch.manual_seed(cfg.seed)
    parameterization = {"name": cfg.parameterization, "sigma_data": cfg.sigma_data}  # also the card's
    model = build_model(SVNRUNet(cfg.channels, base_width=cfg.base_width, levels=cfg.levels,
                                 time_pairs=cfg.time_pairs, T=cfg.T), schedule, parameterization).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    ckpt = out_dir / "checkpoint.safetensors"
    step, elapsed, loss_log, window = 0, 0.0, [], []
    if ckpt.exists():
        meta = _resume(ckpt, model, opt, gen, cfg)
        step, elapsed, loss_log, window = meta["step"], meta["elapsed"], meta["loss_log"], meta["loss_window"]

    images = load_training_images(cfg.train_dirs, channels=cfg.channels, min_side=cfg.patch_size)
    sampler = PatchSampler(images, patch_size=cfg.patch_size, batch_size=cfg.batch_size, generator=gen)
    amp = _amp_context(cfg, device)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and cfg.amp == "fp16" else None

    def checkpoint():
        _save_checkpoint(ckpt, model, opt, gen, {"step": step, "elapsed": elapsed, "config": asdict(cfg),
                                                 "loss_log": loss_log, "loss_window": [float(v) for v in window]})

    model.train()
    start = time.monotonic() - elapsed
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc=cfg.name, unit="step")
    last = min(cfg.steps, stop_at_step or cfg.steps)
    while step < last and not (cfg.max_minutes and elapsed >= 60 * cfg.max_minutes):
        for group in opt.param_groups:
            group["lr"] = _learning_rate(cfg, step, elapsed)
        x = sampler.sample().to(device, non_blocking=True)
        with amp:
            loss = training_loss(model, cfg.kind, x, cfg=cfg, schedule=schedule, generator=gen)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        step += 1
        elapsed = time.monotonic() - start
        window.append(loss.detach())  # no GPU sync per step; read out every log_every steps
        if step % cfg.log_every == 0:
            loss_log.append([step, sum(float(v) for v in window) / len(window)])
            window = []
            bar.set_postfix(loss=f"{loss_log[-1][1]:.3f}", lr=f"{opt.param_groups[0]['lr']:.1e}")
        bar.update(1)
        if step % cfg.checkpoint_every == 0:
            checkpoint()
    bar.close()
    checkpoint()
    if step < cfg.steps and not (cfg.max_minutes and elapsed >= 60 * cfg.max_minutes):
        return None

    model.eval()
    crops = _val_crops(cfg)
    validation = None
    if crops is not None:
        validation = {
            "set": Path(cfg.val_dir).name,
            "crops": int(crops.shape[0]),
            "crop_size": cfg.patch_size,
            "protocol": ("centre crops of the first images by name; sRGB -> linear / w, shot+read noise (seed 0), "
                         "SVNR from the estimated variance, or the baseline with "
                         f"{cfg.val_conditional_steps} DDIM steps; PSNR in sRGB, data range 1"),
            "results": evaluate_svnr(model, cfg.kind, crops, cfg.val_noise, schedule=schedule, seed=0,
                                     conditional_steps=cfg.val_conditional_steps),
        }
    card = {
        "name": cfg.name,
        "kind": cfg.kind,
        "architecture": model.config(),
        "parameterization": parameterization,
        "schedule": schedule.to_dict(),
        "training_data": [str(Path(d).name) for d in cfg.train_dirs],
        "training_images": len(images),
        "noise": {"model": "linear RGB: y = max(x + sigma*n, 0), sigma^2 = read^2 + shot^2*x, sigma >= "
                           f"{SIGMA_FLOOR:g}; x = srgb_to_linear(x_srgb) / w",
                  "read_range": cfg.read_range, "shot_range": cfg.shot_range, "white_range": cfg.white_range,
                  **({"time_map": cfg.time_map} if cfg.kind != "conditional" else {})},
        "loss": "MSE between predicted and target noise over pixels with t > 0" + (
            ", weighted by gamma_t/sigma_data^2 (the MSE on x0)" if cfg.loss_weighting == "x0" else
            ", weighted by 1 + gamma_t/sigma_data^2 (EDM)" if cfg.parameterization == "edm" else ""),
        "time_sampling": cfg.time_sampling if cfg.kind == "conditional" else "from the noise (t* of each pixel)",
        "patch_size": cfg.patch_size,
        "batch_size": cfg.batch_size,
        "steps": step,
        "optimizer": f"Adam lr {cfg.lr:g} cosine to {cfg.lr_min:g}, grad-norm clip {cfg.grad_clip:g}",
        "amp": cfg.amp if device.type == "cuda" else "none",
        "seed": cfg.seed,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "host": platform.machine(),
        "torch": torch.__version__,
        "wall_time_minutes": round(elapsed / 60, 2),
        "loss_log": [[s, round(v, 5)] for s, v in loss_log],
        "validation": validation,
    }
    return save_weights(model, out_dir / f"{cfg.name}.safetensors", card)


def build_model(net: SVNRUNet, schedule: VESchedule, parameterization: dict | None = None) -> nn.Module:
    """`net` as an ε̂ model: itself for ``{"name": "eps"}`` (or None, what cards before the field
    meant), wrapped in :class:`~denoiselab.svnr.unet.Preconditioned` for ``{"name": "edm",
    "sigma_data": σ_d}``."""
    spec = parameterization or {"name": "eps"}
    if spec.get("name") == "eps":
        return net
    if spec.get("name") == "edm":
        return Preconditioned(net, schedule, spec.get("sigma_data", 0.5))
    raise DenoiselabError(f"parameterization {spec!r} is not one of {', '.join(PARAMETERIZATIONS)}")


class SVNRModel(NamedTuple):
    """A trained network with what sampling needs: its kind, schedule and card."""

    model: nn.Module
    kind: str
    schedule: VESchedule
    card: dict


def load_svnr(path: str | Path, *, device: str | torch.device = "cpu") -> SVNRModel:
    """Load weights written by :func:`train_svnr` (safetensors only, no pickles) and their card.

    Parameters
    ----------
    path : str or Path
        The ``.safetensors`` file; its ``.json`` card must lie beside it.
    device : str or torch.device, optional
        Where the network goes ("cpu", "cuda", "auto").

    Returns
    -------
    SVNRModel
        ``(model, kind, schedule, card)``, the model in eval mode.
    """
    card = read_card(path)
    if card.get("kind") not in KINDS or not isinstance(card.get("architecture"), dict):
        raise DenoiselabError(f"{path} is not an SVNR model: its card lacks kind ({', '.join(KINDS)}) and architecture")
    try:
        schedule = VESchedule(**card.get("schedule", {}))
        model = build_model(SVNRUNet(**card["architecture"]), schedule, card.get("parameterization"))
    except (TypeError, AttributeError) as err:
        raise DenoiselabError(f"{path}: the card's architecture or schedule is not understood ({err})") from err
    load_state(model, path)
    return SVNRModel(model.to(resolve_device(device)).eval(), card["kind"], schedule, card)
