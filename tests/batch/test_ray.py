"""``--executor ray`` on a one-CPU local Ray instance: same outputs, manifest and resume as local."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from denoiselab.batch import DenoiseOptions, RayExecutor, read_manifest, run_batch
from denoiselab.cli.main import main
from denoiselab.io import read_image, write_image

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'denoiselab[ray]')")


@pytest.fixture(scope="module")
def local_ray():
    """One Ray instance for the module (starting Ray takes ~10 s here); shut down afterwards."""
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_batch_matches_the_local_one_and_resumes(local_ray, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(src / f"im{i}.png", np.clip(0.5 + rng.normal(0, 0.1, (24, 24, 3)), 0, 1).astype(np.float32))
    (src / "bad.png").write_text("not an image")
    options = DenoiseOptions(method="tv", sigma255=10, device="cpu")

    executor = RayExecutor()  # joins the instance above; a CPU-only cluster reserves no GPU
    assert (executor.gpus_per_task, executor.cpus_per_task) == (0.0, 1.0)
    summary = run_batch([src], tmp_path / "ray", options, executor=executor)
    executor.close()
    assert ray.is_initialized()  # the executor did not start Ray, so it does not stop it
    assert (summary.done, len(summary.failed)) == (3, 1) and "bad.png" in summary.failed[0]["message"]

    local = run_batch([src], tmp_path / "local", options)
    for i in range(3):  # the same computation, wherever it ran
        a, b = read_image(tmp_path / "ray" / f"im{i}.png").array, read_image(tmp_path / "local" / f"im{i}.png").array
        assert np.array_equal(a, b)
    records = read_manifest(tmp_path / "ray" / "manifest.jsonl")
    assert sorted(r["status"] for r in records) == ["error", "ok", "ok", "ok"]
    assert {Path(r["input"]).name for r in records} == {"bad.png", "im0.png", "im1.png", "im2.png"}

    # The command line on the same cluster: finished images are skipped, the bad one is tried again.
    assert main(["denoise", str(src), "-o", str(tmp_path / "ray"), "--method", "tv", "--sigma", "10",
                 "--device", "cpu", "--executor", "ray"]) == 2
    captured = capsys.readouterr()
    assert "4 images, 3 already done (skipped)" in captured.out
    assert "bad.png" in captured.err and "Traceback" not in captured.err
    lines = (tmp_path / "ray" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[-1])["status"] == "error"
