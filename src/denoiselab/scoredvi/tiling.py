"""Overlapping tiles with smooth blending, for methods whose cost or memory grows with image size.

Generic: any ``fn(tile) -> Tensor | tuple[Tensor, ...]`` that maps (B, C, h, w) to outputs of
shape (B, C_out, h, w) can be tiled. Each output is the weighted average of the tiles covering
a pixel, with weights that ramp like a raised cosine across the overlap, so seams do not show.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import DenoiselabError

__all__ = ["denoise_tiled", "tile_starts"]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of side `tile` covering [0, size) with at least `overlap` shared pixels.

    Examples
    --------
    >>> tile_starts(512, 256, 32)
    [0, 128, 256]
    >>> tile_starts(200, 256, 32)
    [0]
    """
    if tile >= size:
        return [0]
    n = math.ceil((size - overlap) / (tile - overlap))
    return [round(i * (size - tile) / (n - 1)) for i in range(n)]


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool, device, dtype) -> Tensor:
    """1-D weight: raised-cosine ramps of width `overlap` on inner edges, 1 elsewhere, > 0 everywhere."""
    w = torch.ones(length, device=device, dtype=dtype)
    if overlap > 0:
        r = 0.5 - 0.5 * torch.cos(torch.pi * (torch.arange(overlap, device=device, dtype=dtype) + 0.5) / overlap)
        if not at_start:
            w[:overlap] = r
        if not at_end:
            w[-overlap:] = r.flip(0)
    return w


def denoise_tiled(fn: Callable[[Tensor], Tensor | tuple[Tensor, ...]], y: Tensor, tile: int, overlap: int) -> Tensor | tuple[Tensor, ...]:
    """Apply `fn` to overlapping tiles of `y` and blend the outputs.

    Parameters
    ----------
    fn : callable
        Maps a (B, C, h, w) tile to a tensor or a tuple of tensors of shape (B, C_out, h, w).
    y : Tensor, shape (B, C, H, W)
        Input images.
    tile : int
        Tile side in pixels (tiles at the border are shifted inside, never padded).
    overlap : int
        Pixels shared by neighbouring tiles, 0 <= overlap < tile; blending ramps span it.

    Returns
    -------
    Tensor or tuple of Tensors
        Same structure as `fn`'s output, spatial size (H, W). When the image fits in one tile
        `fn(y)` is returned as it is.

    Examples
    --------
    >>> y = torch.rand(1, 3, 100, 70)
    >>> bool(torch.allclose(denoise_tiled(lambda t: 2 * t, y, tile=40, overlap=8), 2 * y, atol=1e-6))
    True
    """
    if not 0 <= overlap < tile:
        raise DenoiselabError(f"overlap={overlap} must be >= 0 and smaller than tile={tile}")
    _, _, h, w = y.shape
    if h <= tile and w <= tile:
        return fn(y)
    th, tw = min(tile, h), min(tile, w)
    rows, cols = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
    acc: list[Tensor] | None = None
    weight = torch.zeros(1, 1, h, w, device=y.device, dtype=torch.float32)
    single = False
    for i, r in enumerate(rows):
        wr = _ramp(th, min(overlap, th), i == 0, i == len(rows) - 1, y.device, torch.float32)
        for j, c in enumerate(cols):
            wc = _ramp(tw, min(overlap, tw), j == 0, j == len(cols) - 1, y.device, torch.float32)
            win = (wr[:, None] * wc[None, :])[None, None]
            out = fn(y[:, :, r:r + th, c:c + tw])
            if isinstance(out, Tensor):
                single, out = True, (out,)
            if acc is None:
                acc = [torch.zeros(o.shape[0], o.shape[1], h, w, device=y.device, dtype=torch.float32) for o in out]
            for a, o in zip(acc, out):
                a[:, :, r:r + th, c:c + tw] += o.float() * win
            weight[:, :, r:r + th, c:c + tw] += win
    assert acc is not None
    res = tuple(a / weight for a in acc)
    return res[0] if single else res
