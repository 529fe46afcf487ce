"""Writing float arrays in [0, 1] to PNG/JPEG (Pillow) and TIFF (tifffile), atomically."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from ..errors import DenoiselabError
from ._atomic import atomic_write, same_file
from ._common import EXTENSIONS, VALID_EXTENSIONS, as_path

_JPEG_QUALITY = 95  # with 4:4:4 chroma (no subsampling): near-lossless for denoising results
_TIFF_KEYS = ("description", "resolution", "resolution_unit", "photometric")
_RESOLUTION_UNITS = ("none", "inch", "centimeter", "millimeter", "micrometer")


def write_image(
    path: str | os.PathLike[str],
    array: np.ndarray,
    *,
    bit_depth: int = 8,
    metadata: dict | None = None,
    protect: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Write a float image in [0, 1] to PNG, JPEG or TIFF, atomically.

    The format comes from the extension. Values are clipped to [0, 1] and rounded to the
    nearest integer level (``round(x * 255)`` or ``round(x * 65535)``); 32-bit float TIFFs are
    stored unclipped. Gray images are stored as 2-D (single-sample) images. The file is written
    through `atomic_write`: a temp file in the target folder is renamed over `path` only once
    complete, so `path` never holds a partial image.

    Parameters
    ----------
    path : str or path-like
        Target file ending in .png, .jpg, .jpeg, .tif or .tiff. Its folder must exist.
    array : np.ndarray, shape (H, W), (H, W, C) or (P, H, W, C)
        Float pixel values in [0, 1], with C in {1, 3}. A stack of P > 1 pages can only go to
        TIFF (one page each); a stack with P == 1 is written as a single image.
    bit_depth : {8, 16, 32}, optional
        Bits per sample in the file. 16 is for PNG (gray only: Pillow cannot write 16-bit RGB
        PNG) and TIFF; 32 (float32 samples) is for TIFF only; JPEG is always 8. Pass
        ``image.bit_depth`` to keep the input's depth.
    metadata : dict, optional
        TIFF only (as in `ImageFile.metadata`): ``"description"`` (ASCII str),
        ``"resolution"`` ((x, y) pixels per unit), ``"resolution_unit"`` (``"none"``,
        ``"inch"``, ``"centimeter"``, ...) and ``"photometric"`` (``"miniswhite"`` stores gray
        inverted, as in the input; other values follow the array's channels). Ignored, with a
        warning, for PNG and JPEG.
    protect : iterable of str or path-like, optional
        Files that must never be overwritten, such as the input image (compared with
        `same_file`, so symlinks and hard links are caught). A single path is accepted too.

    Returns
    -------
    Path
        The written path.

    Raises
    ------
    DenoiselabError
        For an unknown extension, a bad `bit_depth` for the format, an array that is not float,
        has the wrong shape, NaN/inf or no pixels, bad metadata, a target in `protect`, a
        missing or unwritable folder, or a full disk. No file is left behind in any case.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from denoiselab.io import read_image
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "ramp.png"
    >>> _ = write_image(out, np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4), bit_depth=16)
    >>> read_image(out).bit_depth
    16
    """
    target = as_path(path)
    fmt = EXTENSIONS.get(target.suffix.lower())
    if fmt is None:
        raise DenoiselabError(
            f"cannot write {target}: unknown extension {target.suffix or '(none)'!r}; use one of {VALID_EXTENSIONS}"
        )
    _check_bit_depth(target, fmt, bit_depth)
    data = _check_array(target, fmt, array)
    if fmt == "png" and bit_depth == 16 and data.shape[-1] == 3:
        raise DenoiselabError(
            f"cannot write {target}: 16-bit RGB PNG is not supported (Pillow has no 16-bit RGB mode); "
            "use a .tif path or bit_depth=8"
        )
    options = _tiff_options(target, metadata, data) if fmt == "tiff" else {}
    if fmt != "tiff" and metadata:
        warnings.warn(
            f"metadata keys {sorted(metadata)} are only written to TIFF; ignored for {target.name}",
            UserWarning,
            stacklevel=2,
        )
    if isinstance(protect, (str, os.PathLike)):  # one path, not an iterable of its characters
        protect = [protect]
    for protected in protect:
        if same_file(target, protected):
            raise DenoiselabError(
                f"refusing to overwrite the input {as_path(protected)} with {target}; choose another output path"
            )
    samples = _quantize(data, bit_depth, invert=options.get("photometric") == "miniswhite")
    if fmt == "tiff":
        return atomic_write(target, lambda tmp: _write_tiff(tmp, samples, options))
    return atomic_write(target, lambda tmp: _write_pillow(tmp, samples, fmt))


def _check_bit_depth(target: Path, fmt: str, bit_depth: int) -> None:
    allowed = {"png": (8, 16), "jpeg": (8,), "tiff": (8, 16, 32)}[fmt]
    if isinstance(bit_depth, bool) or bit_depth not in allowed:
        hint = {"jpeg": "; use a .png or .tif path for 16 bits", "png": "; use a .tif path for float32"}.get(fmt, "")
        raise DenoiselabError(
            f"cannot write {target}: bit_depth={bit_depth!r} is not supported for {fmt.upper()}; "
            f"expected one of {', '.join(map(str, allowed))}{hint}"
        )


def _check_array(target: Path, fmt: str, array: np.ndarray) -> np.ndarray:
    """Validate `array` -> float32/64 (H, W, C) or (P, H, W, C) with C in {1, 3} and finite values."""
    data = np.asarray(array)
    if data.dtype.kind != "f":
        hint = " (divide by 255 or 65535 first)" if data.dtype.kind in "ui" else ""
        raise DenoiselabError(
            f"cannot write {target}: array has dtype {data.dtype}; expected floats in [0, 1]{hint}"
        )
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim == 4 and data.shape[0] == 1 and fmt != "tiff":
        data = data[0]
    if data.ndim not in (3, 4) or data.shape[-1] not in (1, 3):
        raise DenoiselabError(
            f"cannot write {target}: array has shape {tuple(np.shape(array))}; expected (H, W), (H, W, C) or "
            "(P, H, W, C) with C = 1 (gray) or 3 (RGB); move the channels last"
        )
    if data.ndim == 4 and fmt != "tiff":
        raise DenoiselabError(
            f"cannot write {target}: a stack of {data.shape[0]} pages can only be written to TIFF; "
            "use a .tif path or write the pages one by one"
        )
    if data.size == 0:
        raise DenoiselabError(f"cannot write {target}: array has shape {tuple(np.shape(array))}, no pixels")
    finite = np.isfinite(data)
    if not finite.all():
        n_bad = int(data.size - np.count_nonzero(finite))
        raise DenoiselabError(
            f"cannot write {target}: {n_bad} of {data.size} values are NaN or infinite; "
            "expected finite values in [0, 1]; fix them (e.g. np.nan_to_num) first"
        )
    # float32 is exact enough for 16-bit levels; float64 input stays float64 (no extra copy either way)
    return data.astype(np.float32 if data.dtype.itemsize <= 4 else np.float64, copy=False)


def _quantize(data: np.ndarray, bit_depth: int, *, invert: bool) -> np.ndarray:
    """Float (..., C) -> file samples; gray loses its channel axis."""
    if invert:
        data = 1.0 - data
    if bit_depth == 32:
        samples = data.astype(np.float32)
    else:
        top = 2**bit_depth - 1
        dtype = np.uint8 if bit_depth == 8 else np.uint16
        samples = np.rint(np.clip(data, 0.0, 1.0) * top).astype(dtype)
    if samples.shape[-1] == 1:
        samples = samples[..., 0]
    return np.ascontiguousarray(samples)


def _write_pillow(tmp: Path, samples: np.ndarray, fmt: str) -> None:
    image = Image.fromarray(samples)  # uint8 2-D -> "L", uint8 (H, W, 3) -> "RGB", uint16 2-D -> "I;16"
    if fmt == "png":
        image.save(tmp, format="PNG")
    else:
        image.save(tmp, format="JPEG", quality=_JPEG_QUALITY, subsampling=0)


def _tiff_options(target: Path, metadata: dict | None, data: np.ndarray) -> dict:
    """Validate `metadata` -> keyword arguments for `tifffile.imwrite` (plus "photometric")."""
    metadata = dict(metadata or {})
    unknown = sorted(set(metadata) - set(_TIFF_KEYS))
    if unknown:
        raise DenoiselabError(
            f"cannot write {target}: unknown metadata keys {unknown}; expected some of {', '.join(_TIFF_KEYS)}"
        )
    gray = data.shape[-1] == 1
    options: dict = {"photometric": "minisblack" if gray else "rgb"}
    if gray and metadata.get("photometric") == "miniswhite":
        options["photometric"] = "miniswhite"
    elif metadata.get("photometric") not in (None, "minisblack", "miniswhite", "rgb"):
        raise DenoiselabError(
            f"cannot write {target}: metadata photometric={metadata['photometric']!r}; "
            "expected 'minisblack', 'miniswhite' or 'rgb'"
        )
    description = metadata.get("description")
    if description is not None:
        if not isinstance(description, str) or not description.isascii():
            raise DenoiselabError(
                f"cannot write {target}: metadata description must be an ASCII str, got {description!r:.60}; "
                "remove non-ASCII characters"
            )
        options["description"] = description
    resolution = metadata.get("resolution")
    if resolution is not None:
        try:
            x_res, y_res = (float(v) for v in resolution)
        except (TypeError, ValueError) as err:
            raise DenoiselabError(
                f"cannot write {target}: metadata resolution={resolution!r}; expected (x, y) pixels per unit"
            ) from err
        if not all(math.isfinite(v) and v > 0 for v in (x_res, y_res)):
            raise DenoiselabError(
                f"cannot write {target}: metadata resolution={resolution!r}; expected positive finite numbers"
            )
        options["resolution"] = (x_res, y_res)
        unit = str(metadata.get("resolution_unit", "none")).lower()
        if unit not in _RESOLUTION_UNITS:
            raise DenoiselabError(
                f"cannot write {target}: metadata resolution_unit={unit!r}; "
                f"expected one of {', '.join(_RESOLUTION_UNITS)}"
            )
        options["resolutionunit"] = tifffile.RESUNIT[unit.upper()]
    return options


def _write_tiff(tmp: Path, samples: np.ndarray, options: dict) -> None:
    kwargs = dict(options)
    if kwargs["photometric"] == "rgb":
        kwargs["planarconfig"] = "contig"
    # metadata=None: no tifffile JSON description, so the user's description is the only one.
    # Uncompressed, so no optional codec package (imagecodecs) is needed to read it back.
    tifffile.imwrite(tmp, samples, metadata=None, **kwargs)
