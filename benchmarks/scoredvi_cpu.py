"""ScoreDVI on the CPU: preset ``fast`` (and optionally ``paper``) against BM3D on real noise.

256×256 centre crops of the pairs in ``<data-root>/real/{sidd_val,polyu,cc,fmdd}/{noisy,clean}/``;
PSNR/SSIM on outputs clamped to [0, 1] (data_range = 1; SSIM over colour with channel_axis);
seconds per crop for the denoising call only (image reading and metrics outside the timed part).
BM3D gets σ from ``denoiselab.noise.estimate_sigma`` (PCA, Liu et al. 2013) of the noisy crop.

Writes ``<out>/<date>_<commit>_<device>.csv`` (one raw row per method and image) and ``.md``
(per-dataset means beside the paper's Table 1 numbers for ScoreDVI and BM3D, which are on
full images, not crops, and - for FMDD - on a different test form).

Example::

    python benchmarks/scoredvi_cpu.py --limit 3 --methods fast bm3d --threads 2
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

DATASETS = ("sidd_val", "polyu", "cc", "fmdd")
# Cheng et al. ICCV 2023, Table 1 (PSNR dB / SSIM): ScoreDVI and BM3D.
PAPER = {
    "sidd_val": {"scoredvi": (34.75, 0.856), "bm3d": (25.65, 0.475)},
    "polyu": {"scoredvi": (37.77, 0.959), "bm3d": (37.40, 0.953)},
    "cc": {"scoredvi": (37.09, 0.945), "bm3d": (35.19, 0.858)},
    "fmdd": {"scoredvi": (33.10, 0.865), "bm3d": (30.06, 0.771)},
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=os.environ.get("DENOISELAB_DATA", "/work/shared/data"))
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--limit", type=int, default=None, help="first N pairs (sorted names) of each dataset")
    p.add_argument("--methods", nargs="+", default=["fast", "bm3d"], choices=["fast", "paper", "bm3d", "noisy"])
    p.add_argument("--n-iter", type=int, default=None, help="override the ScoreDVI presets' iteration count")
    p.add_argument("--crop", type=int, default=256, help="side of the centre crop, pixels")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="two crops of each dataset")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "scoredvi_cpu"))
    p.add_argument("--tag", default="", help="appended to the output file names")
    p.add_argument("--priors-from", default=None,
                   help="development: load the default prior names from raw training checkpoints "
                        "<DIR>/<name>.safetensors (BF-DnCNN 10x32, keys 'model.*') instead of denoiselab/weights")
    return p.parse_args(argv)


def _read(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    im = np.asarray(iio.imread(path))
    if im.dtype != np.uint8:
        raise SystemExit(f"{path}: expected 8-bit, got {im.dtype}")
    im = im.astype(np.float32) / 255.0
    if im.ndim == 3 and im.shape[2] == 4:
        im = im[:, :, :3]
    return im


def _crop(im: np.ndarray, size: int) -> np.ndarray:
    h, w = im.shape[:2]
    t, l = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return im[t:t + size, l:l + size]


def _metrics(x_hat: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    x_hat = np.clip(x_hat, 0.0, 1.0).astype(np.float64)
    x = x.astype(np.float64)
    psnr = peak_signal_noise_ratio(x, x_hat, data_range=1.0)
    ssim = structural_similarity(x, x_hat, data_range=1.0, channel_axis=-1 if x.ndim == 3 else None)
    return float(psnr), float(ssim)


def _denoise(method: str, y: np.ndarray, args: argparse.Namespace) -> tuple[np.ndarray, dict]:
    if method == "noisy":
        return y, {}
    if method == "bm3d":
        import bm3d

        from denoiselab.noise import estimate_sigma

        t = torch.from_numpy(y if y.ndim == 3 else y[:, :, None]).permute(2, 0, 1)[None]
        sigma = float(estimate_sigma(t)[0])
        out = bm3d.bm3d_rgb(y, sigma) if y.ndim == 3 else bm3d.bm3d(y, sigma)
        return np.asarray(out, dtype=np.float32), {"sigma255": 255 * sigma}
    from denoiselab.scoredvi import scoredvi

    res = scoredvi(y, preset=method, priors=_priors(y.ndim == 2, args.priors_from), n_iter=args.n_iter, seed=args.seed,
                   device="cpu", progress=False)
    rec = res.record
    info = {"delta255": rec["delta255"][0], "lam": rec["lam"][0], "beta": rec["beta"][0],
            "restarted": rec["restarted"][0], "iterations": rec["iterations"], "mean_sigma": rec["mean_sigma"][0]}
    return res.image, info


_PRIOR_CACHE: dict = {}


def _priors(gray: bool, folder: str | None):
    """None (the registry's default priors) or the default names loaded from raw checkpoints."""
    if folder is None:
        return None
    if gray not in _PRIOR_CACHE:
        from safetensors.torch import load_file

        from denoiselab.denoisers.bfdncnn import BFDnCNN
        from denoiselab.scoredvi import GrayFromColor, default_prior_names

        nets = []
        for name in default_prior_names(1 if gray else 3):
            ch = 1 if "gray" in name else 3
            state = {k[len("model."):]: v for k, v in load_file(str(Path(folder) / f"{name}.safetensors")).items()
                     if k.startswith("model.")}
            net = BFDnCNN(ch, depth=10, width=32)
            net.load_state_dict(state)
            net.eval().requires_grad_(False)
            net.name = name
            nets.append(GrayFromColor(net) if gray and ch == 3 else net)
        _PRIOR_CACHE[gray] = nets
    return _PRIOR_CACHE[gray]


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).resolve().parent).stdout.strip() or "nocommit"
    except (OSError, subprocess.CalledProcessError):
        return "nocommit"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    limit = 2 if args.quick and args.limit is None else args.limit
    root = Path(args.data_root) / "real"
    rows: list[dict] = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}_{_commit()}_cpu{args.threads}{('_' + args.tag) if args.tag else ''}"
    for ds in args.datasets:
        names = sorted(os.listdir(root / ds / "noisy"))[:limit]
        for name in names:
            y = _crop(_read(root / ds / "noisy" / name), args.crop)
            x = _crop(_read(root / ds / "clean" / name), args.crop)
            if y.ndim == 3 and x.ndim == 2:
                x = np.repeat(x[:, :, None], 3, axis=2)
            for method in args.methods:
                t0, c0 = time.perf_counter(), time.process_time()
                x_hat, info = _denoise(method, y, args)
                sec, cpu_sec = time.perf_counter() - t0, time.process_time() - c0
                psnr, ssim = _metrics(x_hat, x)
                row = {"method": method, "dataset": ds, "image": name, "psnr": round(psnr, 3), "ssim": round(ssim, 4),
                       "seconds": round(sec, 2), "cpu_seconds": round(cpu_sec, 2), "seed": args.seed, "crop": args.crop, "threads": args.threads, **info}
                rows.append(row)
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
                _write(rows, out, stem, args, argv)  # after every row, so an interrupted run keeps its results
    print(_table(rows, args, argv))
    print(f"wrote {out / stem}.csv/.md")
    return 0


def _write(rows: list[dict], out: Path, stem: str, args: argparse.Namespace, argv: list[str] | None) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / f"{stem}.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        wr.writerows(rows)
    (out / f"{stem}.md").write_text(_table(rows, args, argv))


def _table(rows: list[dict], args: argparse.Namespace, argv: list[str] | None) -> str:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = [
        "# ScoreDVI on the CPU vs BM3D (centre crops)",
        "",
        f"- date (UTC): {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M}; commit {_commit()}; torch {torch.__version__}; "
        f"{platform.processor() or platform.machine()}, {args.threads} thread(s)",
        f"- command: `python benchmarks/scoredvi_cpu.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"- priors: {'raw checkpoints from ' + args.priors_from if args.priors_from else 'denoiselab.denoisers registry (default names)'}",
        f"- {args.crop}×{args.crop} centre crops, PSNR/SSIM on outputs clamped to [0,1] vs the 8-bit clean image, "
        "seconds = wall time of the denoising call only (cpu_seconds in the CSV: process CPU time, all threads). Paper columns: Cheng et al. ICCV 2023 Table 1 (full images; FMDD there is test_mix).",
        "",
        "| dataset | n | " + " | ".join(f"{m} PSNR/SSIM | {m} s" for m in methods) + " | paper ScoreDVI | paper BM3D |",
        "|---|---|" + "---|---|" * len(methods) + "---|---|",
    ]
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        cells = []
        n = 0
        for m in methods:
            sel = [r for r in rows if r["dataset"] == ds and r["method"] == m]
            n = max(n, len(sel))
            if sel:
                cells.append(f"{np.mean([r['psnr'] for r in sel]):.2f}/{np.mean([r['ssim'] for r in sel]):.3f}")
                cells.append(f"{np.mean([r['seconds'] for r in sel]):.1f}")
            else:
                cells += ["–", "–"]
        ps, pb = PAPER[ds]["scoredvi"], PAPER[ds]["bm3d"]
        lines.append(f"| {ds} | {n} | " + " | ".join(cells) + f" | {ps[0]:.2f}/{ps[1]:.3f} | {pb[0]:.2f}/{pb[1]:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
