"""Synthesis: what do images drawn from the priors implicit in our denoisers look like?

Draws a few gray (``bfdncnn-gray``) and colour (``bfdncnn-color``) samples, from scratch, with annealed
Langevin dynamics (Song & Ermon 2019, ``sample_annealed_langevin``) and with Kadkhodaie & Simoncelli's
coarse-to-fine ascent (``sample_implicit_prior``), seeded, and puts them in one figure with a row per
(prior, method).

    python benchmarks/synthesis.py              # the committed figure: 4 samples of 64×64 per row (CPU)
    python benchmarks/synthesis.py --quick      # 2 samples of 32×32, short chains, seconds

Writes benchmarks/results/synthesis/<date>_<commit>_<device>.{png,md,csv}.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from denoiselab.bench.tables import markdown_table, provenance, result_stem, write_csv  # noqa: E402
from denoiselab.denoisers import CountedDenoiser, load_denoiser  # noqa: E402
from denoiselab.io import atomic_write  # noqa: E402
from denoiselab.sampling import sample_annealed_langevin, sample_implicit_prior  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent



def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "synthesis")
    p.add_argument("--n", type=int, default=4, help="samples per row")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--levels", type=int, default=10, help="Langevin: geometric levels (Song & Ermon: 10)")
    p.add_argument("--sigma-max", type=float, default=1.0, help="Langevin: first level (Song & Ermon: 1)")
    p.add_argument("--sigma-min", type=float, default=0.01, help="Langevin: last level (Song & Ermon: 0.01)")
    p.add_argument("--steps-each", type=int, default=100, help="Langevin: steps per level (Song & Ermon: 100)")
    p.add_argument("--step-scale", type=float, default=2e-5, help="Langevin: ε (Song & Ermon: 2e-5)")
    p.add_argument("--h0", type=float, default=0.01, help="Kadkhodaie–Simoncelli: first step fraction (paper: 0.01)")
    p.add_argument("--beta", type=float, default=0.5, help="Kadkhodaie–Simoncelli: noise injection (paper: 0.5)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--quick", action="store_true", help="2 samples of 32×32, 3 levels × 10 steps (ε = 5e-5), h0 = 0.1")
    args = p.parse_args()
    if args.quick:
        args.n, args.size, args.levels, args.steps_each, args.step_scale, args.h0 = 2, 32, 3, 10, 5e-5, 0.1
    torch.set_num_threads(args.threads)

    methods = {
        "annealed Langevin": (
            f"{args.levels} levels {args.sigma_max:g}→{args.sigma_min:g}, T={args.steps_each}, ε={args.step_scale:g}, from U[0,1]",
            lambda d, shape, steps: sample_annealed_langevin(
                d, shape, n_levels=args.levels, sigma_max=args.sigma_max, sigma_min=args.sigma_min,
                n_steps_each=args.steps_each, step_scale=args.step_scale, seed=args.seed, device=args.device)),
        "Kadkhodaie–Simoncelli": (
            f"h0={args.h0:g}, β={args.beta:g}, from N(0.5, 1), stop at σ=0.01",
            lambda d, shape, steps: sample_implicit_prior(
                d, shape, h0=args.h0, beta=args.beta, seed=args.seed, device=args.device,
                callback=lambda info: steps.add_(info["sigma"] > 0.01))),
    }
    rows, images = [], []
    for prior, channels in (("bfdncnn-gray", 1), ("bfdncnn-color", 3)):
        denoiser = load_denoiser(prior, device=args.device)
        for method, (settings, draw) in methods.items():
            counted, steps = CountedDenoiser(denoiser), torch.zeros(args.n, dtype=torch.long)
            start, cpu = time.perf_counter(), time.process_time()
            x = draw(counted, (args.n, channels, args.size, args.size), steps)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            images.append((f"{prior}\n{method}", x.clamp(0, 1).cpu()))
            rows.append({"prior": prior, "method": method, "settings": settings, "samples": args.n,
                         "size": args.size, "denoiser_calls": counted.calls, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
                         "ks_steps": " ".join(str(int(s)) for s in steps) if method.startswith("Kad") else "",
                         "out_of_range": round(float(((x < 0) | (x > 1)).float().mean()), 4),
                         "pixel_std": round(float(x.std(dim=(1, 2, 3)).mean()), 4)})
            print(rows[-1], flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = result_stem(args.out, args.device)
    fig, axes = plt.subplots(len(images), args.n, figsize=(1.6 * args.n + 1.6, 1.7 * len(images)), squeeze=False)
    for r, (label, x) in enumerate(images):
        for c in range(args.n):
            ax = axes[r, c]
            img = x[c].permute(1, 2, 0).numpy()
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
    fig.suptitle(f"Samples from our priors, {args.size}×{args.size}, seed {args.seed} (clipped to [0, 1])", fontsize=9)
    fig.tight_layout()
    atomic_write(stem.with_suffix(".png"), lambda tmp: fig.savefig(tmp, format="png", dpi=150))
    write_csv(stem.with_suffix(".csv"), rows)
    table = markdown_table(["prior", "method", "settings", "denoiser calls", "seconds (wall / CPU)", "K–S steps per image",
                            "pixels outside [0, 1]", "pixel std"],
                           [[r["prior"], r["method"], r["settings"], str(r["denoiser_calls"]), f"{r['seconds']:.0f} / {r['cpu_seconds']:.0f}",
                             r["ks_steps"] or "–", f"{100 * r['out_of_range']:.1f} %", f"{r['pixel_std']:.3f}"]
                            for r in rows])
    text = (f"# Synthesis: samples from the gray and colour priors\n\n{provenance(args.device)}\n"
            f"- {args.n} samples of {args.size}×{args.size} per (prior, method), one batch each, seed {args.seed}; "
            f"figure: `{stem.with_suffix('.png').name}` (clipped to [0, 1] for display); calls are batched "
            f"(one call denoises the whole batch); K–S steps: iterations until the image's estimated noise std "
            f"reached 0.01 (each image stops on its own; the batch runs until the last one stops)\n\n{table}\n")
    atomic_write(stem.with_suffix(".md"), lambda tmp: tmp.write_text(text))
    print(text)


if __name__ == "__main__":
    main()
