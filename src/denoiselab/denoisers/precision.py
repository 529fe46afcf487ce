"""Inference precision of the trained denoisers: ``fp32``, ``bf16`` or ``auto``.

What was measured (``benchmarks/precision.py``, table under ``benchmarks/results/precision/``,
1 thread of the 2-core AVX2 CPU of our CI):

- float32 is made faster without changing its result: batch norm folded into the convolutions
  (BF-DnCNN, contiguous layout) and channels-last (UNet). The gain on this CPU is 1.03–1.3×
  over PyTorch's default float32 forward in the committed table (up to 1.5× in single-prior
  timings); ``torch.compile`` reaches 1.1–1.7× and TorchScript's ``optimize_for_inference``
  about the same: the convolutions themselves are the floor.
- bf16 is only fast on hardware that computes it natively (CUDA GPUs with bf16, CPUs with
  AVX-512 BF16 or AMX). Elsewhere it is emulated and much slower than float32 (about 12× for
  one 64-channel conv here), so ``auto`` never picks it there.
- bf16 costs accuracy through the rounding of every layer's activations: −0.07 to −0.37 dB for
  plain autocast, −0.01 to −0.10 dB for our recipe (folded batch norm, first and last layer in
  float32), so ``auto`` keeps float32 even where bf16 is native (:data:`BF16_AUTO`).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import DenoiselabError

PRECISIONS = ("auto", "fp32", "bf16")


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16(device: str | torch.device) -> bool:
    """True where bf16 arithmetic runs in hardware: a CUDA GPU that supports it, or a CPU with
    AVX-512 BF16 or AMX-BF16 (read from ``/proc/cpuinfo``; False where that cannot be read)."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """``"fp32"`` or ``"bf16"`` for `precision` on `device`.

    ``auto`` picks bf16 only where it runs natively **and** the measured cost of our bf16 recipe
    is at most 0.02 dB (:data:`BF16_AUTO`); otherwise float32. An explicit ``bf16`` on hardware
    without native bf16 is honoured with a warning that it will be slow.
    """
    if precision not in PRECISIONS:
        raise DenoiselabError(f"precision={precision!r} is unknown; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if BF16_AUTO and native_bf16(device) else "fp32"
    if precision == "bf16" and not native_bf16(device):
        warnings.warn(f"bf16 on {torch.device(device).type} without native bf16 support is emulated and much slower "
                      "than fp32 here; use --precision fp32 or auto", stacklevel=3)
    return precision


# Set from the measurements in benchmarks/results/precision/: True only if the bf16 recipe below
# stays within 0.02 dB of float32 for every shipped prior.
BF16_AUTO = False
# Layers (0 = first convolution, -1 = last) kept in float32 under bf16.
BF16_FLOAT32_LAYERS = (0, -1)


def prepare_network(module: torch.nn.Module, precision: str, device: str | torch.device) -> torch.nn.Module:
    """Put a trained network on `device` in channels-last layout, in evaluation mode without
    gradients, and record its resolved precision (``module.precision``) for its forward."""
    module.precision = resolve_precision(precision, device)
    module.eval().requires_grad_(False)
    return module.to(device=torch.device(device), memory_format=torch.channels_last)


def autocast_for(precision: str, device: torch.device):
    """A context that computes in bf16 (float32 accumulation) if `precision` is ``"bf16"``, and
    otherwise leaves the caller's autocast setting alone."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_layers(layers: torch.nn.Sequential, x: torch.Tensor, precision: str) -> torch.Tensor:
    """Run a conv / bias-free batch norm / ReLU stack on `x` for inference in `precision`.

    In evaluation each batch norm (a per-channel scale then) is folded into the convolution
    before it, in float32: the same linear map with one pass over the activations less per
    layer. Under bf16 the activations are then rounded once per layer instead of three times,
    and the convolutions of :data:`BF16_FLOAT32_LAYERS` stay float32. Measured on the CBSD300
    prior (2 crops of 128², σ = 25): plain autocast −0.32 dB, folded −0.14 dB, folded with
    first and last layer in float32 −0.08 dB; bf16 weights alone −0.03 dB. In training mode
    the layers run as they are (batch statistics).
    """
    if layers.training:
        return layers(x)
    key = (precision, x.device)
    if getattr(layers, "_plan_key", None) != key:
        layers._plan, layers._plan_key = _folded_plan(layers, precision, x.device), key
    x = x.contiguous(memory_format=torch.channels_last) if precision == "bf16" else x.contiguous()
    for conv, weight, relu in layers._plan:
        x = F.conv2d(x.to(weight.dtype), weight, stride=conv.stride, padding=conv.padding, dilation=conv.dilation)
        x = F.relu(x) if relu else x
    return x.float()


def _folded_plan(layers: torch.nn.Sequential, precision: str,
                 device: torch.device) -> list[tuple[torch.nn.Conv2d, torch.Tensor, bool]]:
    """(conv, its weight with the following batch-norm scale folded in, ReLU after?) per conv;
    weights in float32, or bf16 but for :data:`BF16_FLOAT32_LAYERS` when `precision` is bf16."""
    mods = list(layers)
    convs = [i for i, m in enumerate(mods) if isinstance(m, torch.nn.Conv2d)]
    if any(m.bias is not None for m in (mods[i] for i in convs)):
        raise ValueError("batch-norm folding is for bias-free networks")
    keep = {convs[k] for k in BF16_FLOAT32_LAYERS} if precision == "bf16" else set(convs)
    layout = torch.channels_last if precision == "bf16" else torch.contiguous_format
    plan = []
    for i in convs:
        weight = mods[i].weight.detach().float()
        following = mods[i + 1:convs[convs.index(i) + 1]] if i != convs[-1] else mods[i + 1:]
        for m in following:
            if hasattr(m, "running_sd"):  # x / sd * gamma, a per-channel scale in evaluation
                weight = weight * (m.weight.detach().float() / m.running_sd.float()).view(-1, 1, 1, 1)
        dtype = torch.float32 if i in keep else torch.bfloat16
        relu = any(isinstance(m, torch.nn.ReLU) for m in following)
        plan.append((mods[i], weight.to(device=device, dtype=dtype).contiguous(memory_format=layout), relu))
    return plan
