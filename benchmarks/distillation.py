"""Do small priors learn more from a big one than from clean images? Distillation at equal wall time.

    python benchmarks/distillation.py                          # colour: 33 min per student (one core)
    python benchmarks/distillation.py --channels 1             # gray: 90 min per student
    python benchmarks/distillation.py --table-only

The students have the shipped small prior's architecture, data, patch and batch size, learning
rate schedule and seed (its card: ``bfdncnn-color-s-bsd`` / ``bfdncnn-gray-s``); only the target
changes, to ``w·teacher(y) + (1 − w)·x`` with the published full-size prior as the teacher
(``bfdncnn-color-cbsd300`` / ``bfdncnn-gray-bsd400``), for each ``--weights`` w. Every student
gets the small prior's own wall time (its card's ``wall_time_minutes``), so a teacher call per
step buys fewer steps. ``w = 0`` retrains the plain recipe for the same minutes on this machine
now, the fair baseline (the card's numbers came from another load).

Scores: full CBSD68 (colour) or BSD68 (gray) at σ = 15, 25, 50, by the card's protocol (AWGN
added in float with seed 0, no clipping; PSNR of the clipped output). Run one student at a time
on an otherwise idle core: the budget is wall-clock. Rows go to
``benchmarks/results/distillation/rows.csv`` as each student finishes (a rerun skips them and
resumes an interrupted student from its checkpoint under ``--work``); the table to ``summary.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from denoiselab.bench.tables import append_row, markdown_table, provenance, read_csv
from denoiselab.denoisers.registry import read_card, _weights_path
from denoiselab.io import atomic_write
from denoiselab.training import TrainConfig, train_denoiser
from denoiselab.training.train import evaluate_denoiser

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "distillation"
SIGMAS = [15.0, 25.0, 50.0]
SETUP = {  # channels: (shipped small prior, teacher, training folder, test set)
    3: ("bfdncnn-color-s-bsd", "bfdncnn-color-cbsd300", "color", "CBSD68"),
    1: ("bfdncnn-gray-s", "bfdncnn-gray-bsd400", "gray", "BSD68"),
}


def _student_config(channels: int, weight: float, data_root: Path, minutes: float | None) -> TrainConfig:
    small, teacher, folder, _ = SETUP[channels]
    card = read_card(_weights_path(small))
    return TrainConfig(
        name=f"{small}-distil{weight:g}", train_dirs=[str(data_root / "train" / folder)], channels=channels,
        depth=card["depth"], width=card["width"], patch_size=card["patch_size"], batch_size=card["batch_size"],
        steps=10 ** 6, lr=1e-3, lr_min=1e-5, seed=card["seed"], max_minutes=minutes or card["wall_time_minutes"],
        device="cpu", teacher=None if weight == 0 else teacher, teacher_weight=weight if weight else 1.0,
    )


def _table(rows: list[dict]) -> str:
    head = ["channels", "student", "target", "steps", "minutes"] + [f"σ = {s:g}" for s in SIGMAS] + ["Δ at σ = 25 vs w = 0"]
    body = []
    for ch in sorted({int(r["channels"]) for r in rows}, reverse=True):
        mine = sorted((r for r in rows if int(r["channels"]) == ch), key=lambda r: float(r["weight"]))
        base = next((r for r in mine if float(r["weight"]) == 0), None)
        small, teacher, _, test = SETUP[ch]
        card = read_card(_weights_path(small))
        body.append([str(ch), f"{small} (shipped card, {test})", "clean", str(card["steps"]), f"{card['wall_time_minutes']:g}"]
                    + [f"{card['test_psnr_db'].get(f'{s:g}', float('nan')):.2f}" for s in SIGMAS] + ["–"])
        for r in mine:
            w = float(r["weight"])
            target = "clean (retrained now)" if w == 0 else f"{w:g}·{teacher}(y) + {1 - w:g}·clean"
            delta = f"{float(r['psnr_25']) - float(base['psnr_25']):+.2f}" if base is not None else "–"
            body.append([str(ch), r["name"], target, str(int(r["steps"])), f"{float(r['minutes']):.1f}"]
                        + [f"{float(r[f'psnr_{s:g}']):.2f}" for s in SIGMAS] + [delta])
    return markdown_table(head, body)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get("DENOISELAB_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--channels", type=int, choices=(1, 3), default=3)
    p.add_argument("--weights", type=float, nargs="+", default=[1.0, 0.0], help="teacher weights w in [0, 1]; 0 = plain")
    p.add_argument("--minutes", type=float, help="wall-clock budget per student (default: the shipped card's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "distillation", help="checkpoints and weights (git-ignored)")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    rows_path = args.out / "rows.csv"
    rows = read_csv(rows_path, text=("name",)) if rows_path.is_file() else []
    if not args.table_only:
        for w in args.weights:
            if any(int(r["channels"]) == args.channels and float(r["weight"]) == w for r in rows):
                continue
            cfg = _student_config(args.channels, w, args.data_root, args.minutes)
            start = time.time()
            path = train_denoiser(cfg, args.work / cfg.name)
            card = json.loads(path.with_suffix(".json").read_text())
            from denoiselab.denoisers import load_denoiser

            test = args.data_root / "test" / "synthetic" / SETUP[args.channels][3]
            scores = evaluate_denoiser(load_denoiser(str(path)), test, SIGMAS, channels=args.channels)
            row = {"channels": args.channels, "weight": w, "name": cfg.name, "steps": card["steps"],
                   "minutes": card["wall_time_minutes"], "threads": args.threads,
                   **{f"psnr_{s:g}": scores[f"{s:g}"] for s in SIGMAS}, "total_seconds": round(time.time() - start)}
            append_row(rows_path, row)
            rows.append(row)
            print(row, flush=True)
    text = "\n".join([
        "# Distillation: small priors trained on a published teacher's output, at the small prior's wall time",
        "", provenance("cpu"), "",
        "PSNR (dB), full test set, AWGN σ on 0–255, the shipped card's protocol. Same architecture, data, batch, "
        "schedule and seed as the shipped small prior; only the target differs.", "", _table(rows), ""])
    atomic_write(args.out / "summary.md", lambda tmp: tmp.write_text(text))
    print(text)


if __name__ == "__main__":
    main()
