"""Convergence curves of the slow single-image baselines (DIP, Self2Self, APBSN-single) on the CPU.

    python benchmarks/baseline_curves.py                                  # all three, one dev crop per dataset (hours)
    python benchmarks/baseline_curves.py --methods dip --datasets polyu --max-seconds 600
    python benchmarks/baseline_curves.py --plot-only                      # figure and summary from the rows so far
    python benchmarks/baseline_curves.py --crop 24 --max-seconds 5 --out /tmp/curves_smoke   # smoke test

Each method runs with its function's defaults (the authors' iteration count) on the centre
`--crop` pixels of the first dev pair (sorted names) of each dataset, seed 0, until that count or
the `--max-seconds` budget. Its current output (the baseline's ``callback`` preview: exactly
what a run of t iterations returns) is scored at t = 1, 2, 5, 10, 20, 50, ... and at the last
iteration run. `seconds` is the training wall time to t plus the time of that output's
inference, i.e. what a run of t iterations costs; the previews at earlier checkpoints are not
counted. A run stops at the first scored row whose `seconds` reaches the budget.

Rows go to ``benchmarks/results/baseline_curves/rows.csv`` one by one as they are measured; a
rerun skips the (method, dataset, image, crop) runs that ended (at the authors' count or the
budget) and reruns a partial one from scratch. The figure (``curves.png``) and the table
(``summary.md``) come from all rows. PSNR/SSIM of the output clipped to [0, 1].
"""

from __future__ import annotations

import argparse
import csv
import functools
import inspect
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import LogFormatter  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from denoiselab._utils import resolve_device  # noqa: E402
from denoiselab.baselines.apbsn import apbsn  # noqa: E402
from denoiselab.baselines.dip import dip  # noqa: E402
from denoiselab.baselines.self2self import self2self  # noqa: E402
from denoiselab.bench.tables import append_row, markdown_table, provenance, read_csv  # noqa: E402
from denoiselab.datasets import center_crop, open_pairs  # noqa: E402
from denoiselab.io import atomic_write  # noqa: E402
from denoiselab.metrics import psnr, ssim  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "baseline_curves"
DATASETS = ["sidd_val", "polyu", "cc", "fmdd"]
METHODS = {
    "dip": dip,
    "self2self": self2self,
    "apbsn-single": apbsn,
    # A CPU configuration: the authors' network at a quarter of its width (32 of 128 feature
    # channels, about 1/14 of the cost per step, so a CPU budget reaches hundreds of iterations
    # instead of tens) and a 10x learning rate (1e-3), so that those iterations train it.
    "apbsn-single-w32": functools.partial(apbsn, width=32, lr=1e-3),
}
FIELDS = ["method", "dataset", "image", "crop", "threads", "t", "seconds", "psnr", "ssim"]
TEXT = ("method", "dataset", "image")
MINUTES = (5, 10, 20)  # budgets of the summary's "PSNR within" columns


class _Stop(Exception):
    """Raised from a baseline's callback to end its fit early (budget spent or last row taken)."""


def authors_iterations(method: str) -> int:
    """The method's default iteration count (the authors' setting, see its docstring)."""
    return int(inspect.signature(METHODS[method]).parameters["iterations"].default)


def checkpoints(n_iter: int) -> list[int]:
    """1, 2, 5, 10, 20, 50, ... below `n_iter`, then `n_iter`."""
    marks, decade = [], 1
    while decade < n_iter:
        marks += [m * decade for m in (1, 2, 5) if m * decade < n_iter]
        decade *= 10
    return marks + [n_iter]


def _key(row: dict) -> tuple:
    return row["method"], row["dataset"], row["image"], int(row["crop"])


def _load(path: Path) -> list[dict]:
    return read_csv(path, text=TEXT) if path.is_file() else []


def _rewrite(path: Path, rows: list[dict]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows({k: r[k] for k in FIELDS} for r in rows)

    atomic_write(path, write)


def _append(path: Path, row: dict) -> None:
    append_row(path, row, FIELDS)


def _ended(rows: list[dict], method: str, max_seconds: float) -> bool:
    """Whether a run's rows reach its last checkpoint or the budget (a partial run is rerun)."""
    return any(int(r["t"]) == authors_iterations(method) or r["seconds"] >= max_seconds for r in rows)


def _measure(method: str, ds: str, pair, crop: int, threads: int, max_seconds: float, device: str, keep) -> None:
    noisy, clean = (center_crop(a, crop) for a in pair.load())
    n_iter = authors_iterations(method)
    marks = set(checkpoints(n_iter))
    base = {"method": method, "dataset": ds, "image": pair.name, "crop": crop, "threads": threads}

    def callback(info: dict) -> None:
        t = info["t"]
        if t not in marks and info["seconds"] < max_seconds:
            return
        tic = time.perf_counter()
        out = np.clip(info["estimate"](), 0, 1)
        seconds = round(info["seconds"] + time.perf_counter() - tic, 2)  # training to t + this output's inference
        keep({**base, "t": t, "seconds": seconds, "psnr": round(float(psnr(out, clean)[0]), 4),
              "ssim": round(float(ssim(out, clean)[0]), 5)})
        if t == n_iter or seconds >= max_seconds:
            raise _Stop  # at n_iter too: the fit's own final inference would only repeat this preview

    try:
        METHODS[method](noisy, seed=0, device=device, callback=callback)
    except _Stop:
        pass


def _within(rows: list[dict], n_iter: int, limit: float) -> str:
    """PSNR of the last row within `limit` seconds, if the run is known up to then ('–' if not)."""
    last = max(rows, key=lambda r: r["t"])
    if int(last["t"]) < n_iter and last["seconds"] < limit:
        return "–"  # stopped by the budget before the limit: unknown
    inside = [r for r in rows if r["seconds"] <= limit]
    return f"{max(inside, key=lambda r: r['t'])['psnr']:.2f}" if inside else "–"


def _summary(rows: list[dict], device) -> str:
    runs: dict[tuple, list[dict]] = {}
    for r in rows:
        runs.setdefault(_key(r), []).append(r)
    order = sorted(runs, key=lambda k: (list(METHODS).index(k[0]), DATASETS.index(k[1]), k[2], k[3]))
    head = ["method", "dataset", "image", "crop", "threads", "authors' t", "last t", "last s", "PSNR at authors' t",
            "best PSNR", "best t", "best s"] + [f"PSNR ≤ {m} min" for m in MINUTES]
    body = []
    for key in order:
        run, n_iter = runs[key], authors_iterations(key[0])
        last = max(run, key=lambda r: r["t"])
        best = max(run, key=lambda r: r["psnr"])
        at_n = next((f"{r['psnr']:.2f}" for r in run if int(r["t"]) == n_iter), "–")
        body.append([key[0], key[1], key[2], str(key[3]), f"{run[0]['threads']:.0f}", str(n_iter),
                     f"{last['t']:.0f}", f"{last['seconds']:.1f}", at_n, f"{best['psnr']:.2f}", f"{best['t']:.0f}",
                     f"{best['seconds']:.1f}"] + [_within(run, n_iter, 60 * m) for m in MINUTES])
    lines = ["# Convergence of the slow baselines on the CPU (DIP, Self2Self, APBSN-single)", "", provenance(device), "",
             "One centre crop of the first dev pair per dataset, seed 0, each method's defaults (the authors' "
             "iteration count) until that count or the time budget. PSNR (dB) of the output clipped to [0, 1], "
             "scored at t = 1, 2, 5, 10, ... and at the last iteration run; seconds = training to t plus that "
             "output's inference. Best: over the scored iterations only (it uses the ground truth). PSNR ≤ m min: "
             "the last scored output a run of that wall time would have given ('–': the run stopped before). "
             "apbsn-single-w32: width 32 and learning rate 1e-3 instead of 128 and 1e-4 (the CPU budget's "
             "network); the apbsn-single rows were measured on 2026-12-04, before the network worked around the "
             "image's channel means (module docstring of denoiselab.baselines.apbsn).", "",
             markdown_table(head, body)]
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict], crop: int, path: Path) -> None:
    rows = [r for r in rows if int(r["crop"]) == crop]
    datasets = [d for d in DATASETS if any(r["dataset"] == d for r in rows)]
    if not datasets:
        return
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for i, method in enumerate(METHODS):
            run = sorted((r for r in rows if r["dataset"] == ds and r["method"] == method), key=lambda r: r["t"])
            if not run:
                continue
            color = f"C{i}"  # fixed per method, the same in every panel
            ax.plot([r["seconds"] for r in run], [r["psnr"] for r in run], ".-", color=color, label=method)
            done = [r for r in run if int(r["t"]) == authors_iterations(method)]
            if done:
                ax.plot(done[0]["seconds"], done[0]["psnr"], "*", color=color, markersize=12)
        ax.set_xscale("log")
        for set_formatter in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
            set_formatter(LogFormatter())  # plain numbers: "2×10^0" labels of short spans overlap
        ax.set_title(f"{ds} / {next(r['image'] for r in rows if r['dataset'] == ds)}, crop {crop}", fontsize=9)
        ax.set_xlabel("seconds (training to t + inference)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("PSNR (dB)")
    axes[0][0].legend(fontsize=8, title="★ authors' iteration count", title_fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=130))
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get("DENOISELAB_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=DATASETS)
    p.add_argument("--crop", type=int, default=256, help="side of the centre crop in pixels (default 256)")
    p.add_argument("--max-seconds", type=float, default=3600.0, help="wall budget per run (default 3600)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--device", default="cpu")
    p.add_argument("--plot-only", action="store_true", help="figure (of --crop) and summary from the rows so far")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    rows_path = args.out / "rows.csv"

    if not args.plot_only:
        for method in args.methods:
            for ds in args.datasets:
                pair = open_pairs(args.data_root / "real" / ds).head(1).pairs[0]
                key = (method, ds, pair.name, args.crop)
                rows = _load(rows_path)
                mine = [r for r in rows if _key(r) == key]
                if mine and _ended(mine, method, args.max_seconds):
                    continue
                if mine:  # a partial run (interrupted): its rows go, it is rerun from scratch
                    _rewrite(rows_path, [r for r in rows if _key(r) != key])
                print(f"{method}: {ds}/{pair.name}, crop {args.crop}", flush=True)
                _measure(method, ds, pair, args.crop, args.threads, args.max_seconds, args.device,
                         lambda row: _append(rows_path, row))
    rows = _load(rows_path)
    if not rows:
        raise SystemExit(f"no rows in {rows_path}")
    _plot(rows, args.crop, args.out / "curves.png")
    text = _summary(rows, resolve_device(args.device))
    atomic_write(args.out / "summary.md", lambda tmp: tmp.write_text(text))
    print(text)


if __name__ == "__main__":
    main()
