"""Input checks, array <-> tensor plumbing and the per-iteration hook shared by the baselines."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..errors import DenoiselabError


def check_noisy(noisy: np.ndarray, *, min_side: int = 8, what: str = "noisy") -> np.ndarray:
    """Validate one image and return it as float32 (H, W, C); raise a one-line error otherwise."""
    if not isinstance(noisy, np.ndarray):
        raise DenoiselabError(f"{what}: expected a numpy array (H, W) or (H, W, C), got {type(noisy).__name__}")
    arr = noisy
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3):
        raise DenoiselabError(f"{what} has shape {np.shape(noisy)}; expected (H, W) or (H, W, C) with C = 1 or 3")
    if not np.issubdtype(arr.dtype, np.floating):
        raise DenoiselabError(f"{what} has dtype {arr.dtype}; expected floats in [0, 1] (divide 8-bit images by 255)")
    if min(arr.shape[:2]) < min_side:
        raise DenoiselabError(f"{what} is too small ({arr.shape[0]}×{arr.shape[1]}); this method needs at least {min_side}×{min_side} pixels")
    if not np.isfinite(arr).all():
        raise DenoiselabError(f"{what} contains NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -0.5 or hi > 1.5:  # 0-255 data would "run" but every method here assumes [0, 1]
        raise DenoiselabError(f"{what} values span [{lo:.3g}, {hi:.3g}]; expected [0, 1] - divide 8-bit data by 255")
    return arr.astype(np.float32, copy=False)


def check_int(name: str, value, minimum: int, hint: str = "") -> int:
    """`value` as an int >= `minimum`, or a one-line error naming the setting (and `hint`)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DenoiselabError(f"{name}={value!r}; expected an integer >= {minimum}" + (f"; {hint}" if hint else ""))
    return int(value)


def check_float(name: str, value, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> float:
    """`value` as a finite float in the interval, or a one-line error naming the setting."""
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise DenoiselabError(f"{name}={value!r}; expected a number in {interval}")
    return float(value)


def to_batch(image_hwc: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, C) array -> (1, C, H, W) float32 tensor on `device`."""
    return torch.from_numpy(np.ascontiguousarray(image_hwc)).permute(2, 0, 1)[None].to(device, torch.float32)


def from_batch(x: torch.Tensor, like: np.ndarray) -> np.ndarray:
    """(1, C, H, W) tensor -> float32 array shaped like the caller's input ((H, W) or (H, W, C))."""
    out = x[0].detach().permute(1, 2, 0).to("cpu", torch.float32).numpy()
    return np.ascontiguousarray(out.reshape(np.shape(like)))


class IterationHook:
    """Calls a baseline's ``callback`` after each training iteration (a no-op without one).

    The callback gets ``{"t": t, "seconds": s, "estimate": estimate}``: `s` is the fit's wall time
    since the hook was made, *less the time spent inside earlier callbacks*, so that previewing
    the output at some iterations does not shift the time axis of a convergence curve. On CUDA the
    device is synchronised first, so `s` covers the queued kernels.
    """

    def __init__(self, callback: Callable[[dict], None] | None, device: torch.device):
        if callback is not None and not callable(callback):
            raise DenoiselabError(f"callback={callback!r} is not callable; pass a function of one dict, or None")
        self.callback, self.device = callback, device
        self.start, self.paused = time.perf_counter(), 0.0

    def __call__(self, t: int, estimate: Callable[[], np.ndarray]) -> None:
        if self.callback is None:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        try:
            self.callback({"t": t, "seconds": now - self.start - self.paused, "estimate": estimate})
        finally:  # also when the callback raises to stop the fit: the hook stays consistent
            self.paused += time.perf_counter() - now


@contextlib.contextmanager
def rng_unchanged(*generators: torch.Generator | np.random.Generator | None,
                  device: torch.device | None = None) -> Iterator[None]:
    """Put every generator back in its state after the block.

    A preview of the output (test-time masks, dropout) must not shift the random stream of the
    fit, so that a run with a callback ends exactly as one without. None stands for torch's global
    generators (the CPU one, and `device`'s when it is a CUDA device: seed=None runs draw there).
    """
    saved = []
    with contextlib.ExitStack() as stack:
        for g in generators:
            if g is None:
                cuda = device is not None and device.type == "cuda"
                stack.enter_context(torch.random.fork_rng(devices=[device] if cuda else []))
            elif isinstance(g, np.random.Generator):
                saved.append((g, g.bit_generator.state))
            else:
                saved.append((g, g.get_state()))
        try:
            yield
        finally:
            for g, state in saved:
                if isinstance(g, np.random.Generator):
                    g.bit_generator.state = state
                else:
                    g.set_state(state)
