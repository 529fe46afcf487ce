"""Never break on bad input: a corpus of broken files and hostile situations, each through the real CLI.

Every case must give: a non-zero exit code, exactly one line on stderr starting with
``denoiselab: error:``, no traceback, no output file (not even a temporary one), and the input
files byte for byte unchanged. The corpus is generated here; nothing is downloaded.
"""

from __future__ import annotations

import errno
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from denoiselab.cli.main import main
from denoiselab.io import read_image, write_image

FAST = ["--method", "bfdncnn-color"]  # a network: one quick call, no progress bar


# ------------------------------------------------------------------------------------------ corpus


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height (8-bit RGB) over an empty IDAT: valid CRCs, no pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")


def _jpeg_claiming(width: int, height: int, base: bytes) -> bytes:
    """A real JPEG with the size in its SOF0 marker rewritten (a decompression-bomb header)."""
    at = base.index(b"\xff\xc0")  # SOF0: marker, length (2), precision (1), height (2), width (2)
    return base[: at + 5] + struct.pack(">HH", height, width) + base[at + 9 :]


def _noise_image(height: int = 24, width: int = 24, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((height, width, channels)) * 255).astype(np.uint8)


def _write_weights(folder: Path, name: str, card: dict, *, depth: int = 3, width: int = 8) -> Path:
    """A .safetensors file of a tiny BF-DnCNN and a JSON card that may disagree with it."""
    from safetensors.torch import save_file

    from denoiselab.denoisers.bfdncnn import BFDnCNN

    net = BFDnCNN(3, depth=depth, width=width)
    path = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    (folder / f"{name}.json").write_text(json.dumps(card))
    return path


def _make_case(name: str, folder: Path) -> tuple[Path, list[str]]:
    """Create the input of case `name` in `folder`; return (input path, extra CLI arguments)."""
    img = _noise_image()
    if name == "truncated_png":
        data = _png_bytes(img)
        (path := folder / "in.png").write_bytes(data[: len(data) // 2])
    elif name == "truncated_jpeg":
        data = _jpeg_bytes(_noise_image(128, 128))  # large enough that half of it ends inside the pixel data
        (path := folder / "in.jpg").write_bytes(data[: len(data) // 2])
    elif name == "png_cut_before_iend":
        data = _png_bytes(img)
        (path := folder / "in.png").write_bytes(data[:-12])  # pixels complete, IEND chunk missing
    elif name == "zero_bytes":
        (path := folder / "in.png").write_bytes(b"")
    elif name == "zero_by_zero_png":
        (path := folder / "in.png").write_bytes(_png_header_only(0, 0))
    elif name == "one_by_one_estimated_sigma":  # tv takes a sigma (blind networks estimate none)
        (path := folder / "in.png").write_bytes(_png_bytes(_noise_image(1, 1)))
        return path, ["--method", "tv", "--sigma", "auto"]
    elif name == "bm3d_eight_by_eight":  # the bm3d library segfaults on exactly 8x8
        (path := folder / "in.png").write_bytes(_png_bytes(_noise_image(8, 8)))
        return path, ["--method", "bm3d", "--sigma", "10"]
    elif name == "nan_float_tiff":
        data = np.full((16, 16), 0.5, np.float32)
        data[3, 4] = np.nan
        tifffile.imwrite(path := folder / "in.tif", data)
    elif name == "inf_float_tiff":
        data = np.full((16, 16), 0.5, np.float32)
        data[0, 0] = np.inf
        tifffile.imwrite(path := folder / "in.tif", data)
    elif name == "five_channel_tiff":
        tifffile.imwrite(path := folder / "in.tif", _noise_image(16, 16, 5), photometric="minisblack",
                         planarconfig="contig")
    elif name == "png_bomb_header":
        (path := folder / "in.png").write_bytes(_png_header_only(100_000, 100_000))
    elif name == "jpeg_bomb_header":
        (path := folder / "in.jpg").write_bytes(_jpeg_claiming(65_000, 65_000, _jpeg_bytes(img)))
    elif name == "text_named_png":
        (path := folder / "in.png").write_text("this is not an image\n")
    elif name == "text_named_tif":
        (path := folder / "in.tif").write_bytes(b"II*\x00" + b"garbage, not a TIFF directory")
    elif name == "missing_weights":
        (path := folder / "in.png").write_bytes(_png_bytes(img))
        return path, ["--method", str(folder / "nowhere.safetensors")]
    elif name == "weights_of_wrong_shape":  # the card says width 16, the file holds width 8
        (path := folder / "in.png").write_bytes(_png_bytes(img))
        weights = _write_weights(folder, "wrong", {"architecture": "bfdncnn", "channels": 3, "depth": 3, "width": 16})
        return path, ["--method", str(weights)]
    elif name == "weights_card_incomplete":
        (path := folder / "in.png").write_bytes(_png_bytes(img))
        weights = _write_weights(folder, "nocard", {"architecture": "bfdncnn"})
        return path, ["--method", str(weights)]
    elif name == "weights_not_safetensors":
        (path := folder / "in.png").write_bytes(_png_bytes(img))
        (folder / "junk.safetensors").write_bytes(b"\x00" * 64)
        (folder / "junk.json").write_text(json.dumps({"architecture": "bfdncnn", "channels": 3, "depth": 3, "width": 8}))
        return path, ["--method", str(folder / "junk.safetensors")]
    else:
        raise AssertionError(name)
    return path, FAST


CASES = [
    "truncated_png", "truncated_jpeg", "png_cut_before_iend", "zero_bytes", "zero_by_zero_png",
    "one_by_one_estimated_sigma", "bm3d_eight_by_eight", "nan_float_tiff", "inf_float_tiff", "five_channel_tiff",
    "png_bomb_header", "jpeg_bomb_header", "text_named_png", "text_named_tif", "missing_weights",
    "weights_of_wrong_shape", "weights_card_incomplete", "weights_not_safetensors",
]
# Run through a real subprocess as well, to prove there is no traceback (nor a crash) outside pytest.
SUBPROCESS_CASES = ["truncated_jpeg", "bm3d_eight_by_eight", "weights_of_wrong_shape"]

# What each message must mention, so the user knows what is wrong.
EXPECTED = {
    "truncated_png": "truncated", "truncated_jpeg": "truncated", "png_cut_before_iend": "truncated or corrupt",
    "zero_bytes": "empty", "zero_by_zero_png": "in.png", "one_by_one_estimated_sigma": "too small",
    "bm3d_eight_by_eight": "8x8", "nan_float_tiff": "NaN", "inf_float_tiff": "infinite",
    "five_channel_tiff": "5 channels", "png_bomb_header": "decompression", "jpeg_bomb_header": "decompression",
    "text_named_png": "not a valid", "text_named_tif": "TIFF", "missing_weights": "not found",
    "weights_of_wrong_shape": "does not fit", "weights_card_incomplete": "model card",
    "weights_not_safetensors": "not a readable safetensors",
}


# ------------------------------------------------------------------------------------------ checks


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("denoiselab: error: "), lines
    return lines[0]


def _assert_clean_failure(rc: int, err: str, folder: Path, before: dict[str, bytes], out_dir: Path) -> str:
    assert rc != 0
    line = _one_error_line(err)
    assert _snapshot(folder) == before, "an input file changed"
    assert not any(out_dir.iterdir()), f"left behind: {sorted(p.name for p in out_dir.iterdir())}"
    return line


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_and_no_output(case, tmp_path, capsys):
    inputs, out_dir = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    out_dir.mkdir()
    path, extra = _make_case(case, inputs)
    before = _snapshot(inputs)
    rc = main(["denoise", str(path), "-o", str(out_dir / "out.png"), *extra])
    line = _assert_clean_failure(rc, capsys.readouterr().err, inputs, before, out_dir)
    assert rc == 2
    assert EXPECTED[case].lower() in line.lower(), line


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_bad_input_in_a_real_process(case, tmp_path):
    inputs, out_dir = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    out_dir.mkdir()
    path, extra = _make_case(case, inputs)
    before = _snapshot(inputs)
    proc = subprocess.run([sys.executable, "-m", "denoiselab.cli.main", "denoise", str(path), "-o",
                           str(out_dir / "out.png"), *extra], capture_output=True, text=True, timeout=300)
    _assert_clean_failure(proc.returncode, proc.stderr, inputs, before, out_dir)
    assert proc.returncode == 2, proc.stderr  # not a crash (-11) nor a bug (1)


def test_bad_images_inside_a_batch_are_recorded_and_the_batch_goes_on(tmp_path, capsys):
    inputs, out_dir = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for case in ("truncated_png", "zero_bytes", "nan_float_tiff", "five_channel_tiff", "png_bomb_header"):
        sub = tmp_path / case
        sub.mkdir()
        path, _ = _make_case(case, sub)
        path.rename(inputs / f"{case}{path.suffix}")
    write_image(inputs / "good.png", np.full((16, 16, 3), 0.5, np.float32))
    before = _snapshot(inputs)
    assert main(["denoise", str(inputs), "-o", str(out_dir), "--method", "tv", "--sigma", "5"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 5 + 1  # one line per bad image, one summary
    assert _snapshot(inputs) == before
    records = [json.loads(line) for line in (out_dir / "manifest.jsonl").read_text().splitlines()]
    status = {Path(r["input"]).stem: r["status"] for r in records}
    assert status.pop("good") == "ok" and set(status.values()) == {"error"} and len(status) == 5
    assert all(r["message"] and "\n" not in r["message"] for r in records if r["status"] == "error")
    assert sorted(p.name for p in out_dir.iterdir()) == ["good.png", "manifest.jsonl"]


# ----------------------------------------------------------------------------- hostile situations


@pytest.fixture
def good_input(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "in.png"
    path.write_bytes(_png_bytes(_noise_image(96, 96)))  # large enough for the noise estimator not to warn
    return path


def test_output_equal_to_input_is_refused(good_input, capsys):
    before = _snapshot(good_input.parent)
    assert main(["denoise", str(good_input), "-o", str(good_input), *FAST]) == 2
    assert "overwrite" in _one_error_line(capsys.readouterr().err)
    assert _snapshot(good_input.parent) == before


def test_output_through_a_symlink_to_the_input_is_refused(good_input, tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "link.png").symlink_to(good_input)
    before = good_input.read_bytes()
    assert main(["denoise", str(good_input), "-o", str(out_dir / "link.png"), *FAST]) == 2
    assert "overwrite" in _one_error_line(capsys.readouterr().err)
    assert good_input.read_bytes() == before and (out_dir / "link.png").is_symlink()


def test_unwritable_output_folder(good_input, tmp_path, capsys, monkeypatch):
    out_dir = tmp_path / "readonly"
    out_dir.mkdir()
    out_dir.chmod(0o555)
    if os.geteuid() == 0:  # root ignores permissions: make the system answer as it would to anyone else
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == out_dir else real_access(p, mode, **kw))
    before = _snapshot(good_input.parent)
    try:
        assert main(["denoise", str(good_input), "-o", str(out_dir / "out.png"), *FAST]) == 2
        assert "not writable" in _one_error_line(capsys.readouterr().err)
        assert not any(out_dir.iterdir())
    finally:
        out_dir.chmod(0o755)
    assert _snapshot(good_input.parent) == before


def test_permission_denied_while_writing(good_input, tmp_path, capsys, monkeypatch):
    """The folder looked writable but creating the file fails (ACLs, read-only mounts, races)."""
    from denoiselab.io import _atomic

    def deny(folder, name):
        raise PermissionError(errno.EACCES, "Permission denied", str(folder / name))

    monkeypatch.setattr(_atomic, "_create_temp", deny)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert main(["denoise", str(good_input), "-o", str(out_dir / "out.png"), *FAST]) == 2
    assert "not writable" in _one_error_line(capsys.readouterr().err)
    assert not any(out_dir.iterdir())


@pytest.mark.parametrize("where", ["image", "report figure"])
def test_disk_full_leaves_no_partial_output(good_input, tmp_path, capsys, monkeypatch, where):
    """Half a file is written, then the disk is full (ENOSPC): nothing may remain, not even the
    denoised image when it is the report (written after it) that hits the full disk."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def half_then_full(write, target, data):
        write(target, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "image":
        real_save = Image.Image.save

        def save(self, fp, *args, **kwargs):
            if not isinstance(fp, (str, os.PathLike)):  # in-memory encodes (the report's) are not the disk
                return real_save(self, fp, *args, **kwargs)
            buffer = io.BytesIO()
            real_save(self, buffer, *args, **kwargs)
            half_then_full(Path.write_bytes, Path(fp), buffer.getvalue())

        monkeypatch.setattr(Image.Image, "save", save)
        extra = []
    else:
        real_write_bytes = Path.write_bytes

        def write_bytes(self, data):
            if self.name.startswith(".report_figure.png."):  # atomic_write's temp file of the figure
                half_then_full(real_write_bytes, self, data)
            return real_write_bytes(self, data)

        monkeypatch.setattr(Path, "write_bytes", write_bytes)
        extra = ["--report", str(out_dir / "report.html")]
    before = _snapshot(good_input.parent)
    rc = main(["denoise", str(good_input), "-o", str(out_dir / "out.png"), *FAST, *extra])
    line = _assert_clean_failure(rc, capsys.readouterr().err, good_input.parent, before, out_dir)
    assert "disk full" in line


def test_missing_output_folder_and_unknown_extension(good_input, tmp_path, capsys):
    assert main(["denoise", str(good_input), "-o", str(tmp_path / "no" / "such" / "out.png"), *FAST]) == 2
    assert "does not exist" in _one_error_line(capsys.readouterr().err)
    assert main(["denoise", str(good_input), "-o", str(tmp_path / "out.bmp"), *FAST]) == 2
    assert "extension" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out.bmp").exists() and not (tmp_path / "no").exists()


def test_uncertainty_needs_scoredvi_and_reference_must_match(good_input, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(["denoise", str(good_input), "-o", str(out), *FAST, "--uncertainty", str(tmp_path / "u.tif")]) == 2
    assert "scoredvi" in _one_error_line(capsys.readouterr().err)
    small = tmp_path / "small.png"
    small.write_bytes(_png_bytes(_noise_image(8, 8)))
    assert main(["denoise", str(good_input), "-o", str(out), *FAST, "--reference", str(small)]) == 2
    assert "same size" in _one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_one_by_one_image_with_a_given_sigma_is_denoised(tmp_path, capsys):
    """1x1 is not an error when nothing needs a neighbourhood: TV with a given sigma works."""
    src = tmp_path / "one.png"
    src.write_bytes(_png_bytes(_noise_image(1, 1)))
    assert main(["denoise", str(src), "-o", str(tmp_path / "out.png"), "--method", "tv", "--sigma", "10"]) == 0
    assert capsys.readouterr().err == ""
    assert read_image(tmp_path / "out.png").array.shape == (1, 1, 3)
