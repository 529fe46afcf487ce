"""Conversions between channel-last numpy images and (B, C, H, W) torch tensors."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DenoiselabError


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """Turn a channel-last image or stack into a float32 ``(B, C, H, W)`` tensor.

    Parameters
    ----------
    array : np.ndarray, shape (H, W, C) or (P, H, W, C)
        Pixel values (nominally in [0, 1], as `read_image` returns them); any real dtype.

    Returns
    -------
    torch.Tensor, shape (1, C, H, W) or (P, C, H, W)
        float32, contiguous, on the CPU; a copy that does not share memory with `array`.

    Raises
    ------
    DenoiselabError
        If `array` is not 3-D or 4-D.

    Examples
    --------
    >>> to_tensor(np.zeros((4, 5, 3))).shape
    torch.Size([1, 3, 4, 5])
    """
    data = np.asarray(array)
    if data.ndim == 3:
        data = data[None]
    if data.ndim != 4:
        raise DenoiselabError(
            f"to_tensor got an array of shape {data.shape}; expected (H, W, C) or (P, H, W, C), channels last"
        )
    if data.dtype.kind not in "biuf":
        raise DenoiselabError(f"to_tensor got an array of dtype {data.dtype}; expected real numbers")
    chw = np.array(data.transpose(0, 3, 1, 2), dtype=np.float32, order="C", copy=True)
    return torch.from_numpy(chw)


def from_tensor(x: torch.Tensor) -> np.ndarray:
    """Turn a ``(B, C, H, W)`` tensor back into a channel-last float32 numpy array.

    Parameters
    ----------
    x : torch.Tensor, shape (B, C, H, W)
        Any device and real dtype; gradients are detached.

    Returns
    -------
    np.ndarray, shape (H, W, C) if B == 1, else (B, H, W, C)
        float32, C-contiguous, not clipped (clip or let `write_image` clip when saving).

    Raises
    ------
    DenoiselabError
        If `x` is not a 4-D tensor.

    Examples
    --------
    >>> from_tensor(torch.zeros(1, 3, 4, 5)).shape
    (4, 5, 3)
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise DenoiselabError(f"from_tensor got {shape}; expected a 4-D (B, C, H, W) torch.Tensor")
    data = x.detach().to(device="cpu", dtype=torch.float32).permute(0, 2, 3, 1).contiguous().numpy()
    return data[0] if data.shape[0] == 1 else data
