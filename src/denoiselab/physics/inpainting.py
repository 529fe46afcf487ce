"""Inpainting: some pixels are observed, the others are lost.

``A(x) = m ⊙ x`` with a binary mask ``m`` (1 = observed); the measurement keeps the image's
shape, with zeros at the lost pixels. A is diagonal, so it is its own adjoint, its SVD is
``U = V = I`` with singular values ``m``, and the prox is exact:
``(m ⊙ y + z/gamma) / (m + 1/gamma)`` (the prox centre where a pixel is lost).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import DenoiselabError
from .base import PixelDiagonalOperator, _check_images

__all__ = ["Inpainting", "random_pixel_mask", "box_mask"]


def random_pixel_mask(shape: tuple[int, int, int, int], missing: float, *,
                      generator: torch.Generator | None = None) -> Tensor:
    """A mask that loses each pixel independently with probability `missing`.

    Parameters
    ----------
    shape : tuple (B, C, H, W)
        Mask shape; use C = 1 to lose whole pixels (all channels) in colour images.
    missing : float
        Fraction of lost pixels, in [0, 1) (e.g. 0.5, 0.8, 0.9 in the literature).
    generator : torch.Generator, optional
        For a reproducible mask.

    Returns
    -------
    mask : Tensor, float32, values in {0, 1}, 1 = observed

    Examples
    --------
    >>> m = random_pixel_mask((1, 1, 64, 64), 0.5, generator=torch.Generator().manual_seed(0))
    >>> bool(0.45 < float(m.mean()) < 0.55)
    True
    """
    if not 0 <= missing < 1:
        raise DenoiselabError(f"missing={missing} must be a fraction in [0, 1)")
    if len(shape) != 4:
        raise DenoiselabError(f"shape must be (B, C, H, W), got {tuple(shape)}")
    return (torch.rand(tuple(shape), generator=generator) >= missing).float()


def box_mask(shape: tuple[int, int, int, int], box: tuple[int, int, int, int]) -> Tensor:
    """A mask that loses one rectangle of pixels.

    Parameters
    ----------
    shape : tuple (B, C, H, W)
        Mask shape.
    box : tuple (top, left, height, width)
        The lost rectangle, in pixels; it must lie inside the image.

    Returns
    -------
    mask : Tensor, float32, 0 inside the box, 1 elsewhere

    Examples
    --------
    >>> int(box_mask((1, 1, 8, 8), (2, 2, 4, 4)).sum())
    48
    """
    top, left, height, width = (int(v) for v in box)
    h, w = shape[-2:]
    if top < 0 or left < 0 or height < 1 or width < 1 or top + height > h or left + width > w:
        raise DenoiselabError(f"box={tuple(box)} (top, left, height, width) does not lie inside a {h}x{w} image")
    mask = torch.ones(tuple(shape))
    mask[..., top:top + height, left:left + width] = 0.0
    return mask


class Inpainting(PixelDiagonalOperator):
    """Pixel loss, ``A(x) = mask ⊙ x``.

    Parameters
    ----------
    mask : Tensor, shape (B or 1, C or 1, H, W)
        1 where a pixel is observed, 0 where it is lost (bool or {0, 1} float); it must
        broadcast against the images. See :func:`random_pixel_mask`, :func:`box_mask`.

    Examples
    --------
    >>> op = Inpainting(box_mask((1, 1, 8, 8), (0, 0, 8, 4)))
    >>> x = torch.ones(1, 1, 8, 8)
    >>> float(op.A(x).sum())
    32.0
    """

    def __init__(self, mask: Tensor) -> None:
        mask = torch.as_tensor(mask)
        if mask.ndim != 4:
            raise DenoiselabError(f"mask must have shape (B, C, H, W) (B and C may be 1), got {tuple(mask.shape)}")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise DenoiselabError("mask must hold only 0 (lost) and 1 (observed)")
        self.mask = mask.detach().float()

    def __repr__(self) -> str:
        return f"Inpainting(mask={tuple(self.mask.shape)}, observed={float(self.mask.mean()):.3f})"

    def _mask(self, x: Tensor) -> Tensor:
        try:
            if torch.broadcast_shapes(self.mask.shape, x.shape) != x.shape:
                raise RuntimeError
        except RuntimeError as err:
            raise DenoiselabError(f"mask of shape {tuple(self.mask.shape)} does not fit images of shape {tuple(x.shape)}") from err
        return self.mask.to(dtype=x.dtype, device=x.device)

    def A(self, x: Tensor) -> Tensor:  # noqa: N802
        _check_images(x)
        return self._mask(x) * x

    def A_adjoint(self, y: Tensor) -> Tensor:  # noqa: N802
        _check_images(y, "y")
        return self._mask(y) * y

    def singulars(self, shape, *, dtype=torch.float32, device="cpu") -> Tensor:
        return self.mask.to(dtype=dtype, device=device)

    def initial_estimate(self, y: Tensor) -> Tensor:
        """The observation with each lost pixel set to its image-and-channel mean of observed pixels."""
        m = self._mask(y).expand_as(y)
        mean = (m * y).sum(dim=(2, 3), keepdim=True) / m.sum(dim=(2, 3), keepdim=True).clamp_min(1)
        return m * y + (1 - m) * mean
