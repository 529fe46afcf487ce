"""Inference precision of the trained denoisers: ``fp32``, ``bf16`` or ``auto``.

What was measured (``benchmarks/precision.py``, table under ``benchmarks/results/precision/``):

- Channels-last memory layout is the large, free win on the CPU: the same float32 arithmetic,
  about 2× faster for our 20-layer 64-channel convnets on an AVX2 CPU (oneDNN's blocked kernels);
  every network here runs channels-last in every precision.
- bf16 is only fast on hardware that computes it natively (CUDA GPUs with bf16, CPUs with
  AVX-512 BF16 or AMX). Elsewhere it is emulated and much slower than float32 (about 12× for
  one 64-channel conv on the 2-core AVX2 CPU of our CI), so ``auto`` never picks it there.
- bf16 costs accuracy through rounding of every layer's activations; which layers must stay in
  float32 is in :data:`BF16_FLOAT32_LAYERS` and the table.
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
    """Run a conv / bias-free batch norm / ReLU stack on `x` in `precision`.

    Under bf16 each batch norm (a per-channel scale in evaluation) is folded into the
    convolution before it, in float32, so the activations are rounded to bf16 once per layer
    instead of three times, and the convolutions of :data:`BF16_FLOAT32_LAYERS` stay float32.
    Measured on the CBSD300 prior (2 crops of 128², σ = 25): plain autocast −0.32 dB, folded
    −0.14 dB, folded with first and last layer in float32 −0.08 dB; bf16 weights alone −0.03 dB.
    """
    if precision != "bf16":
        return layers(x)
    plan = getattr(layers, "_bf16_plan", None)
    if plan is None:
        plan = layers._bf16_plan = _bf16_plan(layers)
    for conv, weight, relu in plan:
        x = F.conv2d(x.to(weight.dtype), weight, stride=conv.stride, padding=conv.padding, dilation=conv.dilation)
        x = F.relu(x) if relu else x
    return x.float()


def _bf16_plan(layers: torch.nn.Sequential) -> list[tuple[torch.nn.Conv2d, torch.Tensor, bool]]:
    """(conv, its weight with the following batch-norm scale folded in, ReLU after?) per conv."""
    mods = list(layers)
    convs = [i for i, m in enumerate(mods) if isinstance(m, torch.nn.Conv2d)]
    if any(m.bias is not None for m in (mods[i] for i in convs)):
        raise ValueError("bf16 folding is for bias-free networks")
    keep = {convs[k] for k in BF16_FLOAT32_LAYERS}
    plan = []
    for i in convs:
        weight = mods[i].weight.detach().float()
        following = mods[i + 1:convs[convs.index(i) + 1]] if i != convs[-1] else mods[i + 1:]
        for m in following:
            if hasattr(m, "running_sd"):  # x / sd * gamma, a per-channel scale in evaluation
                weight = weight * (m.weight.detach().float() / m.running_sd.float()).view(-1, 1, 1, 1)
        dtype = torch.float32 if i in keep else torch.bfloat16
        relu = any(isinstance(m, torch.nn.ReLU) for m in following)
        plan.append((mods[i], weight.to(dtype).contiguous(memory_format=torch.channels_last), relu))
    return plan
