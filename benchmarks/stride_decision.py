"""How ``estimate_real_noise`` tells camera (correlated) noise from white noise: the stride decision.

``stride="auto"`` pixel-shuffles with stride 4 for camera noise and not at all (stride 1) for
white noise. Three rules are scored on the same images:

- *spectrum*: the flat patches' spectrum statistic ``correlation`` above 0.3 (the rule until
  2026-12-06);
- *gain*: the noise std measured at stride 4 over that at stride 1 above 2 (an earlier rule);
- *both* (the rule in use): ``correlation`` above 0.15 and that gain above 2.

Images: 30 training photos (every 14th of ../shared/data/train/color, never a test image), each
as a 128² and a 256² centre crop and whole, with white shot + read noise on the linear scale at
SVNR's three benchmark levels (the truth: white), and with Poisson-Gaussian noise through the
simulated camera pipeline of ``real_noise_estimation.py`` at two levels (the truth: correlated);
and the first 12 noisy images of SIDD, PolyU and CC at the same three sizes (correlated).

    nice -n 10 python benchmarks/stride_decision.py [--photos 30] [--real 12] [--data-root DIR]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from auto_noise import LEVELS
from real_noise_estimation import _load, _tensor, camera_pipeline
from denoiselab.bench.tables import markdown_table, provenance
from denoiselab.datasets import center_crop
from denoiselab.io import atomic_write
from denoiselab.noise import estimate_real_noise
from denoiselab.svnr import add_svnr_noise, to_linear, to_srgb

OUT = Path(__file__).parent / "results" / "real_noise_estimation"
SIZES = {"128²": 128, "256²": 256, "whole": None}
CAMERA_LEVELS = {"camera (a 0.002, b 1e-4)": (0.002, 1e-4), "camera light (a 0.0005, b 2e-5)": (0.0005, 2e-5)}


def _even(a: np.ndarray) -> np.ndarray:
    """`a` cropped to even height and width (the Bayer mosaic needs whole 2×2 cells)."""
    return np.ascontiguousarray(a[: a.shape[0] // 2 * 2, : a.shape[1] // 2 * 2])


def images(root: Path, photos: int, real: int):
    """(truth correlated?, group, size label, name, noisy (H, W, C) float32 in [0, 1])."""
    rng = np.random.default_rng(0)
    for i, path in enumerate(sorted((root / "train" / "color").glob("*.jpg"))[::14][:photos]):
        full = _even(_load(path))
        for size, side in SIZES.items():
            clean = full if side is None else np.ascontiguousarray(center_crop(full, side))
            x_lin = to_linear(_tensor(clean))
            for li, (level, (read, shot)) in enumerate(LEVELS.items()):
                y, _ = add_svnr_noise(x_lin, read, shot, generator=torch.Generator().manual_seed(10 * i + li))
                yield False, f"white {level} ({read:g}, {shot:g})", size, path.stem, \
                    to_srgb(y.clamp(0, 1))[0].permute(1, 2, 0).numpy()
            lin = np.power(clean, 2.2)
            for group, (a, b) in CAMERA_LEVELS.items():
                noisy_lin = lin + np.sqrt(a * lin + b) * rng.standard_normal(lin.shape).astype(np.float32)
                yield True, group, size, path.stem, camera_pipeline(noisy_lin)
    for ds in ("sidd_val", "polyu", "cc"):
        for path in sorted((root / "real" / ds / "noisy").iterdir())[:real]:
            full = _load(path)
            for size, side in SIZES.items():
                noisy = full if side is None else np.ascontiguousarray(center_crop(full, side))
                yield True, f"real {ds}", size, path.stem, noisy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=int, default=30, help="training photos (default 30)")
    p.add_argument("--real", type=int, default=12, help="noisy images per real data set (default 12)")
    p.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    start = time.perf_counter()
    for truth, group, size, name, noisy in images(args.data_root, args.photos, args.real):
        y = _tensor(noisy)
        est = estimate_real_noise(y)
        gain = float(estimate_real_noise(y, stride=4).sigma[0] / estimate_real_noise(y, stride=1).sigma[0])
        corr = float(est.correlation[0])
        rows.append(dict(truth=truth, group=group, size=size, name=name, corr=corr, gain=gain,
                         own_gain=float(est.shuffle_gain[0]),
                         rules={"spectrum": corr > 0.3, "gain": gain > 2.0, "both": bool(est.correlated[0])}))
    minutes = (time.perf_counter() - start) / 60

    head = ["group", "size", "images", "correlation: min, median, max", "gain σ₄/σ₁: min, median, max",
            "estimator's `shuffle_gain`: min, max (measured on)",
            "spectrum > 0.3: wrong", "gain > 2: wrong", "both (in use): wrong"]
    body = []
    for group in dict.fromkeys(r["group"] for r in rows):
        for size in SIZES:
            sel = [r for r in rows if r["group"] == group and r["size"] == size]
            c, g = np.array([r["corr"] for r in sel]), np.array([r["gain"] for r in sel])
            own = np.array([r["own_gain"] for r in sel if not np.isnan(r["own_gain"])])
            own_text = f"{own.min():.2f}, {own.max():.2f} ({len(own)})" if len(own) else "– (0)"
            wrong = {rule: sum(r["rules"][rule] != r["truth"] for r in sel) for rule in ("spectrum", "gain", "both")}
            body.append([group, size, str(len(sel)), f"{c.min():.2f}, {np.median(c):.2f}, {c.max():.2f}",
                         f"{g.min():.2f}, {np.median(g):.2f}, {g.max():.2f}", own_text,
                         *(str(wrong[k]) for k in ("spectrum", "gain", "both"))])
    totals = {rule: (sum(r["rules"][rule] and not r["truth"] for r in rows),
                     sum(r["truth"] and not r["rules"][rule] for r in rows)) for rule in ("spectrum", "gain", "both")}
    text = "\n".join([
        "# The stride decision of `estimate_real_noise`: white or camera noise", "",
        provenance("cpu"), "",
        "A row counts as wrong when the rule calls white noise correlated or camera noise white. "
        "The gain here is the σ of `estimate_real_noise` forced to stride 4 over forced to stride 1, measured "
        "on every image; the estimator itself measures it only where `correlation` is above 0.15, and at "
        "stride 1 on a step-2 patch grid (its `shuffle_gain`, which the rule in use compares with 2).", "",
        markdown_table(head, body), "",
        *(f"- {rule}: {w} white images called correlated, {c} camera images called white, of {len(rows)}."
          for rule, (w, c) in totals.items()),
        f"- {minutes:.1f} min on one CPU thread.", ""])
    stem = OUT / "stride_decision"
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write(stem.with_suffix(".md"), lambda tmp: tmp.write_text(text))
    print(text)


if __name__ == "__main__":
    main()
