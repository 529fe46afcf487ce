"""``denoiselab denoise`` with several inputs, folders and patterns: when it is a batch, and how outputs are named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from denoiselab.cli.main import main
from denoiselab.io import read_image, write_image

TV = ["--method", "tv", "--sigma", "10"]


@pytest.fixture
def src(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, channels in (("a.png", 3), ("b.jpg", 3), ("c.tif", 1)):
        write_image(folder / name, np.clip(0.5 + rng.normal(0, 0.1, (20, 20, channels)), 0, 1).astype(np.float32),
                    bit_depth=16 if name.endswith(".tif") else 8)
    return folder


def test_folder_keeps_each_format_and_writes_the_manifest(src, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["denoise", str(src), "-o", str(out), *TV]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg", "c.tif", "manifest.jsonl"]
    assert read_image(out / "c.tif").bit_depth == 16  # the input's depth, where the format holds it
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {r["status"] for r in records} == {"ok"}
    assert set(records[0]) >= {"input", "output", "method", "settings", "seconds", "noise", "status", "message"}
    assert "3 denoised, 0 already done, 0 failed" in capsys.readouterr().out


def test_patterns_several_inputs_and_format(src, tmp_path):
    out = tmp_path / "out"
    assert main(["denoise", str(src / "*.png"), str(src / "c.tif"), "-o", str(out), "--format", "tif", *TV]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.tif", "c.tif", "manifest.jsonl"]


def test_one_file_into_an_existing_folder_is_a_batch(src, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert main(["denoise", str(src / "a.png"), "-o", str(out), *TV]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "manifest.jsonl"]


@pytest.mark.parametrize("args, words", [
    (["--format", "png"], "for batches"),
    (["--executor", "ray"], "for batches"),
])
def test_batch_options_on_one_file_are_refused(src, tmp_path, capsys, args, words):
    assert main(["denoise", str(src / "a.png"), "-o", str(tmp_path / "x.png"), *TV, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]
    assert not (tmp_path / "x.png").exists()


def test_clashing_names_and_output_over_input_stop_before_any_work(src, tmp_path, capsys):
    assert main(["denoise", str(src), "-o", str(tmp_path / "out"), "--format", "png", *TV]) == 0  # a, b, c: no clash
    write_image(src / "a.tif", np.zeros((4, 4, 1), np.float32))
    assert main(["denoise", str(src), "-o", str(tmp_path / "out2"), "--format", "png", *TV]) == 2
    assert "would both be written" in capsys.readouterr().err
    assert not any((tmp_path / "out2").iterdir())
    assert main(["denoise", str(src), "-o", str(src), *TV]) == 2
    assert "overwrite an input" in capsys.readouterr().err


def test_an_option_that_fails_everywhere_fails_once(src, tmp_path, capsys):
    assert main(["denoise", str(src), "-o", str(tmp_path / "out"), "--method", "magic"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown denoiser" in err[0]
    assert not (tmp_path / "out").exists()
