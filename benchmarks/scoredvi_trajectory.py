"""Where does ScoreDVI `fast` gain and lose along its iterations? PSNR of the output at every iteration.

    python benchmarks/scoredvi_trajectory.py                     # 2 held-out crops per dataset (~15 min, 1 thread)
    python benchmarks/scoredvi_trajectory.py --per-dataset 1 --datasets fmdd
    python benchmarks/scoredvi_trajectory.py --table-only        # figure and table from the rows so far

Crops: the centre `--crop` (default 256) pixels of the pairs after the first `--skip` (default
8, the Table 1 CPU subset) of each dataset, i.e. the held-out pairs of
``real_noise.py heldout-cpu``, `--per-dataset` of them (default 2) spread evenly over that
held-out list. `fast` runs as `denoiselab denoise` runs it (seed 0, its δ, λ and warm start),
and the output it would return after t iterations (the EMA of the posterior mean, which the
callback sees) is scored against the clean image at every t. Also recorded: the standard
deviation of (noisy − output) on the 0-255 scale, which a stopping rule without the clean
image could watch, beside the true noise std (noisy − clean) and the estimated δ.

This is a diagnosis, not a tuning run: the iteration count of `fast` comes from the ablation
(``scoredvi_ablation.py``) on other crops. Rows go to
``benchmarks/results/scoredvi_trajectory/rows.csv`` one crop at a time (a rerun skips finished
crops); ``summary.md`` and ``trajectories.png`` come from all rows.
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from denoiselab import tune_cpu_allocator
from denoiselab.bench.tables import append_row, read_csv, write_table_summary
from denoiselab.datasets import center_crop, open_pairs
from denoiselab.metrics import psnr
from denoiselab.scoredvi import scoredvi

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "scoredvi_trajectory"
DATASETS = ("sidd_val", "polyu", "cc", "fmdd")
TEXT = ("dataset", "image")


def _pairs(data_root: Path, dataset: str, skip: int, per_dataset: int):
    """`per_dataset` pairs spread evenly over those after the first `skip` (sorted names)."""
    pairs = open_pairs(data_root / "real" / dataset).head(None, skip).pairs
    if not pairs:
        return []
    picks = np.linspace(0, len(pairs) - 1, min(per_dataset, len(pairs))).round().astype(int)
    return [pairs[i] for i in dict.fromkeys(picks.tolist())]


def _trajectory(noisy: np.ndarray, clean: np.ndarray, seed: int) -> tuple[list[dict], dict]:
    rows = []

    def callback(info: dict) -> None:
        out = info["image"].detach().cpu().numpy()[0].transpose(1, 2, 0).reshape(clean.shape)
        rows.append({"t": int(info["i"]) + 1, "psnr": round(float(psnr(np.clip(out, 0, 1), clean)[0]), 4),
                     "residual255": round(255 * float(np.std(noisy - out)), 3)})

    res = scoredvi(noisy, preset="fast", seed=seed, device="cpu", progress=False, callback=callback)
    final = float(psnr(np.clip(res.image, 0, 1), clean)[0])
    if abs(final - rows[-1]["psnr"]) > 1e-3:  # the callback must see exactly what is returned
        raise RuntimeError(f"last callback output {rows[-1]['psnr']} is not the returned image {final:.4f}")
    return rows, {"delta255": res.record["delta255"][0], "lam": res.record["lam"][0],
                  "correlated": res.record["correlated"][0] if res.record["correlated"] else None}


def _by_crop(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Rows grouped per (dataset, image), in file order (t ascending)."""
    runs = defaultdict(list)
    for r in rows:
        runs[r["dataset"], r["image"]].append(r)
    return runs


def _plot(runs: dict[tuple[str, str], list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(ds for ds, _ in runs))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for (d, image), rs in runs.items():
            if d != ds:
                continue
            t = [r["t"] for r in rs]
            gain = [r["psnr"] - rs[0]["noisy_psnr"] for r in rs]
            ax.plot(t, gain, label=image[:28])
        ax.axhline(0, color="0.6", lw=0.8)
        ax.set_title(ds, fontsize=9)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("PSNR gain over the noisy input (dB)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _summary(runs: dict[tuple[str, str], list[dict]], path: Path, crop: int) -> str:
    head = ["dataset", "image", "noisy", "true σ", "δ", "λ", "warm start (t=1)", "peak (t)", "final (t=40)",
            "final − peak", "residual std at the end"]
    body, losses = [], defaultdict(list)
    for (ds, image), rs in runs.items():
        peak = max(rs, key=lambda r: r["psnr"])
        last = rs[-1]
        losses[ds].append(last["psnr"] - peak["psnr"])
        body.append([ds, image, f"{rs[0]['noisy_psnr']:.2f}", f"{rs[0]['true_sigma255']:.2f}", f"{rs[0]['delta255']:g}",
                     f"{rs[0]['lam']:g}", f"{rs[0]['psnr']:.2f}", f"{peak['psnr']:.2f} ({int(peak['t'])})",
                     f"{last['psnr']:.2f}", f"{last['psnr'] - peak['psnr']:+.2f}", f"{last['residual255']:.2f}"])
    means = "; ".join(f"{ds} {np.mean(v):+.2f} dB ({len(v)})" for ds, v in losses.items())
    intro = ("ScoreDVI `fast` (seed 0, 1 thread), "
             f"held-out {crop}² crops (CC has no pairs after the Table 1 subset); PSNR (dB) of the output after t iterations "
             "(clipped to [0, 1]). σ, δ and the residual std (noisy − output) on the 0-255 scale. Peak uses the clean "
             f"image (a diagnosis, not a method). Final − peak, mean per dataset: {means}.")
    return write_table_summary(path, "ScoreDVI `fast` along its iterations (CPU)", intro, head, body)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get("DENOISELAB_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    p.add_argument("--per-dataset", type=int, default=2)
    p.add_argument("--skip", type=int, default=8, help="leave out the first pairs (default 8: the Table 1 CPU subset)")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    tune_cpu_allocator()
    torch.set_num_threads(args.threads)
    rows_path = args.out / "rows.csv"
    if not args.table_only:
        done = {(r["dataset"], r["image"]) for r in (read_csv(rows_path, TEXT) if rows_path.is_file() else [])}
        for ds in args.datasets:
            for pair in _pairs(args.data_root, ds, args.skip, args.per_dataset):
                if (ds, pair.name) in done:
                    continue
                noisy, clean = (center_crop(a, args.crop) for a in pair.load())
                traj, info = _trajectory(noisy, clean, seed=0)
                base = {"dataset": ds, "image": pair.name, "noisy_psnr": round(float(psnr(noisy, clean)[0]), 4),
                        "true_sigma255": round(255 * float(np.std(noisy - clean)), 3), **info}
                args.out.mkdir(parents=True, exist_ok=True)
                for row in traj:  # one crop's rows together: a killed run loses at most one crop
                    append_row(rows_path, {**base, **row})
                print(ds, pair.name, f"t=1 {traj[0]['psnr']:.2f}", f"peak {max(r['psnr'] for r in traj):.2f}",
                      f"final {traj[-1]['psnr']:.2f}", flush=True)
    runs = _by_crop(read_csv(rows_path, TEXT))
    _plot(runs, args.out / "trajectories.png")
    print(_summary(runs, args.out / "summary.md", args.crop))


if __name__ == "__main__":
    main()
