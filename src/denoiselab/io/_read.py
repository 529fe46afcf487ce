"""Reading PNG/JPEG (Pillow) and TIFF (tifffile) into float32 arrays in [0, 1]."""

from __future__ import annotations

import logging
import os
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from ..errors import DenoiselabError
from ._common import ImageFile, as_path, describe_os_error, one_line

# Magic numbers of classic TIFF and BigTIFF, little and big endian.
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# Exceptions Pillow's plugins and decoders raise on broken data (UnidentifiedImageError is an OSError).
_PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError)
# Exceptions tifffile raises on broken or unsupported files (TiffFileError is a ValueError).
_TIFF_ERRORS = (tifffile.TiffFileError, ValueError, OSError, EOFError, struct.error, KeyError, IndexError,
                NotImplementedError)
_PH = tifffile.PHOTOMETRIC
_ALPHA = (tifffile.EXTRASAMPLE.ASSOCALPHA, tifffile.EXTRASAMPLE.UNASSALPHA)
# (numpy dtype, bits per sample) -> bit depth reported in ImageFile (1-bit counts as 8).
_TIFF_DEPTHS = {
    (np.dtype(bool), 1): 8,
    (np.dtype(np.uint8), 1): 8,
    (np.dtype(np.uint8), 8): 8,
    (np.dtype(np.uint16), 16): 16,
    (np.dtype(np.float16), 16): 32,
    (np.dtype(np.float32), 32): 32,
    (np.dtype(np.float64), 64): 32,
}


def read_image(path: str | os.PathLike[str], *, max_pixels: int = 200_000_000) -> ImageFile:
    """Read a PNG, JPEG or TIFF file into a float32 array in [0, 1].

    The format is found from the file's content, not its extension. Gray, gray+alpha, RGB,
    RGBA and palette images are accepted: **alpha is dropped** (not composited) and palette
    images become RGB. 8-bit samples are divided by 255 and 16-bit samples by 65535; 1-bit
    images become 0.0/1.0 (reported as 8-bit); float TIFFs are kept as float32 and may hold
    values outside [0, 1]. A TIFF with several pages is read as a stack.

    Parameters
    ----------
    path : str or path-like
        The image file.
    max_pixels : int, optional
        Refuse images with more pixels than this (summed over the pages of a TIFF), checked
        from the header before anything is decoded. The default, 2e8 pixels, is ~2.4 GB as
        float32 RGB. Pillow's own decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``,
        ~89 Mpx by default) also applies to PNG and JPEG.

    Returns
    -------
    ImageFile
        ``array`` has shape (H, W, C), or (P, H, W, C) for a multi-page TIFF, with C in {1, 3};
        see `ImageFile` for the other fields.

    Raises
    ------
    DenoiselabError
        With a one-line message naming the file, if it is missing, a folder, empty, not a
        PNG/JPEG/TIFF, truncated or corrupt, has no pixels, more than `max_pixels` pixels, a
        channel count other than 1 or 3 (after dropping alpha), an unsupported bit depth
        (e.g. 32-bit integers, 16-bit RGB PNG) or NaN/infinite values.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1:
        raise DenoiselabError(f"max_pixels={max_pixels!r} is not a positive int; pass e.g. max_pixels=200_000_000")
    file = as_path(path)
    head = _read_head(file)
    if head[:4] in _TIFF_MAGIC:
        array, bit_depth, metadata = _read_tiff(file, int(max_pixels))
        fmt = "tiff"
    else:
        array, bit_depth, fmt = _read_pillow(file, int(max_pixels))
        metadata = {}
    _check_finite(file, array)
    is_stack = array.ndim == 4
    return ImageFile(array=array, bit_depth=bit_depth, is_stack=is_stack, format=fmt, metadata=metadata, path=file)


# --------------------------------------------------------------------------------------------- checks


def _read_head(file: Path) -> bytes:
    """Check that `file` is a readable, non-empty regular file and return its first bytes."""
    try:
        if file.is_dir():
            raise DenoiselabError(f"cannot read {file}: it is a folder, expected an image file")
        with open(file, "rb") as fh:
            head = fh.read(16)
    except FileNotFoundError as err:
        raise DenoiselabError(f"cannot read {file}: no such file; check the path") from err
    except PermissionError as err:
        raise DenoiselabError(f"cannot read {file}: permission denied; check the file's permissions") from err
    except OSError as err:
        raise DenoiselabError(f"cannot read {file}: {describe_os_error(err)}") from err
    if not head:
        raise DenoiselabError(f"cannot read {file}: the file is empty (0 bytes); expected a PNG, JPEG or TIFF image")
    return head


def _check_size(file: Path, height: int, width: int, n_pages: int, max_pixels: int) -> None:
    """Refuse empty images and images with more than `max_pixels` pixels (header sizes only)."""
    if height <= 0 or width <= 0 or n_pages <= 0:
        raise DenoiselabError(
            f"cannot read {file}: the image is empty ({width}x{height} pixels); expected at least 1x1"
        )
    total = height * width * n_pages
    if total > max_pixels:
        pages = f" x {n_pages} pages" if n_pages > 1 else ""
        raise DenoiselabError(
            f"refusing to read {file}: {width}x{height}{pages} = {total:,} pixels is more than "
            f"max_pixels={max_pixels:,} (possible decompression bomb); pass a larger max_pixels if you trust the file"
        )


def _check_channels(file: Path, n_channels: int) -> None:
    if n_channels not in (1, 3):
        raise DenoiselabError(
            f"cannot read {file}: it has {n_channels} channels (alpha excluded); "
            "expected 1 (gray) or 3 (RGB) channels; convert it to gray or RGB"
        )


def _check_finite(file: Path, array: np.ndarray) -> None:
    finite = np.isfinite(array)
    if not finite.all():
        n_bad = int(array.size - np.count_nonzero(finite))
        raise DenoiselabError(
            f"cannot read {file}: {n_bad} of {array.size} samples are NaN or infinite; "
            "expected finite values; fix or mask them in the file"
        )


def _corrupt(file: Path, kind: str, err: BaseException) -> DenoiselabError:
    reason = one_line(err) or type(err).__name__
    return DenoiselabError(
        f"cannot read {file}: the {kind} data is truncated or corrupt ({reason}); re-export or re-download the file"
    )


def _to_unit_float(file: Path, raw: np.ndarray) -> tuple[np.ndarray, int]:
    """Scale integer samples to float32 in [0, 1]; keep floats. Returns (array, bit depth)."""
    if raw.dtype == np.bool_:
        return raw.astype(np.float32), 8
    if raw.dtype == np.uint8 or (raw.dtype.kind == "u" and raw.dtype.itemsize == 2):  # incl. big-endian "I;16B"
        bit_depth = 8 * raw.dtype.itemsize
        array = raw.astype(np.float32)
        array /= np.float32(2**bit_depth - 1)  # in place: one float copy of the image, not two
        return array, bit_depth
    if raw.dtype.kind == "f":
        return raw.astype(np.float32), 32
    raise DenoiselabError(  # callers check depths first; this is the last line of defence
        f"cannot read {file}: samples of type {raw.dtype} are not supported; expected 8- or 16-bit unsigned "
        "integers or floats; convert the image to 8- or 16-bit"
    )


# --------------------------------------------------------------------------------------- PNG / JPEG


def _rawmode(im: Image.Image) -> str:
    """The raw (file) mode of the first tile, e.g. ``"RGB;16B"`` for a 16-bit RGB PNG; must be called before load."""
    if not im.tile:
        return ""
    args = im.tile[0].args
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return ""


def _read_pillow(file: Path, max_pixels: int) -> tuple[np.ndarray, int, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(file, formats=("PNG", "JPEG"))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise DenoiselabError(
                f"refusing to read {file}: {one_line(err)} (Pillow's decompression-bomb guard); "
                "raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
            ) from err
        except UnidentifiedImageError as err:
            raise DenoiselabError(
                f"cannot read {file}: not a valid PNG, JPEG or TIFF image "
                "(unrecognised content or invalid header); check the file"
            ) from err
        except _PILLOW_ERRORS as err:
            raise _corrupt(file, "image", err) from err
    with im:
        fmt = "png" if im.format == "PNG" else "jpeg"
        width, height = im.size
        _check_size(file, height, width, 1, max_pixels)
        mode, rawmode = im.mode, _rawmode(im)
        if ";16" in rawmode and not mode.startswith("I"):
            raise DenoiselabError(
                f"cannot read {file}: it is a 16-bit {mode} {fmt.upper()}, which Pillow can only read as 8-bit; "
                "save it as 16-bit TIFF (or 16-bit gray PNG) instead"
            )
        try:
            im.load()  # force the full decode: truncated data raises here (LOAD_TRUNCATED_IMAGES stays False)
            if fmt == "png":
                _verify_png(file)
        except _PILLOW_ERRORS as err:
            raise _corrupt(file, fmt.upper(), err) from err
        raw = _pillow_to_array(file, im, rawmode)
    array, bit_depth = _to_unit_float(file, raw)
    return array, bit_depth, fmt


def _verify_png(file: Path) -> None:
    """Check every chunk's CRC up to IEND (catches files cut after the pixel data)."""
    with Image.open(file, formats=("PNG",)) as im:
        im.verify()


def _pillow_to_array(file: Path, im: Image.Image, rawmode: str) -> np.ndarray:
    """Decoded Pillow image -> (H, W, C) integer array with C in {1, 3}."""
    mode = im.mode
    if mode in ("P", "PA"):
        im = im.convert("RGBA")  # RGBA keeps palette transparency without Pillow's warning; alpha dropped below
        mode = "RGBA"
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
        mode = "RGB"
    elif mode == "La":
        im = im.convert("LA")
        mode = "LA"
    elif mode in ("RGBa", "RGBX"):
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("1", "L", "I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im)[..., None]
    if mode == "I" and ";16" in rawmode:  # 16-bit gray PNG opened as 32-bit by some Pillow versions
        return np.asarray(im).astype(np.uint16)[..., None]
    if mode == "LA":
        return np.asarray(im)[..., :1]
    if mode in ("RGB", "RGBA"):
        return np.asarray(im)[..., :3]
    if mode in ("I", "I;32", "F"):
        raise DenoiselabError(
            f"cannot read {file}: 32-bit {'float' if mode == 'F' else 'integer'} samples are not supported; "
            "expected 8- or 16-bit; convert the image to 16-bit"
        )
    raise DenoiselabError(
        f"cannot read {file}: Pillow mode {mode!r} is not supported; expected gray, gray+alpha, RGB, RGBA "
        "or palette; convert the image to 8-bit RGB"
    )


# --------------------------------------------------------------------------------------------- TIFF


class _LogCatcher(logging.Filter):
    """Collect (and keep off stderr) tifffile's warnings and errors: it logs, rather than raises,
    e.g. a broken page chain or a bad first-page offset. Errors are fatal for us."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            self.errors.append(one_line(record.getMessage()))
        elif record.levelno >= logging.WARNING:
            self.warnings.append(one_line(record.getMessage()))
        else:
            return True
        return False


@contextmanager
def _catch_tifffile_logs() -> Iterator[_LogCatcher]:
    logger = logging.getLogger("tifffile")
    catcher = _LogCatcher()
    logger.addFilter(catcher)
    try:
        yield catcher
    finally:
        logger.removeFilter(catcher)


def _read_tiff(file: Path, max_pixels: int) -> tuple[np.ndarray, int, dict]:
    with _catch_tifffile_logs() as log:
        try:
            with tifffile.TiffFile(file) as tif:
                # Skip reduced-resolution previews (thumbnails); keep the full-resolution pages.
                pages = [page for page in tif.pages if not (int(page.subfiletype) & 1)]
                if log.errors:
                    raise _corrupt(file, "TIFF", log.errors[0])
                if not pages:
                    raise _corrupt(file, "TIFF", log.warnings[0] if log.warnings else "no image pages")
                first = pages[0]
                height, width = int(first.imagelength), int(first.imagewidth)
                _check_size(file, height, width, len(pages), max_pixels)
                for index, page in enumerate(pages):
                    _check_tiff_page(file, page, first, index)
                metadata = _tiff_metadata(tif, first)
                arrays = [_tiff_page_array(file, page) for page in pages]
                if log.errors:
                    raise _corrupt(file, "TIFF", log.errors[0])
        except ImportError as err:  # a codec tifffile found but could not import
            raise DenoiselabError(
                f"cannot read {file}: decoding this TIFF needs a module that is not installed ({one_line(err)}); "
                "install imagecodecs or re-save the file uncompressed"
            ) from err
        except _TIFF_ERRORS as err:
            if isinstance(err, FileNotFoundError):
                raise DenoiselabError(f"cannot read {file}: no such file; check the path") from err
            raise _corrupt(file, "TIFF", err) from err
    bit_depths = {depth for _, depth in arrays}
    array = np.stack([a for a, _ in arrays]) if len(arrays) > 1 else arrays[0][0]
    return array, max(bit_depths), metadata


def _check_tiff_page(file: Path, page: tifffile.TiffPage, first: tifffile.TiffPage, index: int) -> None:
    """Validate one page from its header alone: size, photometric, sample type (nothing decoded)."""
    where = f"page {index} of " if index else ""
    if int(page.imagedepth) > 1:
        raise DenoiselabError(
            f"cannot read {file}: {where}the TIFF is a volume ({page.imagedepth} slices per page); "
            "expected 2-D pages; save the slices as separate pages"
        )
    if (page.imagelength, page.imagewidth) != (first.imagelength, first.imagewidth):
        raise DenoiselabError(
            f"cannot read {file}: page {index} is {page.imagewidth}x{page.imagelength} but page 0 is "
            f"{first.imagewidth}x{first.imagelength}; expected all pages the same size; split the stack"
        )
    photometric = page.photometric
    if photometric not in (_PH.MINISBLACK, _PH.MINISWHITE, _PH.RGB, _PH.PALETTE):
        name = getattr(photometric, "name", photometric)
        raise DenoiselabError(
            f"cannot read {file}: {where}the TIFF has photometric interpretation {name}; "
            "expected gray (MINISBLACK/MINISWHITE), RGB or palette; convert it to RGB"
        )
    if page.compression not in tifffile.TIFF.DECOMPRESSORS:
        name = getattr(page.compression, "name", page.compression)
        raise DenoiselabError(
            f"cannot read {file}: {where}the TIFF uses {name} compression, which needs the optional 'imagecodecs' "
            "package; install imagecodecs or re-save the file uncompressed"
        )
    if photometric == _PH.PALETTE:
        return
    key = (np.dtype(page.dtype) if page.dtype is not None else None, int(page.bitspersample))
    if key not in _TIFF_DEPTHS:
        kind = {1: "unsigned integer", 2: "signed integer", 3: "float"}.get(int(page.sampleformat), "other")
        raise DenoiselabError(
            f"cannot read {file}: {where}the TIFF has {page.bitspersample}-bit {kind} samples; expected 1-, 8- or "
            "16-bit unsigned integers or 16/32/64-bit floats; convert it to 16-bit"
        )


def _tiff_page_array(file: Path, page: tifffile.TiffPage) -> tuple[np.ndarray, int]:
    """Decode one page -> ((H, W, C) float32 with C in {1, 3}, bit depth)."""
    raw = page.asarray()
    samples = int(page.samplesperpixel)
    if page.photometric == _PH.PALETTE:
        colormap = np.asarray(page.colormap)  # (3, 2**bits) uint16
        if raw.dtype.kind not in "ub" or samples != 1 or colormap.ndim != 2 or colormap.shape[0] != 3:
            raise DenoiselabError(f"cannot read {file}: the TIFF palette is malformed; convert the image to RGB")
        index = raw.astype(np.intp)
        if index.max(initial=0) >= colormap.shape[1]:
            raise _corrupt(file, "TIFF", ValueError("palette index out of range"))
        if np.all(colormap % 257 == 0):  # 8-bit palette stored the usual way (v * 257)
            colormap = (colormap // 257).astype(np.uint8)
        raw = np.moveaxis(colormap[:, index], 0, -1)
        return _to_unit_float(file, raw)
    if samples > 1 and page.planarconfig == tifffile.PLANARCONFIG.SEPARATE:
        raw = np.moveaxis(raw, 0, -1)
    if raw.ndim == 2:
        raw = raw[..., None]
    n_alpha = sum(1 for extra in page.extrasamples if extra in _ALPHA)
    n_color = raw.shape[-1] - n_alpha
    _check_channels(file, n_color)
    raw = raw[..., :n_color]
    if page.photometric == _PH.MINISWHITE:  # store black as 0 like everything else; write_image inverts back
        if raw.dtype == np.bool_:
            raw = ~raw
        elif raw.dtype.kind == "u":
            raw = np.iinfo(raw.dtype).max - raw
        else:
            raw = 1 - raw
    if raw.dtype.kind == "u" and int(page.bitspersample) == 1:
        raw = raw.astype(bool)
    return _to_unit_float(file, raw)


def _tiff_metadata(tif: tifffile.TiffFile, page: tifffile.TiffPage) -> dict:
    """Description, resolution and photometric of the first page, as `write_image` takes them."""
    metadata: dict = {}
    for description in (page.description, page.description1):
        if description and not (tif.is_shaped and description.startswith('{"shape"')):
            metadata["description"] = description
            break
    tags = page.tags
    if "XResolution" in tags and "YResolution" in tags:
        x_res, y_res = page.resolution
        metadata["resolution"] = (float(x_res), float(y_res))
        unit = page.resolutionunit
        metadata["resolution_unit"] = getattr(unit, "name", str(unit)).lower()
    # How write_image should store it; palette images were converted to RGB.
    metadata["photometric"] = {_PH.MINISWHITE: "miniswhite", _PH.MINISBLACK: "minisblack"}.get(page.photometric, "rgb")
    return metadata
