"""Batch throughput: the local executor against Ray with 1 and 2 worker nodes, and Ray's cost per image.

Question: how many images per second does ``run_batch`` reach in this process (``local``) and
over a Ray cluster of 1 and 2 worker nodes (separate raylets of one CPU each, on this
machine, ``ray.cluster_utils.Cluster``), for tiny images (where the per-image overhead of Ray
dominates) and larger ones (where the denoising does)? With ``--s3`` the inputs and outputs
are also put in a local S3 server (moto), as a cluster without a shared file system would use.

How it measures. Every configuration runs the same batch (TV, sigma 10/255, CPU, one torch
thread per image) after a warm-up batch that starts the Ray workers and imports denoiselab in
them (not timed); the timed region is one ``run_batch`` call into a fresh output folder
(reading, denoising, writing, manifest). Ratios are against the local executor measured in the
same run. "Ray overhead per image" = (seconds per image with Ray on 1 node) - (seconds per
image locally), both sequential on one core.

Usage::

    python benchmarks/ray_scaling.py [--quick] [--images 48] [--repeats 3] [--s3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from denoiselab.batch import DenoiseOptions, RayExecutor, run_batch
from denoiselab.bench.tables import markdown_table, provenance, result_stem, write_csv
from denoiselab.io import write_image

OUT = Path(__file__).resolve().parent / "results" / "ray_scaling"
OPTIONS = DenoiseOptions(method="tv", sigma255=10, device="cpu")


def make_images(folder: Path, count: int, size: int) -> Path:
    """`count` noisy RGB images of `size`² pixels in `folder`."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(count):
        write_image(folder / f"im{i:03d}.png", np.clip(0.5 + rng.normal(0, 0.1, (size, size, 3)), 0, 1)
                    .astype(np.float32))
    return folder


def time_batch(source: str, out: str, executor) -> float:
    """Seconds of one run_batch call into a fresh output folder."""
    start = time.perf_counter()
    summary = run_batch([source], out, OPTIONS, executor=executor)
    seconds = time.perf_counter() - start
    assert summary.done == summary.total and not summary.failed, summary.failed
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 images of 32 px only, 1 repeat")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--s3", action="store_true", help="also time inputs/outputs in a local moto S3 server")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.repeats, args.sizes = 8, 1, [32]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    from ray.cluster_utils import Cluster

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="ray-scaling-"))
    rows: list[dict] = []
    server = None
    try:
        if args.s3:
            server = start_s3(work)
        sources = {size: str(make_images(work / f"src{size}", args.images, size)) for size in args.sizes}
        warm = str(make_images(work / "warm", 4, 32))
        storages = ["local files"] + (["s3"] if server else [])
        if server:
            for size, source in list(sources.items()):
                sources[(size, "s3")] = upload(server, source, f"src{size}")
        run_no = 0

        def fresh_out(storage: str) -> str:
            nonlocal run_no
            run_no += 1
            return f"s3://bench/out{run_no}/" if storage == "s3" else str(work / f"out{run_no}")

        def source_of(size: int, storage: str) -> str:
            return sources[(size, "s3")] if storage == "s3" else sources[size]

        time_batch(warm, str(work / "warm-out"), "local")
        for size in args.sizes:
            for storage in storages:
                for _ in range(args.repeats):
                    rows.append(row("local", 0, size, storage, args.images,
                                    time_batch(source_of(size, storage), fresh_out(storage), "local")))
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        try:
            for nodes in (1, 2):
                cluster.add_node(num_cpus=1)
                cluster.wait_for_nodes()
                executor = RayExecutor(address=cluster.address, files="shared")
                try:
                    time_batch(warm, str(work / f"warm-ray{nodes}"), executor)
                    for size in args.sizes:
                        for storage in storages:
                            for _ in range(args.repeats):
                                seconds = time_batch(source_of(size, storage), fresh_out(storage), executor)
                                rows.append(row("ray", nodes, size, storage, args.images, seconds))
                finally:
                    executor.close()
        finally:
            cluster.shutdown()
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)
    write_results(rows, args)
    return 0


def row(executor: str, nodes: int, size: int, storage: str, count: int, seconds: float) -> dict:
    return {"executor": executor, "worker_nodes": nodes, "size": size, "storage": storage, "images": count,
            "seconds": round(seconds, 4), "images_per_s": round(count / seconds, 3)}


def start_s3(work: Path):
    """moto_server on a free port of 127.0.0.1, a bucket ``bench``, and this process's S3 variables."""
    import socket
    import subprocess

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or "moto_server"
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                       "DENOISELAB_STATE_DIR": str(work / "state")})
    import s3fs

    for _ in range(100):
        try:
            s3fs.S3FileSystem(skip_instance_cache=True).mkdir("bench")
            break
        except OSError:
            time.sleep(0.1)
    return proc


def upload(server, folder: str, prefix: str) -> str:
    import s3fs

    fs = s3fs.S3FileSystem()
    for path in sorted(Path(folder).iterdir()):
        fs.put_file(str(path), f"bench/{prefix}/{path.name}")
    return f"s3://bench/{prefix}/*.png"


def write_results(rows: list[dict], args) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    stem = result_stem(OUT, "cpu")
    write_csv(stem.with_suffix(".csv"), rows)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["size"], r["storage"], r["executor"], r["worker_nodes"]), []).append(r)
    median = {key: statistics.median(r["seconds"] for r in group) for key, group in groups.items()}
    table = []
    for (size, storage, executor, nodes), seconds in median.items():
        local = median[(size, storage, "local", 0)]
        per_image = seconds / args.images
        table.append([f"{size}²", storage, "local" if executor == "local" else f"ray, {nodes} worker node{'s' * (nodes > 1)}",
                      f"{args.images / seconds:.2f}", f"{local / seconds:.2f}", f"{1000 * per_image:.0f}",
                      f"{1000 * (per_image - local / args.images):+.0f}"])
    text = "\n".join([
        "# Batch throughput: local executor vs Ray with 1 and 2 worker nodes (TV, CPU)", "",
        provenance("cpu"), f"- cpu cores on this machine: {os.cpu_count()}; {args.images} images per batch, "
        f"median of {args.repeats} runs; each worker node has 1 CPU; the head schedules nothing", "",
        markdown_table(["image", "storage", "executor", "images/s", "speed vs local", "ms per image",
                        "ms per image vs local"], table), "",
    ])
    stem.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
