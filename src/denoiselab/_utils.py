"""Small helpers shared by every tier: device choice, seeding, broadcasting."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

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


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)


@functools.cache
def tune_cpu_allocator(limit_mib: int = 1024) -> bool:
    """Let glibc's malloc keep freed memory for reuse: about 1.5× faster network inference on the CPU.

    By default glibc serves large blocks with a fresh ``mmap`` and unmaps them on free, and
    trims the heap when much of it is free (adaptive thresholds of at most 32 / 64 MiB), so
    the 16 MiB activations of a 64-channel 256² convolution stack are page-faulted in anew,
    layer after layer. Serving blocks up to `limit_mib` from the heap and trimming only above
    `limit_mib` of free memory reuses those pages instead. Results are bit-identical; measured on the 2-core CI CPU, one thread: the
    published BF-DnCNN on 256² RGB 1.39 → 0.88 s, ScoreDVI ``fast`` on the bundled photo
    81.3 → 55.4 s. The cost is up to `limit_mib` of freed memory kept by the process.

    The CLI calls this at start; library users may call it once, early. It changes the whole
    process's allocator and is a no-op (returns False) where the C library is not glibc.

    Parameters
    ----------
    limit_mib : int, optional
        Largest block served from the heap, and the free heap memory kept, in MiB (default 1024).

    Returns
    -------
    bool
        True if glibc accepted both settings.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    size = int(limit_mib) << 20
    return bool(mallopt(_M_MMAP_THRESHOLD, size)) and bool(mallopt(_M_TRIM_THRESHOLD, size))
