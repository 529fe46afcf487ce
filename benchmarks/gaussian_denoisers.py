"""Gaussian denoising: our BF-DnCNN priors beside BM3D given the true σ (CBSD68, BSD68, Set12).

    python benchmarks/gaussian_denoisers.py                 # the committed table
    python benchmarks/gaussian_denoisers.py --quick         # 2 images, seconds

Writes benchmarks/results/gaussian_denoisers/<date>_<commit>_<device>.{csv,md}.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from denoiselab.bench.gaussian import Dataset, run_gaussian_benchmark, summarize
from denoiselab.bench.tables import append_row, provenance, read_csv, result_stem, write_csv
from denoiselab.io import atomic_write

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get("DENOISELAB_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gaussian_denoisers")
    p.add_argument("--color", nargs="+", default=["bfdncnn-color-s-bsd", "bfdncnn-color-s-imagenet", "bfdncnn-color-s-union", "bm3d"])
    p.add_argument("--gray", nargs="+", default=["bfdncnn-gray-s", "bm3d"])
    p.add_argument("--sigmas", nargs="+", type=float, default=[15, 25, 50, 75, 100], help="0-255 scale")
    p.add_argument("--limit", type=int, help="first N images of each set")
    p.add_argument("--bm3d-limit", type=int, help="BM3D on the first N images only (slow on the CPU)")
    p.add_argument("--datasets", nargs="+", default=["CBSD68", "BSD68", "Set12"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="2 images, σ 25 only")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="fp32", help="arithmetic of the networks")
    p.add_argument("--resume", type=Path, help="CSV that collects rows as they are measured; a rerun skips them")
    p.add_argument("--rows-only", action="store_true", help="measure into --resume only; write no table")
    p.add_argument("--table-only", action="store_true", help="measure nothing: the table of the --resume and --include rows")
    p.add_argument("--include", type=Path, action="append", default=[],
                   help="rows of an earlier run (its CSV) to merge into this table, e.g. BM3D run in another process")
    args = p.parse_args()
    if args.quick:
        args.limit, args.sigmas = 2, [25]
    channels = {"CBSD68": 3, "Kodak24": 3, "BSD68": 1, "Set12": 1}
    datasets = [Dataset(name, args.data_root / "test" / "synthetic" / name, channels[name]) for name in args.datasets]
    done = read_csv(args.resume, text=("image",)) if args.resume and args.resume.is_file() else []

    def keep(row: dict) -> None:  # one line per measurement, so a killed run loses at most one image
        if args.resume:
            append_row(args.resume, row)

    rows = [] if args.table_only else run_gaussian_benchmark(
        datasets, {3: args.color, 1: args.gray}, args.sigmas, limit=args.limit, bm3d_limit=args.bm3d_limit,
        device=args.device, precision=args.precision, done=done, on_row=keep)
    rows = [row for path in args.include for row in read_csv(path)] + done + rows
    if args.rows_only:
        return
    args.out.mkdir(parents=True, exist_ok=True)
    stem = result_stem(args.out, args.device)
    write_csv(stem.with_suffix(".csv"), rows)
    text = (f"# Gaussian denoising: our priors beside BM3D (true σ)\n\n{provenance(args.device)}\n"
            f"- protocol: AWGN added in float with a fixed seed per (image, σ), no clipping; PSNR/SSIM of the output "
            f"clipped to [0, 1], data range 1; speed = megapixels / seconds of the denoiser call ({torch.get_num_threads()} threads)\n\n"
            + summarize(rows) + "\n")
    atomic_write(stem.with_suffix(".md"), lambda tmp: tmp.write_text(text))
    print(text)


if __name__ == "__main__":
    main()
