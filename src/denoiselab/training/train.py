"""Training loop for blind MMSE Gaussian denoisers (used for the CPU priors and, on a GPU, the full-size ones).

The network sees clean patches x plus white Gaussian noise of a standard deviation drawn per
patch, uniformly in [sigma_min, sigma_max], and minimises the mean squared error to x: the
minimiser of that loss is the MMSE denoiser E[x | y], whose residual gives the score by
Tweedie/Miyasawa. Adam with a cosine learning-rate decay; the decay follows whichever is further
along, the step count or the wall-clock budget, so a run cut short by `max_minutes` still ends on
a small learning rate.

Distillation (``teacher``): the target becomes ``w·T(y) + (1 − w)·x``, with T a larger trained
denoiser (e.g. the published ``bfdncnn-color-cbsd300``) run on the same noisy patch and w the
``teacher_weight``. T(y) approximates E[x | y] itself, the very function the student's MSE
minimiser is, so its target has far less variance than the clean patch's (the noise the
student cannot predict is gone), at the price of one teacher call per step. Measured
(``benchmarks/distillation.py``): for the 10 × 32 colour student with the 20 × 64 CBSD300
teacher, that price is 2.6× a plain step, and the distilled student ended 1.5 dB below plain
training at equal wall time, and no better step for step.
Checkpoints (safetensors: model, optimiser, RNG state) let a run resume
exactly where it stopped; on CUDA it trains in bf16 autocast with channels_last.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .._utils import resolve_device
from ..denoisers.bfdncnn import BFDnCNN
from ..denoisers.weights import load_state, save_weights
from ..errors import DenoiselabError
from .patches import PatchSampler, load_training_images


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in checkpoints and in the model card).

    Sigmas are noise standard deviations on the 0–255 scale, as training recipes state them.
    """

    name: str
    train_dirs: list[str]
    channels: int = 3
    depth: int = 20
    width: int = 64
    patch_size: int = 40
    batch_size: int = 32
    steps: int = 10_000
    lr: float = 1e-3
    lr_min: float = 1e-5
    sigma_min255: float = 0.0
    sigma_max255: float = 100.0
    seed: int = 0
    max_minutes: float | None = None
    checkpoint_minutes: float = 5.0
    test_dir: str | None = None
    test_sigmas255: list[float] = field(default_factory=lambda: [15.0, 25.0, 50.0])
    device: str = "auto"
    teacher: str | None = None
    teacher_weight: float = 1.0


def _recipe(config: dict) -> dict:
    """The part of a configuration that must match for a checkpoint to resume (not the length, budget or device)."""
    return {k: v for k, v in config.items() if k not in ("steps", "max_minutes", "checkpoint_minutes", "device", "test_dir")}


def _learning_rate(cfg: TrainConfig, step: int, elapsed: float) -> float:
    progress = step / cfg.steps
    if cfg.max_minutes:
        progress = max(progress, elapsed / (60 * cfg.max_minutes))
    progress = min(progress, 1.0)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * progress))


def _save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator, meta: dict) -> None:
    from safetensors.torch import save_file

    from ..io import atomic_write

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_state = opt.state_dict()
    for idx, state in opt_state["state"].items():
        for key, value in state.items():
            tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng_state"] = gen.get_state()
    meta = {**meta, "param_groups": opt_state["param_groups"]}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta)}))


def _load_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator,
                     cfg: TrainConfig | None) -> dict:
    """Restore model, optimiser and RNG; `cfg` None: the caller has checked the recipe its own way."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
        if cfg is not None and _recipe(meta["config"]) != _recipe(asdict(cfg)):
            raise DenoiselabError(f"{path} was written by a different training configuration; use another --out")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    gen.set_state(tensors["rng_state"])
    return meta


@torch.no_grad()
def evaluate_denoiser(model: nn.Module, test_dir: str | Path, sigmas255: list[float], *, channels: int, seed: int = 0,
                      device: torch.device | str = "cpu", limit: int | None = None) -> dict[str, float]:
    """Mean PSNR (dB) of `model` on the images of `test_dir` with AWGN of each σ (0–255), fixed seed, no clipping."""
    from ..metrics import psnr
    from .patches import list_images, _to_channels
    from ..io import read_image

    model.eval()
    files = list_images(test_dir)[:limit]
    out = {}
    for s255 in sigmas255:
        gen = torch.Generator().manual_seed(seed)
        scores = []
        for path in files:
            x = torch.from_numpy(_to_channels(read_image(path).array, channels))[None]
            y = x + (s255 / 255) * torch.randn(x.shape, generator=gen)
            scores.append(float(psnr(model(y.to(device), s255 / 255).float().cpu(), x)[0]))
        out[f"{s255:g}"] = round(sum(scores) / len(scores), 3)
    return out


def _load_teacher(cfg: TrainConfig, device: torch.device):
    """The teacher network of a distillation run (None without one); it must take the student's channels."""
    if cfg.teacher is None:
        return None
    from ..denoisers import load_denoiser_for

    _, teacher = load_denoiser_for(cfg.teacher, cfg.channels, device=device)
    if not isinstance(teacher, nn.Module):
        raise DenoiselabError(f"teacher {cfg.teacher!r} is not a network; distil from a trained denoiser (see list-denoisers)")
    return teacher


@torch.no_grad()
def _distilled_target(teacher: nn.Module, y: torch.Tensor, sigma: torch.Tensor, x: torch.Tensor, weight: float,
                      amp) -> torch.Tensor:
    """``weight·teacher(y, σ) + (1 − weight)·x``: the regression target of a distillation step."""
    with amp:
        t = teacher(y, sigma).float()
    return t if weight == 1.0 else weight * t + (1.0 - weight) * x


def train_denoiser(cfg: TrainConfig, out_dir: str | Path, *, progress: bool = True, stop_at_step: int | None = None) -> Path | None:
    """Train a blind bias-free DnCNN as `cfg` says; resume from ``out_dir/checkpoint.safetensors``.

    Writes ``out_dir/<name>.safetensors`` with its ``.json`` model card at the end and returns
    the weights path. With `stop_at_step`, stops there with a checkpoint only (as an interrupted
    run would; for splitting a run over several time-limited calls) and returns None.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    if not 0 <= cfg.sigma_min255 <= cfg.sigma_max255:
        raise DenoiselabError(f"need 0 <= sigma_min255 <= sigma_max255, got {cfg.sigma_min255}, {cfg.sigma_max255}")
    if not 0.0 <= cfg.teacher_weight <= 1.0:
        raise DenoiselabError(f"teacher_weight={cfg.teacher_weight!r} must be in [0, 1] (1: the teacher's output alone)")
    teacher = _load_teacher(cfg, device)
    torch.manual_seed(cfg.seed)
    model = BFDnCNN(cfg.channels, depth=cfg.depth, width=cfg.width).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    ckpt = out_dir / "checkpoint.safetensors"
    step, elapsed = 0, 0.0
    if ckpt.exists():
        meta = _load_checkpoint(ckpt, model, opt, gen, cfg)
        step, elapsed = meta["step"], meta["elapsed"]

    images = load_training_images(cfg.train_dirs, channels=cfg.channels, min_side=cfg.patch_size)
    sampler = PatchSampler(images, patch_size=cfg.patch_size, batch_size=cfg.batch_size, generator=gen)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)

    def checkpoint():
        _save_checkpoint(ckpt, model, opt, gen, {"step": step, "elapsed": elapsed, "config": asdict(cfg)})

    model.train()
    start, last_ckpt = time.monotonic() - elapsed, time.monotonic()
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc=cfg.name, unit="step")
    last = min(cfg.steps, stop_at_step or cfg.steps)
    while step < last and not (cfg.max_minutes and elapsed >= 60 * cfg.max_minutes):
        for group in opt.param_groups:
            group["lr"] = _learning_rate(cfg, step, elapsed)
        x = sampler.sample().to(device, non_blocking=True)
        sigma = torch.empty(x.shape[0], 1, 1, 1).uniform_(cfg.sigma_min255, cfg.sigma_max255, generator=gen) / 255
        y = x + sigma.to(device) * torch.randn(x.shape, generator=gen).to(device)
        target = x if teacher is None else _distilled_target(teacher, y, sigma.to(device), x, cfg.teacher_weight, amp)
        with amp:
            loss = nn.functional.mse_loss(model(y).float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        elapsed = time.monotonic() - start
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.2e}", lr=f"{opt.param_groups[0]['lr']:.1e}")
        bar.update(1)
        if time.monotonic() - last_ckpt > 60 * cfg.checkpoint_minutes:
            checkpoint()
            last_ckpt = time.monotonic()
    bar.close()
    checkpoint()
    if step < cfg.steps and not (cfg.max_minutes and elapsed >= 60 * cfg.max_minutes):
        return None

    model.eval()
    test_psnr = {}
    if cfg.test_dir:
        test_psnr = evaluate_denoiser(model, cfg.test_dir, cfg.test_sigmas255, channels=cfg.channels, device=device)
    card = {
        "name": cfg.name,
        **model.config(),
        "training_data": [str(Path(d).name) for d in cfg.train_dirs],
        "training_images": len(images),
        "noise": f"AWGN, sigma uniform in [{cfg.sigma_min255:g}, {cfg.sigma_max255:g}]/255 per patch, blind",
        "loss": ("MSE (MMSE denoiser)" if teacher is None else
                 f"MSE to {cfg.teacher_weight:g}·teacher(y) + {1 - cfg.teacher_weight:g}·clean (distilled MMSE denoiser)"),
        **({"teacher": cfg.teacher} if teacher is not None else {}),
        "patch_size": cfg.patch_size,
        "batch_size": cfg.batch_size,
        "steps": step,
        "optimizer": f"Adam lr {cfg.lr:g} cosine to {cfg.lr_min:g}",
        "seed": cfg.seed,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "host": platform.machine(),
        "torch": torch.__version__,
        "wall_time_minutes": round(elapsed / 60, 1),
        "test_set": Path(cfg.test_dir).name if cfg.test_dir else None,
        "test_psnr_db": test_psnr,
        "test_protocol": "AWGN added in float with seed 0, no clipping; PSNR of the output clipped to [0, 1], data range 1",
    }
    return save_weights(model, out_dir / f"{cfg.name}.safetensors", card)
