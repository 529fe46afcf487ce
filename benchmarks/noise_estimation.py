"""Benchmark the noise-level estimators on CBSD68 with synthetic AWGN.

Question: how accurate and how fast are ``estimate_sigma`` ("pca", "mad") and the
signal-dependent estimator on stride-4 pixel-shuffle sub-images (``estimate_noise_function``,
as ScoreDVI uses it) for AWGN σ ∈ {5, 15, 25, 50}/255 on one CPU core?

Requirement (issue): median relative error < 10 % at every σ for the default method ("pca")
and < 1 s per 512×512 RGB image on one core.

Noise is added in float, seeded per (image, σ), without clipping. Each method is timed
around the estimator call only (image loading and noise drawing are outside); both wall and
CPU-process seconds are recorded, since the benchmark machine may be shared.

Usage::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/noise_estimation.py [--quick]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, before torch is imported

import argparse
import csv
import datetime as dt
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from denoiselab.noise import estimate_noise_function, estimate_sigma  # noqa: E402

SIGMAS255 = (5, 15, 25, 50)
DEFAULT_METHOD = "pca"


def _estimators():
    """name -> (callable y -> dict of named (B,) estimates); one call is timed per name."""

    def pd(stride):
        def run(y):
            est = estimate_noise_function(y, stride=stride)
            return {"sigma": est.sigma, "delta": est.delta255.to(torch.float64) / 255.0}

        return run

    return {
        "pca": lambda y: {"sigma": estimate_sigma(y, method="pca")},
        "mad": lambda y: {"sigma": estimate_sigma(y, method="mad")},
        "sd-pd4": pd(4),  # Liu 2014 on stride-4 PD sub-images (ScoreDVI); also gives δ/255
        "sd-pd1": pd(1),  # the same without pixel-shuffle, to separate the PD effect
    }


def _read_rgb(path: Path) -> torch.Tensor:
    import imageio.v3 as iio

    arr = iio.imread(path)
    if arr.ndim == 2:
        arr = arr[..., None].repeat(3, axis=-1)
    return torch.from_numpy(arr[..., :3].copy()).permute(2, 0, 1)[None].to(torch.float32) / 255.0


def _timed(fn, y):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(y)
    return out, time.perf_counter() - w0, time.process_time() - c0


def _commit() -> str:
    try:
        res = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return res.stdout.strip() if res.returncode == 0 else "none (no commit yet)"


def _unique(path: Path) -> Path:
    k = 2
    out = path
    while out.exists():
        out = path.with_name(f"{path.stem}_{k}{path.suffix}")
        k += 1
    return out


def main(argv: list[str] | None = None) -> int:
    default_root = os.environ.get("DENOISELAB_DATA", str((REPO / ".." / "shared" / "data").resolve()))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=default_root, help="folder holding test/synthetic/CBSD68")
    ap.add_argument("--quick", action="store_true", help="two images only")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "noise_estimation"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    folder = Path(args.data_root) / "test" / "synthetic" / "CBSD68"
    files = sorted(folder.glob("*.png"))
    if not files:
        print(f"noise_estimation: error: no PNG files in {folder}; pass --data-root", file=sys.stderr)
        return 2
    if args.quick:
        files = files[:2]
    methods = _estimators()

    # warm-up (thread pools, scipy import, caches) outside the timed calls
    warm = _read_rgb(files[0])
    for fn in methods.values():
        fn(warm + 0.05 * torch.randn(warm.shape, generator=torch.Generator().manual_seed(1)))

    rows = []
    for i, path in enumerate(files):
        x = _read_rgb(path)
        for s255 in SIGMAS255:
            gen = torch.Generator().manual_seed(args.seed * 1_000_003 + i * 1000 + s255)
            y = x + (s255 / 255.0) * torch.randn(x.shape, generator=gen)
            for name, fn in methods.items():
                out, wall, cpu = _timed(fn, y)
                for kind, val in out.items():
                    label = name if kind == "sigma" else f"{name}-delta"
                    est255 = float(val[0]) * 255.0
                    rows.append(
                        {
                            "method": label,
                            "dataset": "CBSD68",
                            "image": path.stem,
                            "sigma255": s255,
                            "estimate255": round(est255, 4),
                            "rel_error": round((est255 - s255) / s255, 6),
                            "seconds_wall": round(wall, 5),
                            "seconds_cpu": round(cpu, 5),
                            "height": x.shape[-2],
                            "width": x.shape[-1],
                            "seed": args.seed,
                        }
                    )
        print(f"[{i + 1}/{len(files)}] {path.stem}", file=sys.stderr, flush=True)

    # one 512×512 RGB image (bilinear resize of the first image), σ = 25/255, median of 3 runs
    x512 = torch.nn.functional.interpolate(_read_rgb(files[0]), size=(512, 512), mode="bilinear", align_corners=False)
    y512 = x512 + (25 / 255.0) * torch.randn(x512.shape, generator=torch.Generator().manual_seed(args.seed))
    t512 = {}
    for name, fn in methods.items():
        fn(y512)
        runs = [_timed(fn, y512)[1:] for _ in range(3)]
        t512[name] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))

    # ---- write
    today = dt.date.today().isoformat()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{today}_cpu" + ("_quick" if args.quick else "")
    md_path = _unique(out_dir / f"{stem}.md")
    csv_path = md_path.with_suffix(".csv")
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    load = os.getloadavg() if hasattr(os, "getloadavg") else ("n/a",)
    lines = [
        "# Noise-level estimation on CBSD68 (synthetic AWGN)",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- commit: {_commit()}",
        f"- device: CPU, 1 thread ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {', '.join(f'{v:.1f}' for v in load)} at the end; the machine was shared)",
        f"- torch: {torch.__version__}",
        f"- command: `{' '.join(shlex.quote(a) for a in [sys.executable.split('/')[-1], *sys.argv])}`",
        f"- images: {len(files)} of {folder} (481×321 or 321×481 RGB, 8-bit), AWGN added in float, no clipping, "
        f"seed {args.seed}",
        "- relative error = (estimate − σ) / σ; |·| for median/mean; bias = mean signed error",
        "- `sd-pd4`: Liu et al. 2014 on the stride-4 pixel-shuffle sub-images (ScoreDVI), its `sigma`; "
        "`sd-pd4-delta`: ScoreDVI's δ/255 (floored to whole 0–255 levels) from the same call; "
        "`sd-pd1`: the same estimator without pixel-shuffle",
        "",
        "| method | σ (0–255) | median abs rel err | mean abs rel err | bias | mean s/image (wall) | mean s/image (CPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    verdict = []
    for label in dict.fromkeys(r["method"] for r in rows):
        for s255 in SIGMAS255:
            sel = [r for r in rows if r["method"] == label and r["sigma255"] == s255]
            errs = [abs(r["rel_error"]) for r in sel]
            med = statistics.median(errs)
            mean = statistics.fmean(errs)
            bias = statistics.fmean(r["rel_error"] for r in sel)
            wall = statistics.fmean(r["seconds_wall"] for r in sel)
            cpu = statistics.fmean(r["seconds_cpu"] for r in sel)
            lines.append(
                f"| {label} | {s255} | {100 * med:.1f} % | {100 * mean:.1f} % | {100 * bias:+.1f} % | "
                f"{wall:.3f} | {cpu:.3f} |"
            )
            if label == DEFAULT_METHOD:
                verdict.append(med < 0.10)
    lines += [
        "",
        "512×512 RGB (first image, bilinear resize, σ = 25/255), median of 3 runs after a warm-up:",
        "",
        "| method | seconds (wall) | seconds (CPU) |",
        "|---|---|---|",
    ]
    for name, (wall, cpu) in t512.items():
        lines.append(f"| {name} | {wall:.3f} | {cpu:.3f} |")
    fast = all(t512[name][1] < 1.0 for name in ("pca", "sd-pd4"))
    lines += [
        "",
        f"Requirement, default method `{DEFAULT_METHOD}`: median relative error < 10 % at every σ: "
        f"{'met' if all(verdict) else 'NOT met'}; < 1 s CPU per 512×512 RGB for `pca` and `sd-pd4`: "
        f"{'met' if fast else 'NOT met'}.",
        "",
        "Notes:",
        "",
        "- `sd-pd4` is biased upwards at low σ on natural images: the stride-4 sub-images are 4× "
        "down-sampled without anti-aliasing, so they hold fewer flat patches and the kept weak-texture "
        "patches still carry some signal. `sd-pd1`, the same estimator without pixel-shuffle, is not, "
        "so the bias comes from PD, not from the estimator. White noise itself is unchanged by PD.",
        "- δ is floored to whole 0–255 levels (ScoreDVI), so at σ = 5 one level is 20 %; it is also "
        "built from the per-patch projections (vᵀy)², whose mean is the smallest sample eigenvalue and "
        "so slightly low (see `sd-pd1-delta`).",
        "- CPU seconds are the process CPU time of the single thread; wall seconds include waiting for "
        "the shared machine.",
        "",
        f"Raw rows: `{csv_path.name}`.",
    ]
    md_path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {md_path} and {csv_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
