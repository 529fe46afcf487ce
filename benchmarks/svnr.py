"""SVNR against a conditioned-diffusion baseline, BF-DnCNN and BM3D on simulated shot + read noise.

Question: does SVNR, whose reverse chain starts from the noisy image at a per-pixel time, denoise
at least as well as the same network trained as a standard conditioned diffusion model
(SR3-style, started from pure noise), with far fewer network calls? And does its
correlation-aware training (Eq. 11) matter (the same network trained with independent noise)? And
the training time maps: from the variance estimated on the noisy image, as the sampler is given it
(the shipped svnr-s), or from the clean image's true variance (svnr-s-truemap, the first model)?
The baseline is the same UNet, data and number of training steps, trained on DDPM's chain (in VE
form, pure noise at T) with EDM preconditioning; `--baseline conditional-eps` runs the first
baseline instead (plain ε-prediction on SVNR's chain). SVNR also runs with fixed call counts
(`--svnr-steps`, each pixel's t* walked down in N equal parts).

Protocol: centre crops (`--crop`, 128 px) of the first `--limit` images of CBSD68 and Kodak24,
taken to linear RGB (inverse sRGB gamma, white level 1); noise y = x + σ⊙n with
σ² = σ_r² + σ_s²·x added on the linear scale with a fixed seed per (image, level), clipped at 0
from below (``denoiselab.svnr.add_svnr_noise``); three levels (σ_r, σ_s) below. Every method
sees the linear y: the SVNR models get σ̂² = σ_r² + σ_s²·clip(y, 0, 1) (the true parameters),
BM3D gets the RMS of σ̂, the blind BF-DnCNN nothing (it cannot take a σ map). PSNR/SSIM are
computed in sRGB (outputs clipped to [0, 1], then gamma-encoded) against the clean crop. Network
calls count single-image evaluations (the mean of K samples runs K chains: K times the calls).

    python benchmarks/svnr.py                   # the committed table (CPU, about 30 min)
    python benchmarks/svnr.py --quick           # 1 image, 32 px, short schedules: wiring only

Writes benchmarks/results/svnr/<date>_<commit>_<device>.{csv,md,png}; the figure shows the first
image of each set at the medium and high levels, every method side by side.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from denoiselab.bench.real import make_figure
from denoiselab.bench.tables import markdown_table, provenance, result_stem, write_csv
from denoiselab.datasets import center_crop
from denoiselab.denoisers import load_denoiser
from denoiselab.io import atomic_write, read_image, to_tensor, write_image
from denoiselab.metrics import psnr, ssim
from denoiselab.svnr import add_svnr_noise, estimate_variance, load_svnr, sample_conditional, sample_svnr, to_linear, to_srgb
from denoiselab.svnr.weights import SHIPPED, SVNR_WEIGHTS_DIR

ROOT = Path(__file__).resolve().parent.parent
LEVELS = {"low": (0.01, 0.02), "medium": (0.04, 0.04), "high": (0.10, 0.05)}  # (σ_r, σ_s), linear [0, 1]


def images(data_root: Path, limit: int, crop: int) -> list[tuple[str, str, torch.Tensor]]:
    out = []
    for dataset in ("CBSD68", "Kodak24"):
        for path in sorted((data_root / "test" / "synthetic" / dataset).glob("*.png"))[:limit]:
            out.append((dataset, path.stem, to_tensor(center_crop(read_image(path).array, crop))))
    return out


def _mean_of_samples(svnr, k: int):
    """SVNR's K chains as one batch, the mean of the clipped samples; calls counted per image (K per batch call)."""
    def run(y, s2, seed):
        x, n = sample_svnr(svnr.model, y.repeat_interleave(k, 0), s2.repeat_interleave(k, 0), schedule=svnr.schedule,
                           seed=seed, return_calls=True)
        return x.clamp(0, 1).view(y.shape[0], k, *y.shape[1:]).mean(1), k * n
    return run


def methods(models: dict, *, long_steps: int, short_steps: int, svnr_steps: list[int], svnr_samples: int):
    """(name, run) pairs; ``run(y, sigma2, seed) -> (x_hat, network calls)``, all on the linear scale."""
    svnr, truemap, uncorrelated, conditional = (models[k] for k in ("svnr", "svnr-truemap", "svnr-uncorrelated",
                                                                    "baseline"))
    net, bm3d = load_denoiser("bfdncnn-color"), load_denoiser("bm3d")
    yield "SVNR", lambda y, s2, seed: sample_svnr(svnr.model, y, s2, schedule=svnr.schedule, seed=seed, return_calls=True)
    for n in svnr_steps:
        yield f"SVNR, {n} call{'s' if n > 1 else ''}", lambda y, s2, seed, n=n: sample_svnr(
            svnr.model, y, s2, steps=n, schedule=svnr.schedule, seed=seed, return_calls=True)
    if svnr_samples > 1:
        yield f"SVNR, mean of {svnr_samples} samples", _mean_of_samples(svnr, svnr_samples)
    yield "SVNR, true-variance time maps", lambda y, s2, seed: sample_svnr(
        truemap.model, y, s2, schedule=truemap.schedule, seed=seed, return_calls=True)
    yield "SVNR, no correlation fix", lambda y, s2, seed: sample_svnr(uncorrelated.model, y, s2, schedule=uncorrelated.schedule,
                                                                      seed=seed, return_calls=True)
    yield f"conditional, {short_steps} DDIM steps", lambda y, s2, seed: sample_conditional(
        conditional.model, y, steps=short_steps, schedule=conditional.schedule, seed=seed, return_calls=True)
    yield f"conditional, {long_steps} steps", lambda y, s2, seed: sample_conditional(
        conditional.model, y, steps=long_steps, schedule=conditional.schedule, seed=seed, return_calls=True)
    yield "BF-DnCNN (blind)", lambda y, s2, seed: (net(y, None), 1)
    yield "BM3D (RMS σ)", lambda y, s2, seed: (bm3d(y, float(s2.mean().sqrt())), 0)


def _picture(image: str, level: str) -> str:
    """The figure's name for an image at a noise level; the level's index first, so medium sorts before high."""
    return f"{image}-{list(LEVELS).index(level)}-{level}"


def run(items, models, *, long_steps: int, short_steps: int, long_limit: int, svnr_steps: list[int],
        svnr_samples: int, only: list[str] | None = None, pictures: Path | None = None) -> list[dict]:
    """The table's rows; with `pictures`, the first image of each set is saved there at the medium and
    high levels, as ``<set>/<_picture(image, level)>/<method>.png`` (the layout of ``bench.real.make_figure``)."""
    rows = []
    solvers = [(name, solve) for name, solve in methods(models, long_steps=long_steps, short_steps=short_steps,
                                                        svnr_steps=svnr_steps, svnr_samples=svnr_samples)
               if not only or name.startswith(tuple(only))]  # loads the networks once
    per_set: dict[str, int] = defaultdict(int)
    for index, (dataset, name, x_srgb) in enumerate(items):
        per_set[dataset] += 1
        x_lin = to_linear(x_srgb)
        for level_index, (level, (read, shot)) in enumerate(LEVELS.items()):
            seed = 100 * index + level_index
            y, _ = add_svnr_noise(x_lin, read, shot, generator=torch.Generator().manual_seed(seed))
            sigma2 = estimate_variance(y, read, shot)
            for method, solve in [("noisy", lambda *_: (y, 0))] + solvers:
                if method.endswith(f"{long_steps} steps") and per_set[dataset] > long_limit:
                    continue
                start = time.perf_counter()
                with torch.no_grad():
                    x_hat, calls = solve(y, sigma2, seed)
                seconds = time.perf_counter() - start
                out = to_srgb(x_hat.clamp(0, 1))
                if pictures is not None and per_set[dataset] == 1 and level != "low":
                    folder = pictures / dataset / _picture(name, level)
                    folder.mkdir(parents=True, exist_ok=True)
                    write_image(folder / f"{method}.png", out[0].permute(1, 2, 0).numpy())
                    if method == "noisy":
                        write_image(folder / "clean.png", x_srgb[0].permute(1, 2, 0).numpy())
                rows.append({"dataset": dataset, "image": name, "level": level, "method": method,
                             "psnr": float(psnr(out, x_srgb).mean()), "ssim": float(ssim(out, x_srgb).mean()),
                             "calls": int(calls), "seconds": seconds})
                print(f"{dataset} {name} {level:6s} {method:28s} {rows[-1]['psnr']:6.2f} dB {calls:5d} calls "
                      f"{seconds:7.1f} s", flush=True)
    return rows


def summarize(rows: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["level"], r["dataset"], r["method"])].append(r)
    order = list(dict.fromkeys(r["method"] for r in rows))
    header = ["level (σ_r, σ_s)", "set"] + order
    table, cost = [], []
    for level, (read, shot) in LEVELS.items():
        for dataset in ("CBSD68", "Kodak24"):
            cells = [groups.get((level, dataset, m), []) for m in order]
            if not any(cells):
                continue
            label = [f"{level} ({read:g}, {shot:g})", dataset]
            table.append(label + [f"{np.mean([r['psnr'] for r in c]):.2f} / {np.mean([r['ssim'] for r in c]):.3f} ({len(c)})"
                                  if c else "–" for c in cells])
            cost.append(label + [f"{np.mean([r['calls'] for r in c]):.0f} / {np.mean([r['seconds'] for r in c]):.2f} s"
                                 if c else "–" for c in cells])
    return ("## PSNR (dB) / SSIM in sRGB (images)\n\n" + markdown_table(header, table)
            + "\n\n## Network calls / seconds per image\n\n" + markdown_table(header, cost) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get("DENOISELAB_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--weights-dir", type=Path, default=SVNR_WEIGHTS_DIR)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "svnr")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--limit", type=int, default=5, help="first N images of each set")
    p.add_argument("--long-limit", type=int, default=2, help="the 1000-step baseline on the first N images of each set only")
    p.add_argument("--long-steps", type=int, default=1000)
    p.add_argument("--short-steps", type=int, default=50)
    p.add_argument("--svnr-steps", type=int, nargs="*", default=[1, 3], help="SVNR again with these call counts")
    p.add_argument("--svnr-samples", type=int, default=4, help="SVNR again as the mean of K samples (1: not run)")
    p.add_argument("--baseline", default="conditional",
                   help="the conditioned baseline: a shipped role (conditional, conditional-eps) or a .safetensors path")
    p.add_argument("--only", action="append", metavar="PREFIX",
                   help="run only the methods whose name starts with PREFIX (repeatable; 'noisy' always runs)")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        args.limit, args.crop, args.long_limit, args.long_steps, args.short_steps = 1, 32, 1, 20, 5
    roles = {"svnr": "svnr", "svnr-truemap": "svnr-truemap", "svnr-uncorrelated": "svnr-uncorrelated",
             "baseline": args.baseline}
    models = {role: load_svnr(args.weights_dir / f"{SHIPPED[kind]}.safetensors" if kind in SHIPPED else Path(kind))
              for role, kind in roles.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = result_stem(args.out, "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(images(args.data_root, args.limit, args.crop), models, long_steps=args.long_steps,
                   short_steps=args.short_steps, long_limit=args.long_limit, svnr_steps=args.svnr_steps,
                   svnr_samples=args.svnr_samples, only=args.only, pictures=Path(tmp) / "images")
        shown = [dict(r, image=_picture(r["image"], r["level"])) for r in rows]
        figure = make_figure(Path(tmp), list(dict.fromkeys(r["method"] for r in rows)), ["CBSD68", "Kodak24"], shown,
                             zoom=args.crop)
        if figure is not None:
            shutil.copyfile(figure, stem.with_suffix(".png"))
    write_csv(stem.with_suffix(".csv"), rows)
    cards = "; ".join(f"{m.card.get('name', kind)} ({(m.card.get('parameterization') or {}).get('name', 'eps')}, "
                      f"{m.schedule.form} chain): {m.card.get('steps')} steps, {m.card.get('wall_time_minutes')} min"
                      for kind, m in models.items())
    text = (f"# SVNR vs conditioned diffusion, BF-DnCNN, BM3D (shot + read noise)\n\n{provenance('cpu')}\n"
            f"- {args.crop}-px centre crops, first {args.limit} images per set ({args.long_limit} for the "
            f"{args.long_steps}-step baseline); noise on the linear scale, scores in sRGB; one thread\n"
            f"- models: {cards}\n\n" + summarize(rows))
    atomic_write(stem.with_suffix(".md"), lambda tmp: tmp.write_text(text))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
