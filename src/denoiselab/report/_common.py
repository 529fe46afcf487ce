"""Input checks shared by the figure and the HTML page."""

from __future__ import annotations

import io

import numpy as np

from ..errors import DenoiselabError


def as_stack(name: str, array: np.ndarray | None, *, channels: tuple[int, ...] = (1, 3)) -> np.ndarray | None:
    """Validate an image or map and return it as a float32 (P, H, W, C) array (None stays None).

    Parameters
    ----------
    name : str
        What the array is ("noisy", "denoised", ...), for the error message.
    array : np.ndarray or None
        Shape (H, W), (H, W, C) or (P, H, W, C), real numbers, finite.
    channels : tuple of int, optional
        Channel counts allowed for C.

    Raises
    ------
    DenoiselabError
        For another shape, an empty array, non-real dtype or NaN/inf values.
    """
    if array is None:
        return None
    data = np.asarray(array)
    if data.dtype.kind not in "biuf":
        raise DenoiselabError(f"report: {name} has dtype {data.dtype}; expected real numbers in [0, 1]")
    if data.ndim == 2:
        data = data[None, :, :, None]
    elif data.ndim == 3:
        data = data[None]
    if data.ndim != 4 or data.shape[-1] not in channels:
        raise DenoiselabError(
            f"report: {name} has shape {np.shape(array)}; expected (H, W), (H, W, C) or (P, H, W, C) "
            f"with C in {channels}"
        )
    if data.size == 0:
        raise DenoiselabError(f"report: {name} has shape {np.shape(array)}, no pixels")
    data = data.astype(np.float32, copy=False)
    if not np.isfinite(data).all():
        raise DenoiselabError(f"report: {name} holds NaN or infinite values; expected finite values")
    return data


def check_same_size(reference_name: str, reference: np.ndarray, others: dict[str, np.ndarray | None]) -> None:
    """Raise DenoiselabError unless every array in `others` has the pages, height and width of `reference`."""
    want = reference.shape[:3]
    for name, other in others.items():
        if other is not None and other.shape[:3] != want:
            raise DenoiselabError(
                f"report: {name} is {_describe(other)} but {reference_name} is {_describe(reference)}; "
                "expected the same size (and pages)"
            )


def _describe(stack: np.ndarray) -> str:
    p, h, w, c = stack.shape
    pages = f"{p} pages of " if p > 1 else ""
    return f"{pages}{w}x{h}x{c}"


def gray_map(stack: np.ndarray) -> np.ndarray:
    """(P, H, W, C) -> (P, H, W): the mean over channels (maps are shown as one plane)."""
    return stack.mean(axis=-1)


def png_bytes(image: np.ndarray, *, max_side: int | None = None) -> bytes:
    """Encode an (H, W, C) float image in [0, 1] (clipped) as 8-bit PNG bytes.

    Parameters
    ----------
    image : np.ndarray, shape (H, W, C), C in {1, 3}
        Pixel values; clipped to [0, 1] and rounded to 8 bits.
    max_side : int, optional
        Downscale (Lanczos) so that the longer side is at most this many pixels.
    """
    from PIL import Image

    samples = np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    pil = Image.fromarray(samples[..., 0] if samples.shape[-1] == 1 else samples)
    if max_side is not None and max(pil.size) > max_side:
        scale = max_side / max(pil.size)
        size = (max(1, round(pil.width * scale)), max(1, round(pil.height * scale)))
        pil = pil.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()
