"""BM3D told the noise's covariance, against BM3D that takes camera noise as white.

    nice -n 10 python benchmarks/bm3d_correlated.py [--limit 4] [--threads 1]

Camera noise after demosaicking and processing is correlated between neighbouring pixels;
BM3D given only its std treats it as white and leaves its low-frequency part. Per 256² crop,
four runs of the same CBM3D (``bm3d`` package), differing only in what they are told:

- ``white, est. σ``: σ from :func:`denoiselab.noise.estimate_real_noise`, white noise (the
  paper's baseline, bench ``bm3d-white``);
- ``white, true σ``: the std of noisy − clean (an oracle);
- ``correlated, est.``: the covariance from :func:`denoiselab.noise.estimate_noise_covariance`
  on the noisy crop (``denoise --method bm3d --sigma auto``, bench ``bm3d``);
- ``correlated, true``: the covariance of noisy − clean (7×7 lags, an oracle).

Crops: real pairs that the Table 1 CPU subset does not use (pairs 9 to 8 + `--limit` of each
dataset, centre 256²), and CBSD68 images through the simulated camera pipeline of
``real_noise_estimation.py`` (Poisson-Gaussian noise, RGGB mosaic, bilinear demosaic, colour
matrix, sRGB, JPEG q90). Rows go to ``benchmarks/results/bm3d_correlated/rows.csv`` as they
finish (a rerun skips finished crops); ``summary.md`` is rewritten from all rows.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from denoiselab.bench.tables import append_row, read_csv, write_table_summary
from denoiselab.datasets import center_crop, open_pairs
from denoiselab.denoisers.classic import bm3d_denoiser
from denoiselab.metrics import psnr
from denoiselab.noise import estimate_noise_covariance, estimate_real_noise, noise_covariance
from real_noise_estimation import _load, camera_pipeline

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "bm3d_correlated"
RUNS = ("white, est. σ", "white, true σ", "correlated, est.", "correlated, true")
FIELDS = ["group", "image", "noisy", *RUNS, "true σ (/255)", "est. σ (/255)", "estimate s", "bm3d s"]
SKIP = 8  # the Table 1 CPU subset's pairs per dataset


def crops(data_root: Path, limit: int, seed: int = 0):
    """(group, image, noisy, clean) crops, float32 (256, 256, 3) or (256, 256, 1)."""
    for ds in ("sidd_val", "polyu", "cc", "fmdd"):
        for pair in open_pairs(data_root / "real" / ds).head(limit, skip=SKIP):
            noisy, clean = (center_crop(a, 256) for a in pair.load())
            yield f"real {ds}", pair.name, noisy, clean
    rng = np.random.default_rng(seed)
    for path in sorted((data_root / "test/synthetic/CBSD68").glob("*.png"))[:limit]:
        lin = np.power(center_crop(_load(path), 256), 2.2)
        noisy_lin = lin + np.sqrt(0.01 * lin + 4e-4) * rng.standard_normal(lin.shape).astype(np.float32)
        yield "sim camera", path.stem, camera_pipeline(noisy_lin), camera_pipeline(lin)


def _psnr(out: torch.Tensor, clean: np.ndarray) -> float:
    return float(psnr(np.clip(out[0].permute(1, 2, 0).numpy(), 0, 1), clean)[0])


def run_crop(noisy: np.ndarray, clean: np.ndarray) -> dict:
    y = torch.from_numpy(np.ascontiguousarray(noisy)).permute(2, 0, 1)[None].float()
    noise = y - torch.from_numpy(np.ascontiguousarray(clean)).permute(2, 0, 1)[None].float()
    start = time.perf_counter()
    est = estimate_real_noise(y)
    cov = estimate_noise_covariance(y, estimate=est)[0]
    estimate_s = time.perf_counter() - start
    true_cov = noise_covariance(noise)[0]
    true_sigma = float(noise.double().pow(2).mean().sqrt())
    told = {
        RUNS[0]: (bm3d_denoiser(), float(est.sigma[0])),
        RUNS[1]: (bm3d_denoiser(), true_sigma),
        RUNS[2]: (bm3d_denoiser(cov / float(est.sigma[0]) ** 2), float(est.sigma[0])),
        RUNS[3]: (bm3d_denoiser(true_cov / true_sigma ** 2), true_sigma),
    }
    row, seconds = {}, []
    for name, (denoiser, sigma) in told.items():
        start = time.perf_counter()
        row[name] = _psnr(denoiser(y, sigma), clean)
        seconds.append(time.perf_counter() - start)
    row.update({"noisy": float(psnr(noisy, clean)[0]), "true σ (/255)": 255 * true_sigma,
                "est. σ (/255)": 255 * float(est.sigma[0]), "estimate s": estimate_s, "bm3d s": float(np.mean(seconds))})
    return row


def by_group(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows by their ``group`` column, in order of first appearance."""
    groups = defaultdict(list)
    for r in rows:
        groups[r["group"]].append(r)
    return groups


def summarise(rows: list[dict]) -> str:
    body = []
    for group, rs in by_group(rows).items():
        mean = {k: np.mean([float(r[k]) for r in rs]) for k in FIELDS[2:]}
        gain = np.mean([float(r[RUNS[2]]) - float(r[RUNS[0]]) for r in rs])
        body.append([group, str(len(rs)), f"{mean['noisy']:.2f}", *(f"{mean[k]:.2f}" for k in RUNS), f"{gain:+.2f}",
                     f"{mean['true σ (/255)']:.1f}", f"{mean['est. σ (/255)']:.1f}", f"{mean['estimate s']:.2f}",
                     f"{mean['bm3d s']:.1f}"])
    head = ["group", "crops", "noisy", *RUNS, "correlated − white (est.)", "true σ", "est. σ", "estimate s", "BM3D s"]
    intro = ("Mean PSNR (dB) per group of 256² crops (real: pairs not in the Table 1 CPU subset). Each column is the "
             "same CBM3D told something different about the noise (module docstring of "
             "`benchmarks/bm3d_correlated.py`); *est.* is measured on the noisy crop alone, *true* from noisy − clean. "
             "σ on 0–255. Seconds on one CPU thread, beside other jobs (compare columns, not machines): the noise "
             "estimate (std and covariance) and one BM3D run (the four runs' mean). "
             "FMDD's noise is white (the estimator picks stride 1), so `denoise --sigma auto` keeps the white BM3D "
             "there; the correlated columns show what the covariance would change.")
    return write_table_summary(OUT / "summary.md", "BM3D for correlated noise: the noise's covariance, estimated",
                               intro, head, body)


def main(run_crop=run_crop, summarise=summarise, fields=FIELDS, out=OUT, doc=__doc__, limit=4) -> None:
    """Measure every crop not yet in ``out/rows.csv``, a row as each finishes, then rewrite the summary.

    ``correlated_noise.py`` runs through here with its own `run_crop`, `summarise`, `fields` and `out`.
    """
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=limit, help=f"crops per group (default {limit})")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get("DENOISELAB_DATA", ROOT.parent / "shared" / "data")))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "rows.csv"
    rows = read_csv(path, text=("group", "image")) if path.exists() else []
    done = {(r["group"], r["image"]) for r in rows}
    for group, image, noisy, clean in crops(args.data_root, args.limit):
        if (group, image) in done:
            continue
        row = {"group": group, "image": image, **run_crop(noisy, clean)}
        append_row(path, {k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()}, fields)
        rows.append(row)
        print(group, image, {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()
                             if k not in ("group", "image")}, flush=True)
    print(summarise(rows))


if __name__ == "__main__":
    main()
