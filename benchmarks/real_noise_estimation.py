"""Accuracy and speed of ``estimate_real_noise`` (the estimator behind every ``auto``), and ScoreDVI's δ.

Truth: the std of ``noisy - clean`` over the image. Rows: simulated AWGN and Poisson-Gaussian
noise on CBSD68 images, the same Poisson-Gaussian noise pushed through a simulated camera
pipeline (RGGB mosaic, bilinear demosaic, colour matrix, sRGB gamma, JPEG q90; clean image
through the same pipeline), both again at a light noise level ("light": a = 0.0005, b = 2e-5 on
the linear scale, where texture weighs most against the noise), and the real pairs of
../shared/data/real. δ before/after: the Liu et al. 2014 δ of ``estimate_noise_level_pd`` against
the new ``estimate_delta``.

    nice -n 10 python benchmarks/real_noise_estimation.py [--limit N] [--data-root DIR]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from denoiselab.noise import bayer_demosaic, estimate_noise_level_pd, estimate_real_noise
from denoiselab.scoredvi import estimate_delta

OUT = Path(__file__).parent / "results" / "real_noise_estimation"
CAMERA_MATRIX = np.array([[1.6, -0.45, -0.15], [-0.3, 1.5, -0.2], [0.0, -0.55, 1.55]])


def _load(path: Path) -> np.ndarray:
    a = np.asarray(Image.open(path), dtype=np.float32) / 255.0
    return a[..., None] if a.ndim == 2 else a


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()


def camera_pipeline(linear: np.ndarray) -> np.ndarray:
    """RGGB mosaic -> bilinear demosaic -> colour matrix -> sRGB gamma -> 8-bit JPEG q90, (H, W, 3) in [0, 1]."""
    rgb = bayer_demosaic(_tensor(linear))[0].permute(1, 2, 0).numpy()
    rgb = np.clip(rgb @ CAMERA_MATRIX.T, 0, 1)
    srgb = np.where(rgb <= 0.0031308, 12.92 * rgb, 1.055 * np.power(rgb, 1 / 2.4) - 0.055)
    buf = io.BytesIO()
    Image.fromarray(np.round(srgb * 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return np.asarray(Image.open(buf), dtype=np.float32) / 255.0


def _shot_read_pairs(groups: tuple[str, str], name: str, lin: np.ndarray, a: float, b: float,
                     rng: np.random.Generator):
    """Poisson-Gaussian noise of variance a·x + b on the linear image `lin`: the pair as it is
    (group ``groups[0]``) and both images through :func:`camera_pipeline` (``groups[1]``)."""
    noisy_lin = lin + np.sqrt(a * lin + b) * rng.standard_normal(lin.shape).astype(np.float32)
    yield groups[0], f"{name} a{a}", noisy_lin, lin
    yield groups[1], f"{name} a{a}", camera_pipeline(noisy_lin), camera_pipeline(lin)


def simulated_pairs(root: Path, limit: int, seed: int = 0):
    paths = sorted((root / "test/synthetic/CBSD68").glob("*.png"))[:limit]
    rng = np.random.default_rng(seed)
    for path in paths:
        x = _load(path)[:320, :320]
        for s255 in (5, 15, 30):
            yield "sim AWGN", f"{path.stem} s{s255}", x + rng.normal(0, s255 / 255, x.shape).astype(np.float32), x
        lin = np.power(x, 2.2)
        for a, b in ((0.002, 1e-4), (0.01, 4e-4)):
            yield from _shot_read_pairs(("sim PG", "sim PG camera"), path.stem, lin, a, b, rng)
    # light noise (std about 1-4/255 on the linear scale, as PolyU and CC photos): its own generator,
    # so that the rows above keep their noise draws
    rng = np.random.default_rng(seed + 1)
    for path in paths:
        lin = np.power(_load(path)[:320, :320], 2.2)
        yield from _shot_read_pairs(("sim PG light", "sim PG camera light"), path.stem, lin, 0.0005, 2e-5, rng)


def real_pairs(root: Path, limit: int):
    for ds in ("sidd_val", "polyu", "cc", "fmdd"):
        for path in sorted((root / "real" / ds / "noisy").iterdir())[:limit]:
            yield f"real {ds}", path.name, _load(path), _load(path.parent.parent / "clean" / path.name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--limit", type=int, default=60, help="images per real data set (default: all dev pairs)")
    p.add_argument("--sim-limit", type=int, default=6, help="CBSD68 images for the simulations")
    p.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = p.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    rows, deltas = [], []
    for group, name, noisy, clean in [*simulated_pairs(args.data_root, args.sim_limit),
                                      *real_pairs(args.data_root, args.limit)]:
        y = _tensor(noisy)
        true = float(np.std(noisy - clean)) * 255
        t0 = time.process_time()
        est = estimate_real_noise(y)
        seconds = time.process_time() - t0
        rows.append((group, name, true, est.sigma255[0], int(est.stride[0]), float(est.correlation[0]), seconds))
        if group.startswith("real") and noisy.shape[2] == 3:
            deltas.append((group, name, true, float(estimate_noise_level_pd(y)[0]) * 255, float(estimate_delta(y)[0])))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    with open(OUT / "rows.csv", "w") as f:
        f.write("group,image,true_sigma255,estimate_sigma255,stride,correlation,cpu_seconds\n")
        f.writelines(",".join(str(v) for v in r) + "\n" for r in rows)
    lines = [f"# estimate_real_noise: accuracy and speed (commit {commit}, CPU, 1 thread, shared 2-core machine)",
             "", "Truth = std(noisy − clean) on 0–255. Relative error = estimate / truth − 1.", "",
             "| group | images | median abs rel err | median signed | stride 4 chosen | median CPU s | image size |",
             "|---|---|---|---|---|---|---|"]
    for group in dict.fromkeys(r[0] for r in rows):
        sel = [r for r in rows if r[0] == group]
        err = np.array([r[3] / r[2] - 1 for r in sel])
        lines.append(f"| {group} | {len(sel)} | {np.median(np.abs(err)):.1%} | {np.median(err):+.1%} | "
                     f"{sum(r[4] == 4 for r in sel)}/{len(sel)} | {np.median([r[6] for r in sel]):.2f} | "
                     f"{'320² crops' if group.startswith('sim') else 'as stored'} |")
    big = _tensor(np.asarray(Image.open(args.data_root / "real/polyu/noisy" /
                                        sorted(p.name for p in (args.data_root / "real/polyu/noisy").iterdir())[0]),
                             dtype=np.float32)[:512, :512] / 255)
    times = []
    for _ in range(3):
        t0 = time.process_time()
        estimate_real_noise(big)
        times.append(time.process_time() - t0)
    lines += ["", f"512×512 RGB (first PolyU pair): median of 3 runs {np.median(times):.2f} s CPU (1 thread).", "",
              "## ScoreDVI δ before (Liu et al. 2014, one model per image) and after (estimate_real_noise, stride 4)",
              "", "| group | image | true std | δ before | δ after | change |", "|---|---|---|---|---|---|"]
    for group, name, true, before, after in deltas:
        change = f"{after / before - 1:+.0%}" if before > 0 else "n/a"
        lines.append(f"| {group} | {name} | {true:.2f} | {before:.0f} | {after:.0f} | {change} |")
    (OUT / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:20]))


if __name__ == "__main__":
    main()
