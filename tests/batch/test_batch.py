"""Batch denoising from Python: inputs, output names, manifest, resume, failures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from denoiselab.batch import DenoiseOptions, Manifest, expand_inputs, output_name, plan_outputs, read_manifest, run_batch
from denoiselab.batch.manifest import remove_stale_temp_files
from denoiselab.errors import DenoiselabError
from denoiselab.io import read_image, write_image

TV = DenoiseOptions(method="tv", sigma255=10, device="cpu")


def _image(seed: int, size: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(0.5 + rng.normal(0, 0.1, (size, size, 3)), 0, 1).astype(np.float32)


@pytest.fixture
def folder(tmp_path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        write_image(src / f"im{i}.png", _image(i))
    return src


def test_expand_inputs_files_folders_and_patterns(folder, tmp_path):
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"")
    sub = folder / "deeper"
    sub.mkdir()
    write_image(sub / "x.tif", _image(9))
    names = lambda paths: [p.name for p in paths]  # noqa: E731
    assert names(expand_inputs([str(folder)])) == ["im0.png", "im1.png", "im2.png"]  # not recursive, no hidden
    assert names(expand_inputs([str(folder / "im[12].png"), str(folder / "im1.png")])) == ["im1.png", "im2.png"]
    assert names(expand_inputs([str(folder / "**" / "*.tif")])) == ["x.tif"]
    assert all(p.is_absolute() for p in expand_inputs([str(folder)]))
    with pytest.raises(DenoiselabError, match="no such file"):
        expand_inputs([str(tmp_path / "nope.png")])
    with pytest.raises(DenoiselabError, match="matches no file"):
        expand_inputs([str(folder / "*.bmp")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DenoiselabError, match="holds no image"):
        expand_inputs([str(tmp_path / "empty")])


def test_output_names_and_clashes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert output_name(Path("x/Photo.JPEG"), None) == "Photo.jpeg"
    assert output_name(Path("x/scan.tiff"), "png") == "scan.png"
    with pytest.raises(DenoiselabError, match="would both be written"):
        plan_outputs([a / "im.png", b / "im.png"], tmp_path / "out", None)
    with pytest.raises(DenoiselabError, match="would both be written"):
        plan_outputs([a / "im.png", a / "im.tif"], tmp_path / "out", "png")
    with pytest.raises(DenoiselabError, match="overwrite an input"):
        plan_outputs([a / "im.png"], a, None)


def test_run_batch_writes_one_output_per_input_and_a_manifest(folder, tmp_path):
    out = tmp_path / "out" / "nested"  # created
    summary = run_batch([folder], out, TV, fmt="tif")
    assert (summary.total, summary.done, summary.skipped, summary.failed) == (3, 3, 0, [])
    assert sorted(p.name for p in out.iterdir()) == ["im0.tif", "im1.tif", "im2.tif", "manifest.jsonl"]
    records = read_manifest(out / "manifest.jsonl")
    assert [Path(r["input"]).name for r in records] == ["im0.png", "im1.png", "im2.png"]
    for r in records:
        assert r["status"] == "ok" and r["message"] is None and r["method"] == "tv"
        assert r["settings"] == TV.to_dict() and r["noise"] == {"sigma255": [10.0]} and r["seconds"] > 0
        assert read_image(r["output"]).array.shape == (24, 24, 3)


def test_resume_skips_finished_images_and_redoes_changed_or_failed_ones(folder, tmp_path):
    out = tmp_path / "out"
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    first = run_batch([folder], out, TV)
    assert (first.done, len(first.failed)) == (3, 1)
    assert "broken.png" in first.failed[0]["message"]
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("im*.png")}

    write_image(folder / "broken.png", _image(7))  # the user fixes the bad file
    second = run_batch([folder], out, TV)
    assert (second.skipped, second.done, second.failed) == (3, 1, [])
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("im*.png")} == stamps  # not recomputed

    (out / "im0.png").unlink()  # a deleted output is redone
    assert run_batch([folder], out, TV).done == 1
    changed = DenoiseOptions(method="tv", sigma255=20, device="cpu")  # other options: everything is redone
    assert run_batch([folder], out, changed).done == 4
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 4 + 1 + 1 + 4  # appended, never rewritten


def test_manifest_drops_a_torn_last_line_and_locks_the_folder(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text(json.dumps({"input": "/a.png", "status": "ok"}) + "\n" + '{"input": "/b.png", "sta')
    with Manifest(tmp_path) as manifest:
        assert [r["input"] for r in manifest.records] == ["/a.png"]
        with pytest.raises(DenoiselabError, match="another denoiselab batch"):
            Manifest(tmp_path)
        manifest.append({"input": "/c.png", "status": "ok"})
    assert [r["input"] for r in read_manifest(path)] == ["/a.png", "/c.png"]
    with Manifest(tmp_path) as manifest:  # the lock went with the first one
        assert len(manifest.records) == 2


def test_stale_temp_files_of_our_outputs_are_removed(tmp_path):
    target = tmp_path / "im0.png"
    ours, other = tmp_path / ".im0.png.0badc0de.tmp", tmp_path / ".unrelated.png.0badc0de.tmp"
    ours.write_bytes(b"half")
    other.write_bytes(b"someone else's")
    assert remove_stale_temp_files([target]) == [ours]
    assert other.exists()


def test_uncertainty_maps_need_scoredvi(folder, tmp_path):
    with pytest.raises(DenoiselabError, match="scoredvi"):
        run_batch([folder], tmp_path / "out", TV, uncertainty_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_scoredvi_batch_writes_uncertainty_maps(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_image(src / "a.png", _image(0, 16))
    options = DenoiseOptions(method="scoredvi", iterations=2, device="cpu")
    summary = run_batch([src], tmp_path / "out", options, uncertainty_dir=tmp_path / "out")
    assert summary.done == 1
    record = read_manifest(tmp_path / "out" / "manifest.jsonl")[0]
    std = read_image(record["uncertainty"])
    assert Path(record["uncertainty"]).name == "a_std.tif" and std.bit_depth == 32 and (std.array >= 0).all()
    assert set(record["noise"]) == {"delta255", "lam", "beta"}
    assert run_batch([src], tmp_path / "out", options, uncertainty_dir=tmp_path / "out").skipped == 1


def test_a_bug_in_one_image_is_recorded_with_its_traceback(folder, tmp_path, monkeypatch):
    import denoiselab.api

    real = denoiselab.api.denoise
    calls = []

    def flaky(image, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the local executor goes in order: im1.png
            raise ZeroDivisionError("simulated bug")
        return real(image, *args, **kwargs)

    monkeypatch.setattr(denoiselab.api, "denoise", flaky)
    summary = run_batch([folder], tmp_path / "out", TV)
    assert summary.done == 2 and summary.has_bug
    (bad,) = summary.failed
    assert Path(bad["input"]).name == "im1.png" and bad["bug"] is True and "ZeroDivisionError" in bad["traceback"]
    assert not (tmp_path / "out" / "im1.png").exists()
    assert os.path.isfile(tmp_path / "out" / "im2.png")
