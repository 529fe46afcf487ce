"""Tests for denoiselab.io: exact round trips, one-line errors for bad files, atomic writes.

Every file is generated here, in pytest's tmp_path; nothing is downloaded.
"""

from __future__ import annotations

import errno
import os
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from PIL import ImageFile as PilImageFile

import denoiselab.io as dio
from denoiselab.errors import DenoiselabError
from denoiselab.io import atomic_write, from_tensor, read_image, same_file, to_tensor, write_image

RNG_SEED = 1234


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(RNG_SEED)


def _levels(rng: np.random.Generator, shape: tuple[int, ...], bit_depth: int) -> np.ndarray:
    """Random integer samples (uint8 or uint16) covering the full range, including 0 and the max."""
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    top = 2**bit_depth - 1
    samples = rng.integers(0, top + 1, size=shape, dtype=np.int64)
    samples.flat[0], samples.flat[-1] = 0, top
    return samples.astype(dtype)


def _as_float(samples: np.ndarray) -> np.ndarray:
    top = np.iinfo(samples.dtype).max
    data = samples.astype(np.float32) / np.float32(top)
    return data if data.ndim == 3 else data[..., None]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_bytes(width: int, height: int, *, bit_depth: int = 8, color_type: int = 0, rows: bytes | None = None) -> bytes:
    """A PNG with a correct IHDR (and CRCs); with ``rows=None`` there is no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    body = _png_chunk(b"IHDR", ihdr)
    if rows is not None:
        body += _png_chunk(b"IDAT", zlib.compress(rows))
    return b"\x89PNG\r\n\x1a\n" + body + _png_chunk(b"IEND", b"")


def _check_one_line_error(excinfo: pytest.ExceptionInfo, path: Path) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and "\r" not in message
    assert path.name in message
    return message


def _files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize(
    ("suffix", "bit_depth", "channels"),
    [
        (".png", 8, 1),
        (".png", 8, 3),
        (".png", 16, 1),
        (".tif", 8, 1),
        (".tif", 8, 3),
        (".tif", 16, 1),
        (".tiff", 16, 3),
    ],
)
def test_integer_round_trip_is_exact(tmp_path, rng, suffix, bit_depth, channels):
    samples = _levels(rng, (17, 23, channels), bit_depth)
    path = write_image(tmp_path / f"img{suffix}", _as_float(samples), bit_depth=bit_depth)
    image = read_image(path)
    assert image.array.dtype == np.float32 and image.array.shape == (17, 23, channels)
    assert image.bit_depth == bit_depth and not image.is_stack and image.path == path
    assert image.format == ("png" if suffix == ".png" else "tiff")
    top = 2**bit_depth - 1
    back = np.rint(image.array.astype(np.float64) * top).astype(samples.dtype)
    np.testing.assert_array_equal(back, samples)
    write_image(tmp_path / f"again{suffix}", image.array, bit_depth=image.bit_depth)
    assert (tmp_path / f"again{suffix}").read_bytes() == path.read_bytes()


def test_gray_is_stored_as_2d_image(tmp_path, rng):
    write_image(tmp_path / "g.png", rng.random((5, 6, 1)), bit_depth=16)
    write_image(tmp_path / "g.tif", rng.random((5, 6)), bit_depth=8)
    with Image.open(tmp_path / "g.png") as im:
        assert im.mode == "I;16"
    assert tifffile.imread(tmp_path / "g.tif").shape == (5, 6)


def test_float_tiff_round_trip_keeps_values_outside_unit_range(tmp_path, rng):
    data = (rng.standard_normal((9, 11, 3)) * 2).astype(np.float32)
    image = read_image(write_image(tmp_path / "f.tif", data, bit_depth=32))
    assert image.bit_depth == 32
    np.testing.assert_array_equal(image.array, data)


def test_stack_round_trip_keeps_pages_and_metadata(tmp_path, rng):
    samples = _levels(rng, (4, 12, 10, 3), 16)
    metadata = {"description": "denoised with BF-DnCNN", "resolution": (300.0, 150.0), "resolution_unit": "inch"}
    path = write_image(tmp_path / "stack.tif", samples / 65535.0, bit_depth=16, metadata=metadata)
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 4
    image = read_image(path)
    assert image.is_stack and image.array.shape == (4, 12, 10, 3) and image.bit_depth == 16
    np.testing.assert_array_equal(np.rint(image.array * 65535.0).astype(np.uint16), samples)
    for key, value in metadata.items():
        assert image.metadata[key] == value
    assert image.metadata["photometric"] == "rgb"
    # and again, through the metadata the reader returned
    path2 = write_image(tmp_path / "stack2.tif", image.array, bit_depth=image.bit_depth, metadata=image.metadata)
    again = read_image(path2)
    assert again.metadata == image.metadata
    np.testing.assert_array_equal(again.array, image.array)


def test_single_page_stack_is_read_as_one_image(tmp_path, rng):
    image = read_image(write_image(tmp_path / "one.tif", rng.random((1, 5, 6, 1))))
    assert not image.is_stack and image.array.shape == (5, 6, 1)


def test_gray_stack_round_trip(tmp_path, rng):
    samples = _levels(rng, (3, 6, 7, 1), 8)
    image = read_image(write_image(tmp_path / "g.tif", samples / 255.0))
    assert image.array.shape == (3, 6, 7, 1)
    np.testing.assert_array_equal(np.rint(image.array * 255).astype(np.uint8), samples)


def test_jpeg_round_trip_is_close(tmp_path):
    yy, xx = np.mgrid[0:48, 0:64] / 64.0
    data = np.stack([xx, yy, 0.5 * (xx + yy)], axis=-1).astype(np.float32)
    image = read_image(write_image(tmp_path / "smooth.jpeg", data))
    assert image.format == "jpeg" and image.bit_depth == 8 and image.array.shape == (48, 64, 3)
    error = np.abs(image.array - data)
    assert error.max() < 6 / 255 and error.mean() < 1 / 255


def test_write_clips_and_rounds(tmp_path):
    k = np.arange(0, 250, dtype=np.float64)
    data = np.concatenate([(k + 0.4) / 255, (k + 0.6) / 255, [-0.5, 1.5]]).reshape(1, -1)
    samples = np.asarray(Image.open(write_image(tmp_path / "r.png", data)))
    expected = np.concatenate([k, k + 1, [0, 255]]).astype(np.uint8).reshape(1, -1)
    np.testing.assert_array_equal(samples, expected)


def test_format_is_found_from_content_not_extension(tmp_path, rng):
    path = tmp_path / "actually_tiff.png"
    tifffile.imwrite(path, _levels(rng, (5, 6), 16))
    image = read_image(path)
    assert image.format == "tiff" and image.bit_depth == 16


# ----------------------------------------------------------------------------- modes and layouts


def test_rgba_png_drops_alpha(tmp_path, rng):
    rgba = _levels(rng, (6, 7, 4), 8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(np.rint(image.array * 255).astype(np.uint8), rgba[..., :3])


def test_gray_alpha_png_reads_as_gray(tmp_path, rng):
    la = _levels(rng, (6, 7, 2), 8)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    image = read_image(tmp_path / "la.png")
    np.testing.assert_array_equal(np.rint(image.array * 255).astype(np.uint8), la[..., :1])


def test_palette_png_becomes_rgb(tmp_path, rng):
    rgb = Image.fromarray(_levels(rng, (8, 9, 3), 8))
    rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(tmp_path / "p.png")
    image = read_image(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as im:
        expected = np.asarray(im.convert("RGB"))
    assert image.array.shape == (8, 9, 3) and image.bit_depth == 8
    np.testing.assert_array_equal(np.rint(image.array * 255).astype(np.uint8), expected)


def test_one_bit_png_becomes_zero_or_one(tmp_path, rng):
    bits = rng.random((5, 9)) > 0.5
    Image.fromarray(bits).save(tmp_path / "b.png")
    image = read_image(tmp_path / "b.png")
    assert image.bit_depth == 8
    np.testing.assert_array_equal(image.array[..., 0], bits.astype(np.float32))


def test_tiff_layouts(tmp_path, rng):
    rgb = _levels(rng, (5, 6, 3), 8)
    tifffile.imwrite(tmp_path / "sep.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    rgba = np.concatenate([rgb, _levels(rng, (5, 6, 1), 8)], axis=-1)
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    for name in ("sep.tif", "rgba.tif"):
        image = read_image(tmp_path / name)
        np.testing.assert_array_equal(np.rint(image.array * 255).astype(np.uint8), rgb)


def test_palette_tiff_becomes_rgb(tmp_path):
    index = np.arange(30, dtype=np.uint8).reshape(5, 6)
    colormap = np.stack([np.arange(256), 255 - np.arange(256), np.full(256, 7)]).astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "p.tif", index, photometric="palette", colormap=colormap)
    image = read_image(tmp_path / "p.tif")
    assert image.bit_depth == 8 and image.metadata["photometric"] == "rgb"
    expected = np.moveaxis(colormap[:, index] // 257, 0, -1)
    np.testing.assert_array_equal(np.rint(image.array * 255), expected)


def test_miniswhite_tiff_reads_black_as_zero_and_round_trips(tmp_path):
    stored = np.arange(30, dtype=np.uint8).reshape(5, 6)
    tifffile.imwrite(tmp_path / "w.tif", stored, photometric="miniswhite")
    image = read_image(tmp_path / "w.tif")
    np.testing.assert_array_equal(np.rint(image.array[..., 0] * 255), 255 - stored)
    out = write_image(tmp_path / "w2.tif", image.array, metadata=image.metadata)
    with tifffile.TiffFile(out) as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.MINISWHITE
        np.testing.assert_array_equal(tif.pages[0].asarray(), stored)


# ------------------------------------------------------------------------------------ bad inputs


def _make_bad_file(kind: str, folder: Path) -> tuple[Path, dict]:
    """Create a bad input of the given kind; return (path, extra read_image kwargs)."""
    rng = np.random.default_rng(RNG_SEED)
    good_png = folder / "good.png"
    Image.fromarray(_levels(rng, (40, 50, 3), 8)).save(good_png)
    good_jpg = folder / "good.jpg"
    Image.fromarray(_levels(rng, (40, 50, 3), 8)).save(good_jpg, quality=90)
    good_tif = folder / "good.tif"
    tifffile.imwrite(good_tif, _levels(rng, (3, 40, 50), 16), photometric="minisblack")
    path = folder / f"bad_{kind}.png"
    kwargs: dict = {}
    if kind == "missing":
        pass
    elif kind == "folder":
        path = folder / "a_folder.png"
        path.mkdir()
    elif kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "text_as_png":
        path.write_text("this is not an image\n")
    elif kind == "text_as_tif":
        path = folder / "notes.tif"
        path.write_text("II*\x00 not really a TIFF")
    elif kind == "truncated_png":
        path.write_bytes(good_png.read_bytes()[: good_png.stat().st_size // 2])
    elif kind == "png_cut_before_iend":
        path.write_bytes(good_png.read_bytes()[:-12])
    elif kind == "png_bad_crc":
        data = bytearray(good_png.read_bytes())
        data[-20] ^= 0xFF  # inside the last IDAT, so its CRC no longer matches
        path.write_bytes(bytes(data))
    elif kind == "truncated_jpeg":
        path = folder / "bad.jpg"
        path.write_bytes(good_jpg.read_bytes()[: good_jpg.stat().st_size // 2])
    elif kind == "truncated_tiff_data":
        path = folder / "bad.tif"
        path.write_bytes(good_tif.read_bytes()[:-100])
    elif kind == "truncated_tiff_pages":
        path = folder / "bad.tif"
        path.write_bytes(good_tif.read_bytes()[: good_tif.stat().st_size // 2])
    elif kind == "tiff_header_only":
        path = folder / "bad.tif"
        path.write_bytes(good_tif.read_bytes()[:12])
    elif kind == "zero_size_png":
        path.write_bytes(_png_bytes(0, 0, rows=b""))
    elif kind == "zero_size_tiff":
        path = folder / "empty.tif"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tifffile warns that the file is non-conformant: that is the point
            tifffile.imwrite(path, np.zeros((0, 5), np.uint8))
    elif kind == "five_channels":
        path = folder / "five.tif"
        tifffile.imwrite(path, np.zeros((4, 5, 5), np.uint8), photometric="minisblack", planarconfig="contig")
    elif kind == "two_channels_no_alpha":
        path = folder / "two.tif"
        tifffile.imwrite(path, np.zeros((4, 5, 2), np.uint8), photometric="minisblack", planarconfig="contig")
    elif kind == "nan":
        path = folder / "nan.tif"
        data = np.ones((4, 5), np.float32)
        data[1, 2] = np.nan
        tifffile.imwrite(path, data)
    elif kind == "inf":
        path = folder / "inf.tif"
        data = np.ones((2, 4, 5), np.float32)
        data[1, 0, 0] = -np.inf
        tifffile.imwrite(path, data)
    elif kind == "int32":
        path = folder / "int32.tif"
        tifffile.imwrite(path, np.zeros((4, 5), np.int32))
    elif kind == "int16":
        path = folder / "int16.tif"
        tifffile.imwrite(path, np.zeros((4, 5), np.int16))
    elif kind == "cmyk_tiff":
        path = folder / "cmyk.tif"
        tifffile.imwrite(path, np.zeros((4, 5, 4), np.uint8), photometric="separated")
    elif kind == "pages_of_different_size":
        path = folder / "mixed.tif"
        with tifffile.TiffWriter(path) as tif:
            tif.write(np.zeros((4, 5), np.uint8), metadata=None)
            tif.write(np.zeros((6, 5), np.uint8), metadata=None)
    elif kind == "rgb16_png":
        samples = np.arange(4 * 5 * 3, dtype=np.uint16).reshape(4, 5, 3) * 1000
        rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in samples)
        path.write_bytes(_png_bytes(5, 4, bit_depth=16, color_type=2, rows=rows))
    elif kind == "too_many_pixels":
        path = good_png
        kwargs = {"max_pixels": 1000}
    elif kind == "too_many_tiff_pixels":
        path = good_tif
        kwargs = {"max_pixels": 40 * 50 * 3 - 1}  # each page fits, the stack does not
    elif kind == "bomb_header":
        path.write_bytes(_png_bytes(100_000, 100_000))
    elif kind == "lzw_without_imagecodecs":
        path = folder / "lzw.tif"
        tifffile.imwrite(path, np.zeros((4, 5), np.uint8), metadata=None)
        with tifffile.TiffFile(path) as tif:
            offset = tif.pages[0].tags["Compression"].valueoffset
        data = bytearray(path.read_bytes())
        data[offset : offset + 2] = struct.pack("<H", 5)  # claim LZW (needs imagecodecs, absent here)
        path.write_bytes(bytes(data))
        if 5 in tifffile.TIFF.DECOMPRESSORS:
            pytest.skip("imagecodecs is installed, so LZW can be decoded")
    elif kind == "over_pillow_warning_limit":  # 1e8 px: below max_pixels, above Pillow's warning threshold
        path.write_bytes(_png_bytes(10_000, 10_000))
    elif kind == "large_header_under_pillow_limit":
        path.write_bytes(_png_bytes(9000, 9000))
        kwargs = {"max_pixels": 10**6}
    else:  # pragma: no cover
        raise AssertionError(kind)
    return path, kwargs


BAD_KINDS = {
    "missing": "no such file",
    "folder": "folder",
    "zero_bytes": "empty (0 bytes)",
    "text_as_png": "not a valid PNG, JPEG or TIFF",
    "text_as_tif": "truncated or corrupt",
    "truncated_png": "truncated or corrupt",
    "png_cut_before_iend": "truncated or corrupt",
    "png_bad_crc": "truncated or corrupt",
    "truncated_jpeg": "truncated or corrupt",
    "truncated_tiff_data": "truncated or corrupt",
    "truncated_tiff_pages": "truncated or corrupt",
    "tiff_header_only": "truncated or corrupt",
    "zero_size_png": "PNG",
    "zero_size_tiff": "empty",
    "five_channels": "expected 1 (gray) or 3 (RGB) channels",
    "two_channels_no_alpha": "expected 1 (gray) or 3 (RGB) channels",
    "nan": "NaN or infinite",
    "inf": "NaN or infinite",
    "int32": "32-bit signed integer",
    "int16": "16-bit signed integer",
    "cmyk_tiff": "photometric",
    "pages_of_different_size": "same size",
    "rgb16_png": "16-bit RGB PNG",
    "too_many_pixels": "max_pixels=1,000",
    "too_many_tiff_pixels": "x 3 pages",
    "bomb_header": "decompression",
    "large_header_under_pillow_limit": "max_pixels=1,000,000",
    "over_pillow_warning_limit": "decompression",
    "lzw_without_imagecodecs": "imagecodecs",
}


@pytest.mark.parametrize("kind", sorted(BAD_KINDS))
def test_bad_input_gives_one_line_error_naming_the_file(tmp_path, kind):
    path, kwargs = _make_bad_file(kind, tmp_path)
    with pytest.raises(DenoiselabError) as excinfo:
        read_image(path, **kwargs)
    message = _check_one_line_error(excinfo, path)
    assert BAD_KINDS[kind] in message


def test_size_is_checked_before_decoding(tmp_path, monkeypatch):
    path, kwargs = _make_bad_file("too_many_tiff_pixels", tmp_path)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded pixels despite the size limit")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_decoding)
    monkeypatch.setattr(Image.Image, "load", no_decoding)
    with pytest.raises(DenoiselabError, match="max_pixels"):
        read_image(path, **kwargs)
    with pytest.raises(DenoiselabError, match="max_pixels"):
        read_image(tmp_path / "good.png", max_pixels=10)


def test_library_errors_are_chained(tmp_path):
    path, _ = _make_bad_file("truncated_png", tmp_path)
    with pytest.raises(DenoiselabError) as excinfo:
        read_image(path)
    assert isinstance(excinfo.value.__cause__, (OSError, SyntaxError))


@pytest.mark.parametrize("max_pixels", [0, -5, 2.5, True, "100"])
def test_bad_max_pixels(tmp_path, max_pixels):
    with pytest.raises(DenoiselabError, match="max_pixels"):
        read_image(tmp_path / "x.png", max_pixels=max_pixels)


# ----------------------------------------------------------------------------------- bad outputs


@pytest.mark.parametrize(
    ("name", "array", "kwargs", "expected"),
    [
        ("out.bmp", np.zeros((4, 4)), {}, ".png, .jpg, .jpeg, .tif, .tiff"),
        ("out", np.zeros((4, 4)), {}, "unknown extension"),
        ("out.jpg", np.zeros((4, 4)), {"bit_depth": 16}, "bit_depth=16"),
        ("out.png", np.zeros((4, 4)), {"bit_depth": 32}, "bit_depth=32"),
        ("out.tif", np.zeros((4, 4)), {"bit_depth": 12}, "expected one of 8, 16, 32"),
        ("out.png", np.zeros((4, 4, 3)), {"bit_depth": 16}, "16-bit RGB PNG"),
        ("out.png", np.zeros((4, 4), np.uint8), {}, "dtype uint8"),
        ("out.png", np.zeros((4, 4, 5)), {}, "C = 1 (gray) or 3 (RGB)"),
        ("out.png", np.zeros(7), {}, "expected (H, W)"),
        ("out.png", np.zeros((2, 4, 4, 3)), {}, "only be written to TIFF"),
        ("out.png", np.zeros((0, 4)), {}, "no pixels"),
        ("out.png", np.array([[0.5, np.nan]]), {}, "NaN or infinite"),
        ("out.tif", np.array([[0.5, np.inf]]), {"bit_depth": 32}, "NaN or infinite"),
        ("out.tif", np.zeros((4, 4)), {"metadata": {"colour": "red"}}, "unknown metadata keys"),
        ("out.tif", np.zeros((4, 4)), {"metadata": {"resolution": (0, 72)}}, "resolution"),
        ("out.tif", np.zeros((4, 4)), {"metadata": {"resolution": (72, 72), "resolution_unit": "furlong"}}, "inch"),
        ("out.tif", np.zeros((4, 4)), {"metadata": {"description": "café"}}, "ASCII"),
    ],
)
def test_bad_write_gives_one_line_error_and_no_file(tmp_path, name, array, kwargs, expected):
    with pytest.raises(DenoiselabError) as excinfo:
        write_image(tmp_path / name, array, **kwargs)
    message = _check_one_line_error(excinfo, tmp_path / name)
    assert expected in message
    assert _files_in(tmp_path) == []


def test_metadata_for_png_warns_at_the_caller(tmp_path):
    with pytest.warns(UserWarning, match="only written to TIFF") as record:
        write_image(tmp_path / "x.png", np.zeros((3, 3)), metadata={"description": "hi"})
    assert record[0].filename == __file__


def test_single_page_stack_can_go_to_png(tmp_path):
    image = read_image(write_image(tmp_path / "x.png", np.full((1, 3, 4, 3), 0.5)))
    assert image.array.shape == (3, 4, 3)


# ------------------------------------------------------------------------ protection and atomicity


def _make_input(tmp_path: Path) -> tuple[Path, bytes]:
    path = write_image(tmp_path / "input.png", np.linspace(0, 1, 20).reshape(4, 5))
    return path, path.read_bytes()


def test_refuses_to_overwrite_the_input(tmp_path):
    source, before = _make_input(tmp_path)
    with pytest.raises(DenoiselabError) as excinfo:
        write_image(source, np.zeros((4, 5)), protect=[source])
    message = _check_one_line_error(excinfo, source)
    assert message.startswith("refusing to overwrite the input")
    assert source.read_bytes() == before
    assert _files_in(tmp_path) == ["input.png"]


def test_refuses_through_another_spelling_symlink_and_hard_link(tmp_path):
    source, before = _make_input(tmp_path)
    (tmp_path / "sub").mkdir()
    other_spelling = tmp_path / "sub" / ".." / "input.png"
    link = tmp_path / "link.png"
    link.symlink_to(source)
    hard = tmp_path / "hard.png"
    os.link(source, hard)
    for target in (other_spelling, link, hard):
        with pytest.raises(DenoiselabError, match="refusing to overwrite the input"):
            write_image(target, np.zeros((4, 5)), protect=[str(source)])
    assert source.read_bytes() == before


def test_protect_accepts_a_single_path(tmp_path):
    source, before = _make_input(tmp_path)
    with pytest.raises(DenoiselabError, match="refusing to overwrite the input"):
        write_image(source, np.zeros((4, 5)), protect=str(source))
    with pytest.raises(DenoiselabError, match="refusing to overwrite the input"):
        write_image(source, np.zeros((4, 5)), protect=source)
    assert source.read_bytes() == before


def test_truncated_images_are_not_loaded_leniently(tmp_path):
    path, _ = _make_bad_file("truncated_jpeg", tmp_path)
    with pytest.raises(DenoiselabError):
        read_image(path)
    assert PilImageFile.LOAD_TRUNCATED_IMAGES is False


def test_protect_lets_other_targets_through(tmp_path):
    source, before = _make_input(tmp_path)
    out = write_image(tmp_path / "output.png", np.zeros((4, 5)), protect=[source, tmp_path / "missing.png"])
    assert out.exists() and source.read_bytes() == before


def test_same_file(tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("x")
    (tmp_path / "b.txt").write_text("x")
    assert same_file(a, tmp_path / "." / "a.txt")
    assert not same_file(a, tmp_path / "b.txt")
    assert same_file(tmp_path / "new" / ".." / "n.png", tmp_path / "n.png")  # neither exists
    assert not same_file(a, tmp_path / "n.png")


def test_atomic_write_removes_temp_file_when_writer_fails(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old content")
    seen: list[Path] = []

    def broken_writer(tmp: Path) -> None:
        seen.append(tmp)
        tmp.write_bytes(b"half a fi")
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError, match="encoder crashed"):
        atomic_write(target, broken_writer)
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".out.png.") and seen[0].suffix == ".tmp"
    assert target.read_bytes() == b"old content"
    assert _files_in(tmp_path) == ["out.png"]


def test_atomic_write_replaces_completely(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    assert atomic_write(target, lambda tmp: tmp.write_bytes(b"new content")) == target
    assert target.read_bytes() == b"new content" and _files_in(tmp_path) == ["out.bin"]


def test_disk_full_leaves_no_partial_file(tmp_path, monkeypatch):
    def fill_disk(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", fill_disk)
    target = tmp_path / "out.png"
    with pytest.raises(DenoiselabError) as excinfo:
        write_image(target, np.zeros((4, 5)))
    message = _check_one_line_error(excinfo, target)
    assert message.startswith("disk full while writing")
    assert isinstance(excinfo.value.__cause__, OSError)
    assert _files_in(tmp_path) == []


def test_disk_full_in_tiff_writer(tmp_path, monkeypatch):
    def fill_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", fill_disk)
    with pytest.raises(DenoiselabError, match="disk full"):
        write_image(tmp_path / "out.tif", np.zeros((4, 5, 3)), bit_depth=16)
    assert _files_in(tmp_path) == []


def test_missing_output_folder_is_not_created(tmp_path):
    target = tmp_path / "nope" / "out.png"
    with pytest.raises(DenoiselabError) as excinfo:
        write_image(target, np.zeros((4, 5)))
    assert "does not exist" in _check_one_line_error(excinfo, target)
    assert not (tmp_path / "nope").exists()


def test_target_that_is_a_folder(tmp_path):
    (tmp_path / "out.png").mkdir()
    with pytest.raises(DenoiselabError, match="is a folder"):
        write_image(tmp_path / "out.png", np.zeros((4, 5)))


def test_unwritable_folder_simulated(tmp_path, monkeypatch):
    real_open = os.open

    def deny_temp_files(path, flags, *args, **kwargs):
        if str(path).endswith(".tmp") and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny_temp_files)
    target = tmp_path / "out.png"
    with pytest.raises(DenoiselabError) as excinfo:
        write_image(target, np.zeros((4, 5)))
    assert "not writable" in _check_one_line_error(excinfo, target)
    assert _files_in(tmp_path) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions and a non-root user")
def test_unwritable_folder_real(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(DenoiselabError, match="not writable"):
            write_image(folder / "out.png", np.zeros((4, 5)))
        assert _files_in(folder) == []
    finally:
        folder.chmod(0o700)


def test_written_file_gets_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    out = write_image(tmp_path / "out.png", np.zeros((2, 2)))
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


# ---------------------------------------------------------------------------------------- tensors


def test_to_tensor_and_back(rng):
    image = rng.random((5, 7, 3)).astype(np.float32)
    x = to_tensor(image)
    assert x.shape == (1, 3, 5, 7) and x.dtype == torch.float32 and x.is_contiguous()
    np.testing.assert_array_equal(x[0, 1].numpy(), image[..., 1])
    back = from_tensor(x)
    assert back.shape == (5, 7, 3) and back.dtype == np.float32 and back.flags.c_contiguous
    np.testing.assert_array_equal(back, image)
    stack = rng.random((4, 5, 7, 1))
    xs = to_tensor(stack)
    assert xs.shape == (4, 1, 5, 7) and xs.dtype == torch.float32
    np.testing.assert_allclose(from_tensor(xs), stack.astype(np.float32))


def test_to_tensor_copies(rng):
    image = rng.random((5, 7, 1)).astype(np.float32)
    x = to_tensor(image)
    x.fill_(2.0)
    assert image.max() < 1.0


def test_from_tensor_detaches_gradients():
    x = torch.zeros(2, 3, 4, 5, requires_grad=True)
    assert from_tensor(x * 2).shape == (2, 4, 5, 3)


@pytest.mark.parametrize("bad", [np.zeros((4, 5)), np.zeros((1, 2, 3, 4, 5))])
def test_to_tensor_rejects_wrong_ndim(bad):
    with pytest.raises(DenoiselabError, match=r"\(H, W, C\)"):
        to_tensor(bad)


@pytest.mark.parametrize("bad", [torch.zeros(3, 4, 5), np.zeros((1, 3, 4, 5))])
def test_from_tensor_rejects_wrong_input(bad):
    with pytest.raises(DenoiselabError, match=r"\(B, C, H, W\)"):
        from_tensor(bad)


def test_public_api():
    assert set(dio.__all__) == {
        "ImageFile", "atomic_write", "from_tensor", "read_image", "same_file", "to_tensor", "write_image"
    }


# --------------------------------------------------------------------------------------- property


_SHAPES = st.tuples(st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 3]))


@settings(max_examples=40, deadline=None)
@given(
    samples=st.one_of(
        _SHAPES.flatmap(lambda s: hnp.arrays(np.uint8, s)),
        _SHAPES.flatmap(lambda s: hnp.arrays(np.uint16, s)),
    ),
    suffix=st.sampled_from([".png", ".tif"]),
)
def test_property_integer_images_round_trip_exactly(samples, suffix):
    bit_depth = 8 if samples.dtype == np.uint8 else 16
    if suffix == ".png" and bit_depth == 16 and samples.shape[-1] == 3:
        suffix = ".tif"  # Pillow cannot write 16-bit RGB PNG (tested above)
    with tempfile.TemporaryDirectory() as folder:
        path = write_image(Path(folder) / f"img{suffix}", _as_float(samples), bit_depth=bit_depth)
        image = read_image(path)
    assert image.bit_depth == bit_depth and image.array.shape == samples.shape
    top = 2**bit_depth - 1
    np.testing.assert_array_equal(np.rint(image.array.astype(np.float64) * top).astype(samples.dtype), samples)
