"""Shared pieces of the samplers: argument checks and the random source."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ..errors import DenoiselabError


def check_shape(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    try:
        dims = tuple(int(v) for v in shape)
    except (TypeError, ValueError) as err:
        raise DenoiselabError(f"shape={shape!r} must be (B, C, H, W), e.g. (1, 1, 64, 64)") from err
    if len(dims) != 4 or min(dims) < 1:
        raise DenoiselabError(f"shape={tuple(shape)} must be four positive sizes (B, C, H, W)")
    return dims  # type: ignore[return-value]


def check_denoiser(denoiser: Callable) -> None:
    if not callable(denoiser):
        raise DenoiselabError(f"denoiser must be callable as denoiser(x, sigma), got {type(denoiser).__name__}")


def check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise DenoiselabError(f"{name}={value!r} must be a positive number")
    return float(value)


def check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DenoiselabError(f"{name}={value!r} must be a positive integer")
    return value


def resolve_generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator | None:
    """One random source from `seed` or `generator` (not both); None means torch's global one."""
    if seed is not None and generator is not None:
        raise DenoiselabError("pass either seed or generator, not both")
    if seed is not None:
        return torch.Generator().manual_seed(int(seed))
    return generator


def randn(shape: tuple[int, ...], generator: torch.Generator | None, *, dtype: torch.dtype,
          device: torch.device | str) -> Tensor:
    """Standard normal draws made on the generator's device, then moved (same numbers on CPU and GPU)."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, dtype=dtype, device=where).to(device)


def initial_state(shape: tuple[int, ...], x_init: Tensor | None, generator: torch.Generator | None, *,
                  dtype: torch.dtype, device: torch.device | str) -> Tensor:
    """A chain's start: a copy of `x_init` (checked against `shape`), or uniform noise on [0, 1]
    drawn on the generator's device, then moved (same numbers on CPU and GPU)."""
    if x_init is None:
        where = generator.device if generator is not None else device
        return torch.rand(shape, generator=generator, dtype=dtype, device=where).to(device)
    if not isinstance(x_init, Tensor) or tuple(x_init.shape) != tuple(shape):
        raise DenoiselabError(f"x_init must be a tensor of shape {tuple(shape)}")
    return x_init.to(dtype=dtype, device=device).clone()
