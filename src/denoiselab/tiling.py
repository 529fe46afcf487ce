"""Overlapping tiles with smooth blending, for any method whose cost or memory grows with image size.

Any ``fn(tile) -> Tensor | tuple[Tensor, ...]`` that maps (B, C, h, w) to outputs of shape
(B, C_out, h, w) can be tiled. Each output pixel is the weighted average of the tiles that cover
it, with weights that ramp like a raised cosine across the overlap, so seams do not show.

The weights are separable, ``w(r, c) = w_row(r) · w_col(c)``, and every row band of tiles meets
every column band, so the total weight at a pixel is ``(Σ w_row)(r) · (Σ w_col)(c)``: two 1-D
sums instead of a full-size weight image. The outputs are accumulated in place (optionally into
caller-owned arrays), so tiling a large image costs one output buffer plus one tile's working memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .errors import DenoiselabError

__all__ = ["count_tiles", "denoise_tiled", "tile_starts"]

TileFn = Callable[[Tensor], "Tensor | tuple[Tensor, ...]"]


def _check(tile: int, overlap: int) -> None:
    for name, value in (("tile", tile), ("overlap", overlap)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise DenoiselabError(f"{name}={value!r} must be an integer number of pixels")
    if not 0 <= overlap < tile:
        raise DenoiselabError(f"overlap={overlap} must be >= 0 and smaller than tile={tile}; e.g. tile=512, overlap=32")


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of side `tile` covering ``[0, size)``, neighbours sharing >= `overlap` pixels.

    Parameters
    ----------
    size : int
        Length of the axis to cover, in pixels (>= 1).
    tile : int
        Tile length in pixels (>= 1). A tile longer than `size` gives one tile at 0.
    overlap : int
        Least number of pixels two neighbouring tiles share, 0 <= overlap < tile.

    Returns
    -------
    list of int
        Ascending offsets; the first is 0 and the last ``size - tile`` (tiles are shifted
        inside the image, never padded), and consecutive offsets differ by at most ``tile - overlap``.

    Examples
    --------
    >>> tile_starts(512, 256, 32)
    [0, 128, 256]
    >>> tile_starts(200, 256, 32)
    [0]
    """
    _check(tile, overlap)
    if tile >= size:
        return [0]
    n = math.ceil((size - overlap) / (tile - overlap))
    return [round(i * (size - tile) / (n - 1)) for i in range(n)]


def count_tiles(height: int, width: int, tile: int, overlap: int) -> int:
    """Number of tiles :func:`denoise_tiled` uses for an image of `height` × `width` pixels.

    Examples
    --------
    >>> count_tiles(4000, 6000, 1024, 32), count_tiles(300, 200, 512, 32)
    (28, 1)
    """
    return len(tile_starts(height, tile, overlap)) * len(tile_starts(width, tile, overlap))


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> Tensor:
    """1-D weight: raised-cosine ramps of width `overlap` on inner edges, 1 elsewhere, > 0 everywhere."""
    w = torch.ones(length, dtype=torch.float32)
    if overlap > 0:
        r = 0.5 - 0.5 * torch.cos(torch.pi * (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap)
        if not at_start:
            w[:overlap] = r
        if not at_end:
            w[-overlap:] = r.flip(0)
    return w


def _axis_weights(size: int, tile: int, overlap: int) -> tuple[list[int], int, list[Tensor], Tensor]:
    """Tile offsets along one axis, the tiles' length there, each tile's 1-D weight, and their sum."""
    starts = tile_starts(size, tile, overlap)
    length = min(tile, size)
    ramps = [_ramp(length, overlap, i == 0, i == len(starts) - 1) for i in range(len(starts))]
    total = torch.zeros(size, dtype=torch.float32)
    for s, r in zip(starts, ramps):
        total[s:s + length] += r
    return starts, length, ramps, total


def denoise_tiled(fn: TileFn, y: Tensor, tile: int, overlap: int, *,
                  out: Tensor | tuple[Tensor, ...] | None = None) -> Tensor | tuple[Tensor, ...]:
    """Apply `fn` to overlapping tiles of `y` and blend the outputs.

    Parameters
    ----------
    fn : callable
        Maps a (B, C, h, w) tile to a tensor or a tuple of tensors of shape (B, C_out, h, w);
        outputs may live on any device (they are moved to `y`'s device).
    y : Tensor, shape (B, C, H, W)
        Input images, any layout (a channel-last view of a numpy array works without a copy).
    tile : int
        Tile side in pixels, > `overlap`. Tiles at the border are shifted inside, never padded;
        an axis shorter than `tile` is covered by one tile of its full length.
    overlap : int
        Least number of pixels shared by neighbouring tiles, 0 <= overlap < tile; the blending
        ramps span it. With an `fn` whose receptive field is r pixels, overlap >= 2·r hides the seams.
    out : Tensor or tuple of Tensors, optional
        Zero-filled float32 tensors of shape (B, C_out, H, W) on `y`'s device, one per output of
        `fn`, to accumulate into (e.g. views of preallocated numpy arrays). Default: new
        tensors in channels-last memory layout.

    Returns
    -------
    Tensor or tuple of Tensors
        Same structure as `fn`'s output, spatial size (H, W), float32 (`out` when given). When
        the image fits in one tile and `out` is None, ``fn(y)`` is returned as it is.

    Raises
    ------
    DenoiselabError
        If `tile` or `overlap` are not integers with 0 <= overlap < tile.

    Examples
    --------
    >>> y = torch.rand(1, 3, 100, 70)
    >>> bool(torch.allclose(denoise_tiled(lambda t: 2 * t, y, tile=40, overlap=8), 2 * y, atol=1e-6))
    True
    """
    _check(tile, overlap)
    _, _, h, w = y.shape
    if h <= tile and w <= tile and out is None:
        return fn(y)
    rows, th, row_w, row_total = _axis_weights(h, tile, overlap)
    cols, tw, col_w, col_total = _axis_weights(w, tile, overlap)
    acc = None if out is None else ((out,) if isinstance(out, Tensor) else tuple(out))
    single = isinstance(out, Tensor)
    for r, wr in zip(rows, row_w):
        for c, wc in zip(cols, col_w):
            res = fn(y[:, :, r:r + th, c:c + tw])
            if isinstance(res, Tensor):
                single, res = True, (res,)
            if acc is None:
                acc = tuple(torch.zeros(o.shape[0], h, w, o.shape[1], device=y.device).permute(0, 3, 1, 2)
                            for o in res)  # channels-last memory: a numpy (H, W, C) view costs no copy
            win = (wr[:, None] * wc[None, :]).to(y.device)
            for a, o in zip(acc, res):
                a[:, :, r:r + th, c:c + tw].addcmul_(o.to(y.device, torch.float32), win)
    assert acc is not None
    row_total, col_total = row_total.to(y.device), col_total.to(y.device)
    for a in acc:  # total weight at (r, c) is row_total[r] · col_total[c] (separable windows)
        a.div_(row_total[:, None]).div_(col_total[None, :])
    return acc[0] if single else acc
