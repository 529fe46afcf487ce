"""A real multi-node Ray cluster on this machine (a head and two worker raylets), images in a local S3 server.

Faults: a worker node removed mid-batch (every image still done exactly once), and the driver
killed with SIGKILL mid-batch then run again (only what was not recorded is redone).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'denoiselab[ray]')")
pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'denoiselab[cloud]')")

from ray.cluster_utils import Cluster  # noqa: E402

from denoiselab.batch import DenoiseOptions, RayExecutor, read_manifest, run_batch  # noqa: E402
from denoiselab.io import read_image, write_image  # noqa: E402

pytestmark = pytest.mark.slow
N_IMAGES = 16
SIZE = 256  # TV on 256x256 RGB: ~0.3 s an image here, so the batch outlasts the fault
METHOD = ["--method", "tv", "--sigma", "10", "--device", "cpu"]


@pytest.fixture(scope="module")
def cluster(s3_server, tmp_path_factory):
    """A head (no CPU: it schedules nothing) and two worker nodes of one CPU each, sharing the S3
    environment of a user (inherited by every raylet and its workers); everything stopped afterwards."""
    state = tmp_path_factory.mktemp("cluster-state")
    env = {"AWS_ENDPOINT_URL": s3_server["endpoint"], "AWS_ACCESS_KEY_ID": s3_server["key"],
           "AWS_SECRET_ACCESS_KEY": s3_server["secret"], "AWS_DEFAULT_REGION": "us-east-1",
           "DENOISELAB_STATE_DIR": str(state)}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    fast_failure_detection = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                              "health_check_failure_threshold": 3}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                      "_system_config": fast_failure_detection})
    try:
        c.workers_added = [c.add_node(num_cpus=1), c.add_node(num_cpus=1)]
        c.wait_for_nodes()
        yield c
    finally:
        c.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def fs(cluster):
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    return s3fs.S3FileSystem(skip_instance_cache=True)


def _upload(fs, bucket: str, tmp_path) -> list[str]:
    fs.mkdir(bucket)
    rng = np.random.default_rng(1)
    urls = []
    for i in range(N_IMAGES):
        local = tmp_path / f"im{i:02d}.png"
        write_image(local, np.clip(0.5 + rng.normal(0, 0.1, (SIZE, SIZE, 3)), 0, 1).astype(np.float32))
        fs.put_file(str(local), f"{bucket}/raw/im{i:02d}.png")
        urls.append(f"s3://{bucket}/raw/im{i:02d}.png")
    return urls


def _cli(cluster, bucket: str) -> list[str]:
    return [sys.executable, "-m", "denoiselab.cli.main", "denoise", f"s3://{bucket}/raw/*.png", "-o",
            f"s3://{bucket}/out/", *METHOD, "--executor", "ray", "--ray-address", cluster.address]


def _outputs(fs, bucket: str) -> list[str]:
    try:
        return [p for p in fs.ls(f"{bucket}/out", refresh=True) if p.endswith(".png")]
    except FileNotFoundError:
        return []


def _check_every_image_done_once(fs, bucket: str, inputs: list[str], tmp_path) -> list[dict]:
    fs.invalidate_cache()
    records = read_manifest(f"s3://{bucket}/out/manifest.jsonl")
    ok = Counter(r["input"] for r in records if r["status"] == "ok")
    assert sorted(ok) == inputs and set(ok.values()) == {1}, ok
    for i, url in enumerate(sorted(r["output"] for r in records if r["status"] == "ok")):
        local = tmp_path / f"check{i}.png"
        local.write_bytes(fs.cat_file(url))
        assert read_image(local).array.shape == (SIZE, SIZE, 3)  # a valid, whole image
    return records


def test_a_worker_node_removed_mid_batch_loses_nothing(cluster, fs, tmp_path):
    bucket = "lose-a-node"
    inputs = _upload(fs, bucket, tmp_path)
    proc = subprocess.Popen(_cli(cluster, bucket), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300  # generous: a loaded machine starts Ray slowly
        while len(_outputs(fs, bucket)) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the batch did not start"
            time.sleep(0.05)
        victim = cluster.workers_added.pop(0)
        cluster.remove_node(victim, allow_graceful=False)  # kills its raylet and workers, mid-image
        done_at_removal = len(_outputs(fs, bucket))
        removed_at = time.monotonic()
        out, err = proc.communicate(timeout=180)
        print(f"{done_at_removal} outputs at the removal; the batch ended {time.monotonic() - removed_at:.1f} s later")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        cluster.workers_added.append(cluster.add_node(num_cpus=1))  # back to two workers for the next test
    assert proc.returncode == 0, err
    assert done_at_removal < N_IMAGES, "the node went after the batch ended"
    assert f"{N_IMAGES} denoised, 0 already done, 0 failed" in out
    records = _check_every_image_done_once(fs, bucket, inputs, tmp_path)
    assert len(records) == N_IMAGES
    nodes = {r["ray_node"] for r in records}
    assert cluster.head_node.unique_id not in nodes and len(nodes) <= 2  # the worker nodes did the work


def test_the_driver_killed_mid_batch_resumes_and_redoes_only_the_rest(cluster, fs, tmp_path):
    from denoiselab.batch.manifest import MANIFEST_NAME, parse_records, state_dir

    bucket = "kill-the-driver"
    inputs = _upload(fs, bucket, tmp_path)
    journal = state_dir() / hashlib.sha256(f"s3://{bucket}/out/{MANIFEST_NAME}".encode()).hexdigest()[:24]
    journal = journal / MANIFEST_NAME
    proc = subprocess.Popen(_cli(cluster, bucket), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300  # generous: a loaded machine starts Ray slowly

        def recorded() -> int:
            text = journal.read_text() if journal.exists() else ""
            return sum(r["status"] == "ok" for r in parse_records(text))

        while recorded() < 3:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the batch did not start"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    finished = recorded()
    assert 3 <= finished < N_IMAGES, "killed mid-way"

    again = subprocess.run(_cli(cluster, bucket), capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert f"{N_IMAGES} images, {finished} already done (skipped)" in again.stdout
    assert f"{N_IMAGES - finished} denoised, {finished} already done" in again.stdout
    _check_every_image_done_once(fs, bucket, inputs, tmp_path)


def test_local_paths_are_shipped_through_the_object_store(cluster, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(2)
    for i in range(3):
        write_image(src / f"im{i}.png", np.clip(0.5 + rng.normal(0, 0.1, (24, 24, 3)), 0, 1).astype(np.float32))
    options = DenoiseOptions(method="tv", sigma255=10, device="cpu")
    executor = RayExecutor(address=cluster.address, files="ship")
    try:
        assert executor.ship
        summary = run_batch([src], tmp_path / "ray", options, executor=executor)
    finally:
        executor.close()
    assert summary.done == 3 and not ray.is_initialized()
    run_batch([src], tmp_path / "local", options)
    for i in range(3):  # written by the driver from the bytes the workers sent back: the same images
        shipped = read_image(tmp_path / "ray" / f"im{i}.png").array
        assert np.array_equal(shipped, read_image(tmp_path / "local" / f"im{i}.png").array)
    records = [json.loads(line) for line in (tmp_path / "ray" / "manifest.jsonl").read_text().splitlines()]
    assert {r["output"] for r in records} == {str(tmp_path / "ray" / f"im{i}.png") for i in range(3)}
    assert all(r["ray_node"] for r in records)
