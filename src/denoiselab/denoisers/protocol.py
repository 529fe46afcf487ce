"""The one call every Gaussian denoiser answers: ``denoiser(y, sigma) -> x_hat``.

- ``y``: float tensor (B, C, H, W), pixel values nominally in [0, 1]; noisy values outside
  [0, 1] are allowed and must not be clipped.
- ``sigma``: the noise standard deviation on the same [0, 1] scale (σ = 25 on 0–255 is
  25/255 ≈ 0.098), as a float, a (B,) tensor, or a (B, 1, H, W) / (B, C, H, W) per-pixel map.
  Blind denoisers accept it and ignore it.
- Returns a tensor of y's shape, dtype and device, **not clamped** (Tweedie scores and RED
  need the raw MMSE estimate). A call is deterministic given its inputs.

Solvers, samplers, ScoreDVI and the benchmarks ask for this protocol and nothing more: even
``lambda y, sigma: y`` qualifies.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from ..errors import DenoiselabError


@runtime_checkable
class Denoiser(Protocol):
    def __call__(self, y: Tensor, sigma: float | Tensor) -> Tensor: ...


class CountedDenoiser:
    """``denoiser`` that counts its calls: the cost unit every solver and sampler shares.

    Examples
    --------
    >>> d = CountedDenoiser(lambda y, sigma: y)
    >>> _ = d(torch.zeros(1, 1, 2, 2), 0.1); _ = d(torch.zeros(1, 1, 2, 2), 0.1)
    >>> d.calls
    2
    """

    def __init__(self, denoiser) -> None:
        self.denoiser, self.calls = denoiser, 0

    def __call__(self, y: Tensor, sigma: float | Tensor) -> Tensor:
        self.calls += 1
        return self.denoiser(y, sigma)


def as_sigma(sigma: float | Tensor, y: Tensor) -> Tensor:
    """Turn any accepted form of `sigma` into a tensor that broadcasts against `y` (B, C, H, W).

    A float or 0-d tensor gives shape (1, 1, 1, 1); a (B,) tensor gives (B, 1, 1, 1); a 4-D map is
    returned as it is (after a shape check). Raises DenoiselabError for negative values or shapes
    that do not broadcast.
    """
    s = torch.as_tensor(sigma, dtype=y.dtype, device=y.device)
    if s.ndim == 0:
        s = s.view(1, 1, 1, 1)
    elif s.ndim == 1:
        if s.shape[0] not in (1, y.shape[0]):
            raise DenoiselabError(f"sigma has {s.shape[0]} values for a batch of {y.shape[0]} images")
        s = s.view(-1, 1, 1, 1)
    elif s.ndim == 4:
        try:
            torch.broadcast_shapes(s.shape, y.shape)
        except RuntimeError as err:
            raise DenoiselabError(f"sigma map of shape {tuple(s.shape)} does not fit images of shape {tuple(y.shape)}") from err
    else:
        raise DenoiselabError(f"sigma must be a float, a (B,) tensor or a (B,1,H,W) map, got shape {tuple(s.shape)}")
    if bool((s < 0).any()):
        raise DenoiselabError("sigma must be >= 0 (a standard deviation on the [0, 1] scale)")
    return s


def check_image_batch(y: Tensor, *, channels: tuple[int, ...] | None = None) -> None:
    """Raise DenoiselabError unless `y` is a floating (B, C, H, W) tensor with allowed channels."""
    if not isinstance(y, Tensor) or y.ndim != 4:
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise DenoiselabError(f"expected a (B, C, H, W) tensor, got {shape}")
    if not y.is_floating_point():
        raise DenoiselabError(f"expected a float tensor in [0, 1], got dtype {y.dtype}")
    if channels is not None and y.shape[1] not in channels:
        raise DenoiselabError(f"this denoiser takes {' or '.join(map(str, channels))} channels, got {y.shape[1]}")
