"""Inverse problems with our priors: our PnP/RED solvers beside deepinv's, driven by the same denoiser.

Question: on deblurring, super-resolution and inpainting, are denoiselab's solvers
(``denoiselab.optim``) at least as good as deepinv's counterparts and not slower, when both use
the *same* denoiser (our BF-DnCNN through ``denoiselab.interop.DeepinvDenoiser``)? And what does
telling the blind prior its level (``denoiselab.denoisers.with_noise_level``) change?

Problems (noise σ = √2/255 on every measurement, added in float with a seed per image and task):
Gaussian blur std 1.6 px (kernel 2·⌈3·1.6⌉+1 = 11 px), 9×9 uniform blur (both circular),
×3 bicubic downsampling (MATLAB imresize), 50 % random missing pixels. Images: Set12 (gray) and
the first 10 of CBSD68 (colour), centre crops of `--crop` px (192; trimmed to a multiple of 3
for ×3 SR) to fit the CPU.

Solver pairs (each with the same denoiser levels and weights where deepinv lets us set them):

- PnP-HQS (DPIR: 8 steps, σ_k 49/255 → σ) — ``deepinv.optim.DPIR`` (its own defaults; it
  weights the data with max(σ, 0.01) where we use σ);
- PnP-ADMM (20 steps, the same σ_k and ρ_k = 0.23σ²/σ_k²) — deepinv's ``ADMM`` iterator with
  ``PnP`` prior, stepsize 1/ρ_k, the same σ_k;
- RED steepest descent (RED's published λ, σ_f; step 2/(1/σ² + λ)) — deepinv's ``GD`` with the
  ``RED`` prior and ``L2(sigma)``, the same λ, σ_f and step;
- RED fixed point (ours only: deepinv has no such iterator).

deepinv's physics is its native operator when it reproduces ours on a random image within 1e-5
(``BlurFFT``, ``Inpainting``), otherwise a ``LinearPhysics`` wrapping ours (then deepinv's
data step runs its generic least-squares solver); the md says which. Seconds are wall time of
the whole solver call on one thread.

deepinv needs torchvision, which has no CPU build for the torch pinned here, so the side-by-side
run uses its own environment (never the project's)::

    python3 -m venv /tmp/venv-deepinv
    /tmp/venv-deepinv/bin/pip install deepinv safetensors scipy scikit-image tifffile imageio PyWavelets tqdm
    PYTHONPATH=src /tmp/venv-deepinv/bin/python benchmarks/restoration.py --shard 0/2 &
    PYTHONPATH=src /tmp/venv-deepinv/bin/python benchmarks/restoration.py --shard 1/2
    python benchmarks/restoration.py --tables benchmarks/results/restoration/*.shard*.csv

Without deepinv importable it runs our solvers only (``--quick``: 1 image per set, 64 px).
Writes ``benchmarks/results/restoration/<date>_<commit>_<device>.{csv,md}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from denoiselab.bench.tables import markdown_table, provenance, read_csv, result_stem, write_csv
from denoiselab.datasets import center_crop
from denoiselab.denoisers import CountedDenoiser, load_denoiser_for, with_noise_level
from denoiselab.io import atomic_write, read_image, to_tensor
from denoiselab.metrics import psnr, ssim
from denoiselab.optim import (dpir_sigmas, solve_pnp_admm, solve_pnp_hqs, solve_red_fixed_point,
                              solve_red_steepest_descent)
from denoiselab.optim.red import red_paper_settings
from denoiselab.physics import BicubicDownsample, Blur, Inpainting, random_pixel_mask

ROOT = Path(__file__).resolve().parent.parent
SIGMA = 2**0.5 / 255
TASKS = ("gauss-blur", "uniform-blur", "sr3", "inpaint50")
ADMM_STEPS = 20
RED_SD_STEPS = 50
RED_FP_STEPS = 10
BLIND_TOO = ("PnP-HQS", "RED-FP")  # also run with the blind prior as it is, to show what injection changes


def make_operator(task: str, shape: tuple[int, ...], seed: int):
    if task == "gauss-blur":
        return Blur.gaussian(1.6)
    if task == "uniform-blur":
        return Blur.uniform(9)
    if task == "sr3":
        return BicubicDownsample(3)
    mask = random_pixel_mask((1, 1, *shape[-2:]), 0.5, generator=torch.Generator().manual_seed(seed))
    return Inpainting(mask)



# ---------------------------------------------------------------- our solvers

def ours(op, y):
    lam, sigma_f = red_paper_settings(op)
    yield "PnP-HQS", lambda d: solve_pnp_hqs(y, op, d, sigma=SIGMA)
    yield "PnP-ADMM", lambda d: solve_pnp_admm(y, op, d, sigma=SIGMA, n_steps=ADMM_STEPS)
    yield "RED-SD", lambda d: solve_red_steepest_descent(y, op, d, sigma=SIGMA, lam=lam, denoiser_sigma=sigma_f,
                                                         n_steps=RED_SD_STEPS)
    yield "RED-FP", lambda d: solve_red_fixed_point(y, op, d, sigma=SIGMA, lam=lam, denoiser_sigma=sigma_f,
                                                    n_steps=RED_FP_STEPS)


# ---------------------------------------------------------------- deepinv's

def deepinv_physics(op, x: torch.Tensor):
    """deepinv's own operator for `op` if it reproduces ours within 1e-5, else ours wrapped; and its label."""
    import deepinv as dinv

    candidates = []
    if isinstance(op, Blur) and op.boundary == "circular":
        candidates.append(("BlurFFT", lambda: dinv.physics.BlurFFT(img_size=tuple(x.shape[1:]), filter=op.kernel[None, None].to(x))))
    if isinstance(op, Inpainting):
        candidates.append(("Inpainting", lambda: dinv.physics.Inpainting(img_size=tuple(x.shape[1:]), mask=op.mask[0].to(x))))
    if isinstance(op, BicubicDownsample):
        candidates.append(("DownsamplingMatlab", lambda: dinv.physics.DownsamplingMatlab(img_size=tuple(x.shape[1:]), factor=op.factor)))
    probe = torch.rand(x.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    for label, build in candidates:
        try:
            physics = build()
            theirs, mine = physics.A(probe), op.A(probe)
            if theirs.shape == mine.shape and float((theirs - mine).abs().max()) < 1e-5:
                return physics, label
        except Exception:  # noqa: BLE001 - a candidate that does not fit falls back to the wrapper
            pass
    return dinv.physics.LinearPhysics(A=op.A, A_adjoint=op.A_adjoint), "LinearPhysics(ours)"


def deepinv_solvers(op, y, physics):
    import deepinv as dinv

    lam, sigma_f = red_paper_settings(op)
    levels = dpir_sigmas(SIGMA, n_steps=ADMM_STEPS).float()
    rho = 0.23 * SIGMA**2 / levels**2

    def dpir(d):
        return dinv.optim.DPIR(sigma=SIGMA, denoiser=d)(y, physics)

    def admm(d):
        model = dinv.optim.optim_builder("ADMM", prior=dinv.optim.PnP(denoiser=d), data_fidelity=dinv.optim.L2(),
                                         max_iter=ADMM_STEPS, early_stop=False,
                                         params_algo={"stepsize": list(1.0 / rho), "g_param": list(levels),
                                                      "lambda": 1.0, "beta": 1.0})
        return model(y, physics)

    def red_gd(d):
        model = dinv.optim.optim_builder("GD", prior=dinv.optim.prior.RED(denoiser=d),
                                         data_fidelity=dinv.optim.L2(sigma=SIGMA), max_iter=RED_SD_STEPS,
                                         early_stop=False,
                                         params_algo={"stepsize": 2.0 / (1.0 / SIGMA**2 + lam), "lambda": lam,
                                                      "g_param": sigma_f})
        return model(y, physics)

    yield "PnP-HQS", dpir
    yield "PnP-ADMM", admm
    yield "RED-SD", red_gd


def deepinv_available() -> bool:
    try:
        import deepinv  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- the run

def images(data_root: Path, limit_gray: int | None, limit_color: int, crop: int) -> list[tuple[str, str, np.ndarray]]:
    out = []
    for dataset, limit in (("Set12", limit_gray), ("CBSD68", limit_color)):
        for path in sorted((data_root / "test" / "synthetic" / dataset).glob("*.png"))[:limit]:
            out.append((dataset, path.stem, center_crop(read_image(path).array, crop)))
    return out


def run(items, tasks, with_deepinv: bool, prior_modes: tuple[str, ...], only: list[str] | None = None,
        priors: dict[int, str] | None = None) -> list[dict]:
    """The rows; `priors` maps channels to the prior's name (default: bfdncnn-color, bfdncnn-gray for gray)."""
    rows = []
    priors = priors or {3: "bfdncnn-color", 1: "bfdncnn-color"}
    for index, (dataset, name, array) in enumerate(items):
        clean = to_tensor(array)
        _, base = load_denoiser_for(priors[clean.shape[1]], clean.shape[1])
        for task_index, task in enumerate(tasks):
            x = clean
            if task == "sr3":
                x = x[..., : x.shape[-2] // 3 * 3, : x.shape[-1] // 3 * 3]
            seed = 1000 * index + task_index
            op = make_operator(task, x.shape, seed)
            ax = op.A(x)
            y = ax + SIGMA * torch.randn(ax.shape, generator=torch.Generator().manual_seed(seed))
            start_psnr = float(psnr(op.initial_estimate(y).clamp(0, 1), x).mean())
            runs = [("denoiselab", mode, solver_name, solve) for mode in prior_modes
                    for solver_name, solve in ours(op, y)
                    if (mode == "inject" or solver_name in BLIND_TOO) and (only is None or solver_name in only)]
            physics_label = ""
            if with_deepinv:
                from denoiselab.interop import DeepinvDenoiser

                physics, physics_label = deepinv_physics(op, x)
                runs += [("deepinv", "inject", solver_name, solve) for solver_name, solve in deepinv_solvers(op, y, physics)
                         if only is None or solver_name in only]
            for impl, mode, solver_name, solve in runs:
                prior = CountedDenoiser(with_noise_level(base, seed=seed) if mode == "inject" else base)
                denoiser = DeepinvDenoiser(prior) if impl == "deepinv" else prior
                start = time.perf_counter()
                with torch.no_grad():
                    x_hat = solve(denoiser).clamp(0, 1)
                seconds = time.perf_counter() - start
                rows.append({"dataset": dataset, "image": name, "task": task, "solver": solver_name, "impl": impl,
                             "prior": mode, "psnr": float(psnr(x_hat, x).mean()), "ssim": float(ssim(x_hat, x).mean()),
                             "seconds": seconds, "calls": prior.calls, "start_psnr": start_psnr,
                             "deepinv_physics": physics_label if impl == "deepinv" else ""})
                print(f"{dataset} {name} {task:13s} {impl:10s} {solver_name:9s} {mode:6s} "
                      f"{rows[-1]['psnr']:6.2f} dB {seconds:6.1f} s", flush=True)
    return rows


def summarize(rows: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["task"], r["dataset"], r["solver"], r["impl"], r["prior"])].append(r)
    columns = [("PnP-HQS", "denoiselab", "blind"), ("PnP-HQS", "denoiselab", "inject"), ("PnP-HQS", "deepinv", "inject"),
               ("PnP-ADMM", "denoiselab", "inject"), ("PnP-ADMM", "deepinv", "inject"),
               ("RED-SD", "denoiselab", "inject"), ("RED-SD", "deepinv", "inject"),
               ("RED-FP", "denoiselab", "inject"), ("RED-FP", "denoiselab", "blind")]
    columns = [c for c in columns if any(k[2:] == c for k in groups)]
    header = ["task", "set (n)", "start (A⁺y or y)"] + [f"{s} {'ours' if i == 'denoiselab' else i}{'' if p == 'inject' else ', blind as is'}"
                                                   for s, i, p in columns]
    psnr_rows, time_rows = [], []
    for task in TASKS:
        for dataset in ("Set12", "CBSD68"):
            cells = [groups.get((task, dataset) + c, []) for c in columns]
            if not any(cells):
                continue
            n = max(len(c) for c in cells)
            first = next(c for c in cells if c)
            label = [task, f"{dataset} ({n})", f"{np.mean([r['start_psnr'] for r in first]):.2f}"]
            psnr_rows.append(label + [f"{np.mean([r['psnr'] for r in c]):.2f} / {np.mean([r['ssim'] for r in c]):.3f}" if c else "–" for c in cells])
            time_rows.append(label[:2] + [f"{np.mean([r['seconds'] for r in c]):.2f} s ({int(np.mean([r['calls'] for r in c]))})" if c else "–" for c in cells])
    physics = sorted({(r["task"], r["deepinv_physics"]) for r in rows if r["deepinv_physics"]})
    text = "## PSNR (dB) / SSIM\n\n" + markdown_table(header, psnr_rows)
    text += "\n\n## Seconds per image (denoiser calls)\n\n" + markdown_table([header[0], header[1]] + header[3:], time_rows)
    if physics:
        text += "\n\ndeepinv physics used: " + "; ".join(f"{t}: {p}" for t, p in physics) + "\n"
    return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get("DENOISELAB_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "restoration")
    p.add_argument("--crop", type=int, default=192, help="centre crop side in px (0: whole images)")
    p.add_argument("--limit-gray", type=int, default=None, help="first N Set12 images (default all 12)")
    p.add_argument("--limit-color", type=int, default=10, help="first N CBSD68 images")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    p.add_argument("--shard", default="0/1", help="I/N: this process takes every N-th image from the I-th")
    p.add_argument("--tables", nargs="+", type=Path, help="only merge these CSVs (from shards) into one table; "
                   "a row of a later CSV replaces the same run's row of an earlier one")
    p.add_argument("--solvers", nargs="+", help="run only these solvers, ours and deepinv's (e.g. PnP-ADMM after a change)")
    p.add_argument("--quick", action="store_true", help="1 image per set, 64 px crops, our solvers only")
    p.add_argument("--color-prior", default="bfdncnn-color", help="prior for CBSD68 (e.g. the small bfdncnn-color-s-bsd)")
    p.add_argument("--gray-prior", default="bfdncnn-gray", help="prior for Set12 (e.g. the small bfdncnn-gray-s)")
    args = p.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = result_stem(args.out, "cpu")
    if args.tables:
        merged = {}  # a later CSV's row replaces an earlier one of the same run (e.g. a solver re-run after a fix)
        for path in args.tables:
            for row in read_csv(path, text=("dataset", "image", "task", "solver", "impl", "prior", "deepinv_physics")):
                merged[tuple(row[k] for k in ("dataset", "image", "task", "solver", "impl", "prior"))] = row
        rows = list(merged.values())
    else:
        if args.quick:
            args.limit_gray, args.limit_color, args.crop = 1, 1, 64
        with_deepinv = deepinv_available() and not args.quick
        shard, n_shards = (int(v) for v in args.shard.split("/"))
        items = images(args.data_root, args.limit_gray, args.limit_color, args.crop)[shard::n_shards]
        rows = run(items, args.tasks, with_deepinv, ("inject", "blind"), args.solvers,
                   {3: args.color_prior, 1: args.gray_prior})
        if n_shards > 1:
            write_csv(stem.with_name(stem.name + f".shard{shard}of{n_shards}.csv"), rows)
            return 0
    write_csv(stem.with_suffix(".csv"), rows)
    versions = f"torch {torch.__version__}"
    if deepinv_available():
        import deepinv

        versions += f", deepinv {deepinv.__version__}"
    text = (f"# Inverse problems: denoiselab's solvers beside deepinv's, same denoiser\n\n{provenance('cpu')}\n"
            f"- {versions}; priors {args.gray_prior} (Set12) / {args.color_prior} (CBSD68), told their level by noise injection "
            f"(`with_noise_level`) unless marked 'blind as is'\n"
            f"- noise σ = √2/255; {args.crop}-px centre crops; ADMM {ADMM_STEPS} steps, RED-SD {RED_SD_STEPS}, "
            f"RED-FP {RED_FP_STEPS}; one thread\n\n" + summarize(rows) + "\n")
    atomic_write(stem.with_suffix(".md"), lambda tmp: tmp.write_text(text))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
