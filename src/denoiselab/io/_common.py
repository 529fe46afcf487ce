"""Small shared pieces of ``denoiselab.io``: the `ImageFile` record and message helpers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Extension (lower case, with the dot) -> format name used in `ImageFile.format`.
EXTENSIONS: dict[str, str] = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
}
VALID_EXTENSIONS = ", ".join(EXTENSIONS)


@dataclass(frozen=True, eq=False)
class ImageFile:
    """An image read from disk, converted to float32 in [0, 1].

    Attributes
    ----------
    array : np.ndarray, shape (H, W, C) or (P, H, W, C), float32
        Pixel values in [0, 1] (8-bit files divided by 255, 16-bit files by 65535; float TIFFs
        are kept as stored and may leave [0, 1]). ``C`` is 1 (gray) or 3 (RGB); ``P`` is the
        number of pages of a multi-page TIFF stack.
    bit_depth : {8, 16, 32}
        Bits per sample in the file: 8 or 16 for integer files (1-bit files count as 8),
        32 for float TIFFs. Pass it back to `write_image` to keep the input's depth.
    is_stack : bool
        True for a multi-page TIFF (``array`` is 4-D), False otherwise (``array`` is 3-D).
    format : {"png", "jpeg", "tiff"}
        The format found in the file's content (not its extension).
    metadata : dict
        What `write_image` needs to round-trip the file: for TIFF the keys ``"description"``
        (str), ``"resolution"`` ((x, y) floats, pixels per unit), ``"resolution_unit"``
        ({"none", "inch", "centimeter"}) and ``"photometric"`` ({"minisblack", "miniswhite",
        "rgb"}), each present only when the file has it; ``{}`` for PNG and JPEG.
    path : Path or None
        Where the image was read from.

    Notes
    -----
    Equality is identity (``eq=False``): comparing arrays with ``==`` is ambiguous, so compare
    ``a.array`` and ``b.array`` with `numpy.array_equal` instead.
    """

    array: np.ndarray
    bit_depth: int
    is_stack: bool
    format: str
    metadata: dict = field(default_factory=dict)
    path: Path | None = None


def one_line(text: object) -> str:
    """Collapse `text` (often a library's exception message) onto one line."""
    return " ".join(str(text).split())


def describe_os_error(err: OSError) -> str:
    """A short, one-line reason for an OSError (``strerror`` when there is one)."""
    if err.strerror:
        return one_line(err.strerror).lower()
    return one_line(err) or type(err).__name__


def as_path(path: str | os.PathLike[str]) -> Path:
    """Turn a str or path-like into a `Path` (``~`` is expanded)."""
    return Path(os.fspath(path)).expanduser()
