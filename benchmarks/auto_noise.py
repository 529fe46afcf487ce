"""`auto` noise levels measured: SVNR's `--noise auto` and BM3D's `--sigma auto` (CLI against bench).

    python benchmarks/auto_noise.py            # about 6 minutes on one core
    python benchmarks/auto_noise.py --limit 2  # quicker
    python benchmarks/auto_noise.py --parts svnr-sim --start 3  # simulated part only, the next 3 images

Part 1, simulated: `--limit` CBSD68 and Kodak24 images from index `--start` (default 0; a later
start gives images the estimator was not looked at on), 128² centre crops as in
``benchmarks/svnr.py``, linear shot + read noise at that benchmark's three levels, white
(pixel-independent), each image its own seed. SVNR is run through ``denoiselab.denoise`` (the
CLI's path) once with the true (read, shot) and once with ``auto``; the table gives both PSNRs
in sRGB and the estimate.

Part 1a, whole photos (``--parts svnr-photo``): the same, with the noise drawn on the whole image
and SVNR run on it, as a user runs ``denoiselab denoise photo.png --method svnr`` (whose ``auto``
estimates on the photo, up to 2048² pixels of it).

Part 1b, told (``--parts svnr-told``): SVNR told the true read noise and the true shot noise
times 0.85 ... 0.3, and the other way round, on the 128² crops: whether the true parameters are
what the shipped model does best with.

Part 1c, sizes (``--parts sizes``): the estimate alone for the same noise on 128² and 256²
centre crops and on the whole image: how much of its error is the small crop.

Part 2, real: the bundled SIDD photo (``examples/sidd_18_1_noisy.png``) and the first
`--limit` pairs of each real dev set (256² centre crops) with ``auto``: the estimate, the
pixel-shuffle stride and darkening it chose, and the gain over the noisy input. The true (read,
shot) of a real pair is the a·x + b fit of its (noisy − clean)² on the linear scale.

Part 3, BM3D: the first `--limit` pairs of SIDD, PolyU and CC (256² centre crops, stored as
16-bit TIFFs so the file round trip adds no rounding) through ``denoiselab denoise --method bm3d
--sigma auto`` (the CLI itself) and through the bench's ``bm3d`` method: the two PSNRs must agree
(both call :func:`denoiselab.noise.estimate_real_noise`), and the gain over the noisy input.

Part 4, where a real pair's residual lives: std(noisy − clean) over the whole crop (the
"truth" of the estimator table) and within its flattest 20 %, middle 50–80 % and busiest 20 % of
pixels (gradient magnitude of the clean image, 7×7 mean), beside the estimate and the residual's
correlation with its neighbour 1 and 4 pixels to the right, and its *8-px grid step*: the mean jump of
the residual between neighbouring pixels on the strongest of the 8 column (and row) phases over the
median phase. JPEG codes 8×8 blocks independently, so its compression error jumps at block edges
(well above 1); sensor noise and demosaicking have no 8-px period (about 1).

Writes ``benchmarks/results/real_noise_estimation/<date>_<commit>_cpu_auto.md`` (``..._auto_from<start>.md`` with `--start`,
and the parts appended, ``..._auto_svnr-photo.md``, when they are not the default ones).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from denoiselab import denoise
from denoiselab.bench.tables import markdown_table, provenance, result_stem
from denoiselab.datasets import center_crop, open_pairs
from denoiselab.bench.methods import get_method
from denoiselab.cli.main import main as cli
from denoiselab.io import atomic_write, read_image, write_image
from denoiselab.metrics import psnr
from denoiselab.svnr import add_svnr_noise, to_linear, to_srgb
from denoiselab.svnr.weights import SHIPPED, SVNR_WEIGHTS_DIR

ROOT = Path(__file__).resolve().parent.parent
LEVELS = {"low": (0.01, 0.02), "medium": (0.04, 0.04), "high": (0.10, 0.05)}  # benchmarks/svnr.py's


def _score(out: np.ndarray, clean: np.ndarray) -> float:
    return float(psnr(out, clean)[0])


def _true_noise(noisy: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """(read, shot) of a real pair: least squares of (noisy − clean)² = b + a·x on the linear scale."""
    n, c = (to_linear(torch.from_numpy(a).permute(2, 0, 1)[None]).flatten().double() for a in (noisy, clean))
    a, b = np.linalg.lstsq(np.stack([c.numpy(), np.ones(c.numel())], 1), ((n - c) ** 2).numpy(), rcond=None)[0]
    return float(np.sqrt(max(b, 0.0))), float(np.sqrt(max(a, 0.0)))


#: SVNR weights the svnr parts run (None: denoise's default, svnr-s); main sets them from --svnr-model.
SVNR_WEIGHTS: Path | None = None


def _svnr(noisy: np.ndarray, **noise) -> tuple[np.ndarray, dict, float]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # above the training range: handled, reported below
        res = denoise(noisy, "svnr", return_details=True, svnr_weights=SVNR_WEIGHTS, **noise)
    return res.image, res.noise, time.perf_counter() - start


def _simulated_pairs(data_root: Path, limit: int, start: int = 0, size: int | None = 128):
    """(level, read, shot, "set/image", clean, noisy) of the simulated part: white shot + read noise
    on the linear scale of the `size`² centre crop (None: the whole image), each image and level
    its own seed (the same draw for every `start`), both images sRGB (H, W, 3) float32."""
    for dataset in ("CBSD68", "Kodak24"):
        for index, path in enumerate(sorted((data_root / "test" / "synthetic" / dataset).glob("*.png"))[:start + limit]):
            if index < start:
                continue
            clean = read_image(path).array
            clean = np.ascontiguousarray(clean if size is None else center_crop(clean, size))
            x_lin = to_linear(torch.from_numpy(clean).permute(2, 0, 1)[None])
            for li, (level, (read, shot)) in enumerate(LEVELS.items()):
                y, _ = add_svnr_noise(x_lin, read, shot, generator=torch.Generator().manual_seed(100 * index + li))
                noisy = to_srgb(y.clamp(0, 1))[0].permute(1, 2, 0).numpy().copy()
                yield level, read, shot, f"{dataset}/{path.stem}", clean, noisy


def simulated(data_root: Path, limit: int, start: int = 0, size: int | None = 128) -> str:
    """SVNR told the true noise against SVNR with ``auto`` on the `size`² centre crops (None: whole images)."""
    head = ["level (read, shot)", "image", "noisy", "SVNR, true noise", "SVNR, auto", "auto − true (dB)",
            "estimate (read, shot)"]
    body, diffs = [], []
    for level, read, shot, name, clean, noisy in _simulated_pairs(data_root, limit, start, size):
        given, _, _ = _svnr(noisy, read_noise=read, shot_noise=shot)
        auto, est, _ = _svnr(noisy)
        d = _score(auto, clean) - _score(given, clean)
        diffs.append(d)
        body.append([f"{level} ({read:g}, {shot:g})", name, f"{_score(noisy, clean):.2f}",
                     f"{_score(given, clean):.2f}", f"{_score(auto, clean):.2f}", f"{d:+.2f}",
                     f"{est['read'][0]:.3f}, {est['shot'][0]:.3f} (stride {est['stride'][0]})"])
    beyond = sum(d < -0.5 for d in diffs)
    return "\n".join([markdown_table(head, body), "",
                      f"auto − true: mean {np.mean(diffs):+.2f} dB, worst {min(diffs):+.2f} dB over {len(diffs)} images;"
                      f" {beyond} beyond −0.5 dB."])


SCALES = (0.85, 0.7, 0.5, 0.3)  # factors on one told parameter in the `told` part


def told(data_root: Path, limit: int, start: int = 0) -> str:
    """SVNR told the true noise with one parameter scaled: is the truth what the model wants to be told?"""
    gains: dict[tuple[str, str, float], list[float]] = {}
    for level, read, shot, _, clean, noisy in _simulated_pairs(data_root, limit, start):
        true = _score(_svnr(noisy, read_noise=read, shot_noise=shot)[0], clean)
        for f in SCALES:
            for which, noise in (("shot", dict(read_noise=read, shot_noise=f * shot)),
                                 ("read", dict(read_noise=f * read, shot_noise=shot))):
                gains.setdefault((level, which, f), []).append(_score(_svnr(noisy, **noise)[0], clean) - true)
    head = ["level (read, shot)", "told"] + [f"× {f:g}: mean (min, max)" for f in SCALES]
    body = [[f"{level} ({read:g}, {shot:g})", f"{which} × f, the other true"]
            + [f"{np.mean(g):+.2f} ({min(g):+.2f}, {max(g):+.2f})" for g in (gains[level, which, f] for f in SCALES)]
            for level, (read, shot) in LEVELS.items() for which in ("shot", "read")]
    return "\n".join([markdown_table(head, body), "",
                      "dB against SVNR told the true (read, shot), same crops and seeds; positive: better than told the truth."])


def sizes(data_root: Path, limit: int, start: int = 0) -> str:
    """The SVNR estimate alone on the simulated part's noise at 128² and 256² centre crops and on the whole image."""
    from denoiselab.svnr.denoise import estimate_svnr_noise

    crops = {"128²": 128, "256²": 256, "whole": None}
    head = ["level (read, shot)", "image"] + [f"{c}: read, shot" for c in crops]
    rows: dict[tuple[str, str], list[str]] = {}
    errors: dict[tuple[str, str], list[float]] = {}
    for label, size in crops.items():
        for level, read, shot, name, _, noisy in _simulated_pairs(data_root, limit, start, size):
            r, s, stride = estimate_svnr_noise(torch.from_numpy(noisy).permute(2, 0, 1)[None], return_stride=True)
            rows.setdefault((f"{level} ({read:g}, {shot:g})", name), []).append(
                f"{r:.3f}, {s:.3f}" + (" (stride 4)" if stride > 1 else ""))
            errors.setdefault((level, label), []).append(abs(s / shot - 1))
    body = [list(key) + cells for key, cells in rows.items()]
    summary = ["Median |shot / true − 1| per level: " + "; ".join(
        f"{level}: " + ", ".join(f"{label} {100 * np.median(errors[level, label]):.0f} %" for label in crops)
        for level in LEVELS) + "."]
    return "\n".join([markdown_table(head, body), ""] + summary)


def real(data_root: Path, limit: int) -> str:
    head = ["image", "true (read, shot)", "estimate (read, shot)", "stride", "darkened ×", "noisy", "SVNR, auto",
            "gain (dB)", "seconds"]
    items = [("examples", "sidd_18_1", *(read_image(ROOT / "examples" / f"sidd_18_1_{n}.png").array
                                         for n in ("noisy", "clean")))]
    for ds in ("sidd_val", "polyu", "cc"):
        for pair in open_pairs(data_root / "real" / ds).head(limit):
            items.append((ds, pair.name, *(center_crop(a, 256) for a in pair.load())))
    body, gains = [], {}
    for ds, name, noisy, clean in items:
        if noisy.shape[-1] != 3:
            continue
        out, est, secs = _svnr(noisy)
        gain = _score(out, clean) - _score(noisy, clean)
        gains.setdefault(ds, []).append(gain)
        r, s = _true_noise(noisy, clean)
        body.append([f"{ds}/{name}", f"{r:.3f}, {s:.3f}", f"{est['read'][0]:.3f}, {est['shot'][0]:.3f}",
                     str(est["stride"][0]), f"{est['exposure'][0]:.3g}", f"{_score(noisy, clean):.2f}",
                     f"{_score(out, clean):.2f}", f"{gain:+.2f}", f"{secs:.1f}"])
    means = ", ".join(f"{ds} {np.mean(g):+.2f} dB ({len(g)})" for ds, g in gains.items())
    return "\n".join([markdown_table(head, body), "", f"Mean gain over the noisy input: {means}."])


def bm3d(data_root: Path, limit: int) -> str:
    head = ["image", "noisy", "CLI `--sigma auto`", "bench `bm3d`", "CLI − bench (dB)", "gain (dB)"]
    body, gains, diffs = [], {}, []
    bench = get_method("bm3d")
    with tempfile.TemporaryDirectory() as tmp:
        for ds in ("sidd_val", "polyu", "cc"):
            for pair in open_pairs(data_root / "real" / ds).head(limit):
                noisy, clean = (center_crop(a, 256) for a in pair.load())
                src, dst = Path(tmp) / "in.tif", Path(tmp) / "out.tif"
                write_image(src, noisy, bit_depth=16)
                if cli(["denoise", str(src), "-o", str(dst), "--method", "bm3d", "--sigma", "auto"]) != 0:
                    raise SystemExit(f"the CLI failed on {ds}/{pair.name}")
                by_cli, by_bench = _score(read_image(dst).array, clean), _score(bench.run(noisy, clean, 0, "cpu"), clean)
                gain = by_cli - _score(noisy, clean)
                gains.setdefault(ds, []).append(gain)
                diffs.append(abs(by_cli - by_bench))
                body.append([f"{ds}/{pair.name}", f"{_score(noisy, clean):.2f}", f"{by_cli:.2f}", f"{by_bench:.2f}",
                             f"{by_cli - by_bench:+.3f}", f"{gain:+.2f}"])
    means = ", ".join(f"{ds} {np.mean(g):+.2f} dB" for ds, g in gains.items())
    return "\n".join([markdown_table(head, body), "",
                      f"Mean gain of `--sigma auto` over the noisy input: {means}; all three: "
                      f"{np.mean([v for g in gains.values() for v in g]):+.2f} dB. Largest |CLI − bench|: "
                      f"{max(diffs):.3f} dB."])


def _grid_step(d: np.ndarray) -> float:
    """Jump of `d` (H, W, C) across its strongest 8-px phase over the median phase, rows and columns averaged."""
    lum = d.mean(-1)
    ratios = []
    for axis in (0, 1):
        jump = np.abs(np.diff(lum, axis=axis)).mean(1 - axis)
        phases = np.array([jump[o::8].mean() for o in range(8)])
        ratios.append(phases.max() / np.median(phases))
    return float(np.mean(ratios))


def residuals(data_root: Path, limit: int) -> str:
    from scipy.ndimage import sobel, uniform_filter

    from denoiselab.noise import estimate_real_noise

    head = ["image", "std(noisy − clean)", "flattest 20 %", "middle", "busiest 20 %", "estimate", "corr. lag 1",
            "corr. lag 4", "8-px grid step"]
    body = []
    for ds in ("sidd_val", "polyu", "cc", "fmdd"):
        for pair in open_pairs(data_root / "real" / ds).head(limit):
            noisy, clean = (center_crop(a, 256) for a in pair.load())
            d = (noisy - clean).astype(np.float64)
            lum = clean.mean(-1)
            grad = uniform_filter(np.hypot(sobel(lum, 0), sobel(lum, 1)), 7)
            q20, q50, q80 = np.quantile(grad, [0.2, 0.5, 0.8])
            r = d - d.mean()
            corr = [float((r[:, k:] * r[:, :-k]).mean() / r.var()) for k in (1, 4)]
            est = float(estimate_real_noise(torch.from_numpy(noisy).permute(2, 0, 1)[None]).sigma[0])
            stds = [d.std(), d[grad <= q20].std(), d[(grad > q50) & (grad <= q80)].std(), d[grad > q80].std(), est]
            body.append([f"{ds}/{pair.name}"] + [f"{255 * v:.2f}" for v in stds] + [f"{c:.2f}" for c in corr]
                        + [f"{_grid_step(d):.2f}"])
    return "\n".join([markdown_table(head, body), "", "Stds on the 0–255 scale, 256² centre crops."])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get("DENOISELAB_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--limit", type=int, default=3)
    p.add_argument("--start", type=int, default=0, help="index of the first simulated image (the parts svnr*, sizes)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "real_noise_estimation")
    p.add_argument("--parts", nargs="+", choices=("svnr", "svnr-sim", "svnr-photo", "svnr-told", "sizes", "bm3d", "residuals"), default=["svnr", "bm3d", "residuals"])
    p.add_argument("--svnr-model", choices=sorted(SHIPPED), default="svnr",
                   help="the shipped SVNR model the svnr parts run (svnr-truemap: the first svnr-s)")
    args = p.parse_args()
    global SVNR_WEIGHTS
    SVNR_WEIGHTS = SVNR_WEIGHTS_DIR / f"{SHIPPED[args.svnr_model]}.safetensors"
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    sections = ["# `auto` noise levels: SVNR against the true noise and on real photos; BM3D from the CLI and the bench;"
                " where real residuals live", "", provenance("cpu"), ""]
    images = f"images {args.start}-{args.start + args.limit - 1} of each set"
    if {"svnr", "svnr-sim", "svnr-photo"} & set(args.parts):
        sections += [f"- shipped model `{args.svnr_model}` ({SHIPPED[args.svnr_model]}); one sample; PSNR (dB) in sRGB of "
                     "the output against the clean image", ""]
    for part, size, where in (("svnr-sim", 128, "128² crops"), ("svnr-photo", None, "whole images")):
        if part in args.parts or (part == "svnr-sim" and "svnr" in args.parts):
            sections += [f"## Simulated white shot + read noise ({where}, {images}): auto against the true noise", "",
                         simulated(args.data_root, args.limit, args.start, size), ""]
    if "svnr" in args.parts:
        sections += ["## Real photos (256² centre crops; the bundled photo whole): auto", "",
                     real(args.data_root, args.limit), ""]
    if "svnr-told" in args.parts:
        sections += [f"## SVNR told the true noise with the shot or the read term scaled (128² crops, {images})", "",
                     told(args.data_root, args.limit, args.start), ""]
    if "sizes" in args.parts:
        sections += [f"## The SVNR estimate against the crop size (simulated noise, {images})", "",
                     sizes(args.data_root, args.limit, args.start), ""]
    if "bm3d" in args.parts:
        sections += ["## BM3D with `--sigma auto` from the CLI and from `bench` (256² centre crops)", "",
                     bm3d(args.data_root, args.limit), ""]
    if "residuals" in args.parts:
        sections += ["## Where the residual of a real pair lives", "", residuals(args.data_root, args.limit), ""]
    text = "\n".join(sections)
    parts = "" if args.parts == p.get_default("parts") else "_" + "-".join(args.parts)
    parts += "" if args.svnr_model == "svnr" else f"_{args.svnr_model}"
    path = Path(f"{result_stem(args.out, 'cpu')}_auto{f'_from{args.start}' if args.start else ''}{parts}.md")
    atomic_write(path, lambda tmp: tmp.write_text(text))
    print(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
