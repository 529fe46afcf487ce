"""Small helpers shared by every tier: device choice, seeding, broadcasting."""

from __future__ import annotations

import torch

from .errors import DenoiselabError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N"`` into a ``torch.device``.

    ``"auto"`` (or None) picks CUDA when available, otherwise the CPU. Asking for CUDA on a
    machine without it raises :class:`DenoiselabError` rather than failing deep inside torch.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise DenoiselabError(f"device={device!r} is not a device; use auto, cpu, cuda or cuda:N") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DenoiselabError(f"device={device!r} asked for, but this machine has no CUDA GPU; use --device cpu")
    return dev


def make_generator(seed: int | None, device: str | torch.device = "cpu") -> torch.Generator | None:
    """A seeded ``torch.Generator`` on `device`, or None when `seed` is None."""
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(int(seed))


def append_dims(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Append trailing singleton dims to `t` until it has `ndim` dims (k-diffusion's idiom)."""
    if t.ndim > ndim:
        raise ValueError(f"tensor has {t.ndim} dims, more than the {ndim} asked for")
    return t.reshape(*t.shape, *([1] * (ndim - t.ndim)))
