"""kill -9 in the middle of a batch, then the same command again: only unfinished images are computed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from denoiselab.cli.main import main
from denoiselab.io import read_image, write_image

N_IMAGES = 8
SIZE = 128  # TV on a 128x128 RGB image takes ~0.1-0.5 s here: the batch is killed well before its end


def _ok_records(manifest: Path) -> list[dict]:
    if not manifest.exists():
        return []
    records = []
    for line in manifest.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line being written right now
    return [r for r in records if r.get("status") == "ok"]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_sigkill_mid_batch_then_resume(tmp_path, capsys):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        write_image(src / f"im{i:02d}.png", np.clip(0.5 + rng.normal(0, 0.1, (SIZE, SIZE, 3)), 0, 1).astype(np.float32))
    args = ["denoise", str(src), "-o", str(out), "--method", "tv", "--sigma", "10", "--device", "cpu"]

    proc = subprocess.Popen([sys.executable, "-m", "denoiselab.cli.main", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while len(_ok_records(out / "manifest.jsonl")) < 3:  # kill once a few images are done
        assert proc.poll() is None, f"the batch ended before it could be killed: {proc.stderr.read()!r}"
        assert time.monotonic() < deadline, "the batch did not start"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    finished = {Path(r["output"]).name for r in _ok_records(out / "manifest.jsonl")}
    assert 3 <= len(finished) < N_IMAGES, "killed mid-way"
    visible = [p for p in out.iterdir() if not p.name.startswith(".") and p.suffix == ".png"]
    for path in visible:  # atomic writes: whatever has its final name is a whole image
        assert read_image(path).array.shape == (SIZE, SIZE, 3)
    stamps = {name: (out / name).stat().st_mtime_ns for name in finished}

    start = time.perf_counter()
    assert main(args) == 0
    resumed_seconds = time.perf_counter() - start
    printed = capsys.readouterr().out
    assert f"{N_IMAGES} images, {len(finished)} already done (skipped)" in printed
    assert {name: (out / name).stat().st_mtime_ns for name in finished} == stamps  # not recomputed
    assert sorted(p.name for p in out.iterdir()) == sorted([f"im{i:02d}.png" for i in range(N_IMAGES)] + ["manifest.jsonl"])
    ok = _ok_records(out / "manifest.jsonl")
    assert sorted(Path(r["output"]).name for r in ok) == sorted(f"im{i:02d}.png" for i in range(N_IMAGES))
    assert len(ok) == N_IMAGES  # one "ok" line per image: nothing was computed twice
    for i in range(N_IMAGES):
        assert read_image(out / f"im{i:02d}.png").array.shape == (SIZE, SIZE, 3)
    print(f"resume: {N_IMAGES - len(finished)} images in {resumed_seconds:.1f} s")  # shown with pytest -s
