"""ScoreDVI from `paper` to `fast`, one change at a time, on the same dev crops and priors.

    python benchmarks/scoredvi_ablation.py                      # every step on every crop (hours)
    python benchmarks/scoredvi_ablation.py --steps cheap        # all but the 400-iteration `paper` run
    python benchmarks/scoredvi_ablation.py --steps paper --images sidd_val:0
    python benchmarks/scoredvi_ablation.py --table-only         # the table from the rows so far

Crops: the centre `--crop` (default 128) pixels of the first dev pair of PolyU, CC and FMDD and
the first two of SIDD validation (sorted names; the first pairs of the Table 1 CPU subset).
Each step changes one setting of the step above it (or, for a branch, of the step it names; see STEPS). `paper` is run once to 400
iterations and its running output is scored at 10, 20, 40, 100, 200 and 400: a run of n
iterations is exactly the first n iterations of a longer one (same seed; nothing depends on the
iteration count), so its 40- and 100-iteration rows are those runs. The restart rule is left
out of every step (it reruns a whole fit; whether it would have fired is recorded as the mean
posterior std at the end, against its 0.05 threshold).

Rows go to ``benchmarks/results/scoredvi_ablation/rows.csv`` as each (step, crop) finishes (a
rerun skips them); the table to ``.../summary.md``. PSNR/SSIM of the output clipped to [0, 1].
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from denoiselab import tune_cpu_allocator
from denoiselab.bench.methods import paper_beta
from denoiselab.bench.tables import append_row, markdown_table, provenance, read_csv
from denoiselab.datasets import center_crop, open_pairs
from denoiselab.io import atomic_write
from denoiselab.metrics import psnr, ssim
from denoiselab.scoredvi import get_preset, scoredvi
from denoiselab.scoredvi.presets import (PUBLISHED_COLOR_PRIORS, PUBLISHED_GRAY_PRIORS, SMALL_COLOR_PRIORS,
                                         SMALL_GRAY_PRIORS)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "scoredvi_ablation"
DATASETS = {"sidd_val": 2, "polyu": 1, "cc": 1, "fmdd": 1}
CHECKPOINTS = (10, 20, 40, 60, 80, 100, 200, 400)

PAPER = replace(get_preset("paper"), restart=False)
FAST = get_preset("fast")


def _step(name, change, **kw):
    return name, change, kw


# Each step: (name, what changed from the step above, settings). `nets` changes are applied to
# the previous step's NetConfig. "beta": "paper" (per dataset, §4.1), "auto" (from δ) or one number.
STEPS = [
    _step("paper", "the authors' settings, published priors, restart off", preset=PAPER, beta="paper"),
    _step("M=1", "40 iterations (paper's run at 40) and 1 sample per component instead of 5",
          preset=replace(PAPER, n_iter=40, n_samples=1), beta="paper"),
    _step("small nets", "UNet 16 base channels, 3 down-steps, corners not aligned; aux nets 3 × 8",
          nets=dict(x_base=16, x_depth=3, aux_width=8, aux_depth=3, align_corners=False)),
    _step("init", "µ_k residual on D_k(y) (warm start), σ_k starts at 0.05, Φ at the hyperprior",
          nets=dict(residual_mean=True, mean_init="prior", init_log_var=-6.0, phi_from_hyperprior=True)),
    _step("zero-mean score", "the priors may not move an image's mean colour", fields=dict(score_zero_mean=True)),
    _step("lr 3e-3", "Adam learning rate 1e-3 → 3e-3", fields=dict(lr=3e-3)),
    _step("EMA 0.8", "output EMA 0.9 from y → 0.8 from the first iterate", fields=dict(ema=0.8, ema_from_y=False)),
    _step("no π score gradient", "π gets no gradient from the score unit", fields=dict(pi_score_gradient=False)),
    _step("β auto", "β from the estimated δ instead of per dataset (= `fast` before 2026-12-04, on the published priors)", beta="auto"),
    _step("small priors", "our CPU-trained priors (= `fast` before 2026-12-04)", priors="preset-small"),
    _step("published warm start", "D_k(y) of the warm start from the published priors (3 calls), the score from the small ones",
          fields=dict(warm_start_priors="published")),
    _step("K=1 published", "from `β auto`: one published prior (CBSD300 colour, BSD400 gray) instead of three",
          base="β auto", priors="published-k1"),
    _step("K=1, 25 iterations", "40 → 25 iterations (to fit the time budget)", fields=dict(n_iter=25)),
    _step("K=1, paper β", "from `K=1 published`: β per dataset as the paper sets it (§4.1) instead of from δ",
          base="K=1 published", beta="paper"),
    _step("K=1, β 0.02", "from `K=1 published`: one β = 0.02 for every image (the paper's heavy-noise value)",
          base="K=1 published", beta=0.02),
    _step("K=1, β 0.02, PD start", "warm start through PD-2 and PD refinement (Zhou et al. 2020) instead of D_k(y)",
          nets=dict(mean_init="pd")),
    _step("published fast, 100 iterations", "from `β auto`: 40 → 100 iterations (is `fast` only short of steps?)",
          base="β auto", fields=dict(n_iter=100)),
    _step("new fast", "from `K=1, β 0.02, PD start`: PD start only where the noise estimate finds correlated noise "
          "(`fast` of 2026-12-04)", preset=FAST, nets=dict(pd_stride=2, pd_whiten=False), beta="auto", priors="preset"),
    _step("new fast, 100 iterations", "40 → 100 iterations (scored at 60, 80, 100): what the 1.5× faster allocator "
          "could buy within the time budget (rows run with the code of 2026-12-04, whose 40-iteration `new fast` "
          "gave 31.66 / 29.14 / 41.85 / 39.93 / 34.28)", fields=dict(n_iter=100)),
    _step("PD-3 start", "from `new fast`: the PD warm start at stride 3 instead of 2", base="new fast",
          nets=dict(pd_stride=3)),
    _step("colour-whitened PD start", "PD start on colours where the noise is white across channels, where safe "
          "(`fast` since 2026-12-05)", preset=FAST),
]


def _configs():
    """(name, change, preset, beta, priors) per step, each built on the one above."""
    out, preset, beta, priors = [], None, None, "published"
    for name, change, kw in STEPS:
        if "base" in kw:  # a branch: built on a named earlier step instead of the one above
            _, _, preset, beta, priors = next(c for c in out if c[0] == kw["base"])
        preset = kw.get("preset", preset)
        if "nets" in kw:
            preset = replace(preset, nets=replace(preset.nets, **kw["nets"]))
        if "fields" in kw:
            preset = replace(preset, **kw["fields"])
        beta = kw.get("beta", beta)
        priors = kw.get("priors", priors)
        out.append((name, change, preset, beta, priors))
    return out


def _crops(data_root: Path, crop: int):
    for ds, n in DATASETS.items():
        pairs = open_pairs(data_root / "real" / ds).head(n)
        for index, pair in enumerate(pairs):
            yield ds, index, pair, crop


def _measure(name, preset, beta, priors, ds, pair, crop, threads, keep) -> None:
    noisy, clean = pair.load()
    noisy, clean = center_crop(noisy, crop), center_crop(clean, crop)
    gray = noisy.ndim == 2 or noisy.shape[-1] == 1
    names = None
    if priors == "published":
        names = list(PUBLISHED_GRAY_PRIORS if gray else PUBLISHED_COLOR_PRIORS)
    elif priors == "published-k1":
        names = [PUBLISHED_GRAY_PRIORS[0] if gray else PUBLISHED_COLOR_PRIORS[0]]
    elif priors == "preset-small":
        names = list(SMALL_GRAY_PRIORS if gray else SMALL_COLOR_PRIORS)
    b = paper_beta(ds) if beta == "paper" else beta  # "auto" or one number for every image
    clean_t = torch.from_numpy(np.ascontiguousarray(clean if clean.ndim == 3 else clean[..., None])).permute(2, 0, 1)[None]
    start = time.perf_counter()
    marks = [c for c in CHECKPOINTS if c <= preset.n_iter] if preset.n_iter >= 100 else [preset.n_iter]
    base = {"step": name, "dataset": ds, "image": pair.name, "crop": crop, "threads": threads}

    def callback(state):
        it = state["i"] + 1
        if it in marks:
            out = state["image"].clamp(0, 1)
            sigma = float(torch.sqrt(state["theta"].var).mean())
            keep({**base, "iterations": it, "psnr": round(float(psnr(out, clean_t)[0]), 4),
                  "ssim": round(float(ssim(out, clean_t)[0]), 5), "seconds": round(time.perf_counter() - start, 1),
                  "mean_sigma": round(sigma, 4), "beta": b, "preset_note": ""})

    scoredvi(noisy, preset=preset, priors=names, beta=b, seed=0, device="cpu", progress=False, callback=callback,
             return_record=False)


def _table(rows: list[dict]) -> str:
    configs = _configs()
    crops = sorted({(r["dataset"], r["image"]) for r in rows}, key=lambda k: (list(DATASETS).index(k[0]), k[1]))
    lines = ["# ScoreDVI ablation: from `paper` to `fast`, one change at a time", "",
             provenance("cpu"), "",
             "Each row changes one setting of the row above, or of the row its text names (restart rule off everywhere). PSNR (dB) of the "
             "output clipped to [0, 1]; seconds of the whole fit on this CPU (threads as listed); "
             "σ̄: mean posterior std at the end (the restart rule fires above 0.05).", ""]
    head = ["step", "change", "iterations"] + [f"{d} {i[:12]}" for d, i in crops] + ["mean", "seconds (mean)", "σ̄ (mean)"]
    body = []

    def add(label, change, its, sel):
        cells, secs, sig = [], [], []
        for d, i in crops:
            r = sel.get((d, i))
            cells.append(f"{r['psnr']:.2f}" if r else "–")
            if r:
                secs.append(r["seconds"])
                sig.append(r["mean_sigma"])
        vals = [sel[k]["psnr"] for k in crops if k in sel]
        mean = f"{np.mean(vals):.2f}" if len(vals) == len(crops) and vals else "–"
        body.append([label, change, str(its)] + cells + [mean, f"{np.mean(secs):.0f}" if secs else "–",
                                                         f"{np.mean(sig):.3f}" if sig else "–"])

    noisy = {(r["dataset"], r["image"]): r for r in rows if r["step"] == "noisy"}
    if noisy:
        add("noisy", "the input", 0, noisy)
    for name, change, preset, _, _ in configs:
        mine = [r for r in rows if r["step"] == name]
        its_list = (sorted({int(r["iterations"]) for r in mine}, reverse=True) if preset.n_iter >= 100 else []) or [preset.n_iter]
        for its in its_list:
            sel = {(r["dataset"], r["image"]): r for r in mine if int(r["iterations"]) == its}
            first = its == its_list[0]
            add(name if first else f"{name} @ {its}", change if first else "the same run, scored at this iteration", its, sel)
    lines.append(markdown_table(head, body))
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get("DENOISELAB_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--steps", nargs="+", default=["all"], help="step names, 'cheap' (all but paper) or 'all'")
    p.add_argument("--images", nargs="+", help="only these crops, as dataset:index (e.g. sidd_val:0), run in this order")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    tune_cpu_allocator()  # as the CLI does: same results, faster
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    rows_path = args.out / "rows.csv"
    numeric = ("crop", "threads", "iterations", "psnr", "ssim", "seconds", "mean_sigma")

    def load() -> list[dict]:
        rows = read_csv(rows_path, text=("step", "dataset", "image", "beta", "preset_note")) if rows_path.is_file() else []
        return [{**r, **{k: float(r[k]) for k in numeric}} for r in rows]

    def keep(row: dict) -> None:
        append_row(rows_path, row)

    if not args.table_only:
        names = [s[0] for s in STEPS]
        wanted = (names if "all" in args.steps else names[1:] if "cheap" in args.steps else args.steps)
        unknown = set(wanted) - set(names)
        if unknown:
            raise SystemExit(f"unknown steps {sorted(unknown)}; known: {names}")
        done = {(r["step"], r["dataset"], r["image"], int(r["crop"]), int(r["iterations"])) for r in load()}
        for ds, _, pair, crop in _crops(args.data_root, args.crop):  # the reference row: the noisy input itself
            if ("noisy", ds, pair.name, crop, 0) not in done:
                noisy, clean = (center_crop(a, crop) for a in pair.load())
                keep({"step": "noisy", "dataset": ds, "image": pair.name, "crop": crop, "threads": args.threads,
                      "iterations": 0, "psnr": round(float(psnr(noisy, clean)[0]), 4),
                      "ssim": round(float(ssim(noisy, clean)[0]), 5), "seconds": 0.0, "mean_sigma": 0.0,
                      "beta": "", "preset_note": ""})
        for name, _, preset, beta, priors in _configs():
            if name not in wanted:
                continue
            crops = list(_crops(args.data_root, args.crop))
            if args.images:  # only these, in the order given
                crops = [c for key in args.images for c in crops if f"{c[0]}:{c[1]}" == key]
            for ds, index, pair, crop in crops:
                if (name, ds, pair.name, crop, preset.n_iter) in done:  # a run counts once its last row is in
                    continue
                print(f"{name}: {ds}/{pair.name}", flush=True)
                _measure(name, preset, beta, priors, ds, pair, crop, args.threads, keep)
    text = _table(load())
    atomic_write(args.out / "summary.md", lambda tmp: tmp.write_text(text))
    print(text)


if __name__ == "__main__":
    main()
