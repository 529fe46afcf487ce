"""Real-noise benchmark: methods × noisy/clean datasets -> results.csv, summary.md, figure.png.

Protocol (ScoreDVI's): each method restores the noisy image (optionally its centre crop) on
its own; PSNR/SSIM of the output clipped to [0, 1] against the clean image, data range 1
(the 0–255 numbers for 8-bit images; SSIM over colour channels); seconds = wall time of the
method call only (reading, cropping and metrics are outside).

The run resumes: a row of ``results.csv`` with the same method, dataset, image and crop is
not recomputed, and the CSV is rewritten atomically after every new row, so an interrupted
run loses at most the image it was working on. Several processes may share one results
folder (e.g. one per method, to use every core): each new row is merged into the file under
an exclusive lock (``results.csv.lock``), never overwriting another process's rows.
"""

from __future__ import annotations

import fcntl
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .._utils import resolve_device
from ..datasets import PairedDataset, benchmark_key, center_crop, open_pairs
from ..errors import DenoiselabError
from ..io import atomic_write, write_image
from ..metrics import psnr, ssim
from .methods import PAPER_TABLE1, get_method
from .tables import device_label, markdown_table, provenance, read_csv, write_csv

TEXT_COLUMNS = ("method", "dataset", "image", "device")


def _key(row: dict) -> tuple:
    return row["method"], row["dataset"], row["image"], row["crop"]


def _read_rows(path: Path) -> list[dict]:
    """Rows of a results.csv (none if it does not exist yet), names as text, crop and seed as int."""
    rows = read_csv(path, TEXT_COLUMNS) if path.exists() else []
    for r in rows:
        r["crop"], r["seed"] = int(r["crop"]), int(r["seed"])
    return rows


@contextmanager
def _locked(path: Path):
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _merge_row(results: Path, row: dict) -> None:
    """Add `row` to results.csv (re-read under the lock, so concurrent runs keep each other's rows)."""
    with _locked(results):
        rows = _read_rows(results)
        if _key(row) not in {_key(r) for r in rows}:
            rows.append(row)
            write_csv(results, rows)


def _copy_pictures(src_dir: Path, out: Path, row: dict) -> None:
    src = src_dir / "images" / row["dataset"] / row["image"]
    dst = out / "images" / row["dataset"] / row["image"]
    for name in ("noisy", "clean", row["method"]):
        if (src / f"{name}.png").is_file() and not (dst / f"{name}.png").exists():
            dst.mkdir(parents=True, exist_ok=True)
            data = (src / f"{name}.png").read_bytes()
            atomic_write(dst / f"{name}.png", lambda tmp, data=data: tmp.write_bytes(data))


def _as_image(out, like: np.ndarray, method: str) -> np.ndarray:
    arr = np.asarray(out.detach().cpu() if isinstance(out, torch.Tensor) else out, dtype=np.float32)
    if arr.size != like.size:
        raise DenoiselabError(f"method {method} returned shape {arr.shape} for an input of shape {like.shape}")
    arr = arr.reshape(like.shape)
    if not np.isfinite(arr).all():
        raise DenoiselabError(f"method {method} returned NaN or infinite values")
    return arr


def run_real_benchmark(methods: list[str], datasets: list[str | Path], out_dir: str | Path, *, device: str = "auto",
                       limit: int | None = None, crop: int | None = None, seed: int = 0, figure_images: int = 1,
                       reuse: list[str | Path] = (), shard: tuple[int, int] | None = None,
                       skip: int = 0, progress: bool = True, compute: bool = True) -> dict[str, Path]:
    """Run `methods` on every pair of `datasets`, resuming from ``out_dir/results.csv``.

    Parameters
    ----------
    methods : list of str
        Names from :data:`denoiselab.bench.methods.METHODS`.
    datasets : list of paths
        Anything :func:`denoiselab.datasets.open_pairs` opens.
    out_dir : path
        Created if missing; holds results.csv, summary.md, figure.png and images/.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``.
    limit : int, optional
        First N pairs (sorted names) of each dataset (after `skip`).
    crop : int, optional
        Side of the centre crop in pixels (default: whole images).
    seed : int
        Seed passed to every method.
    figure_images : int
        How many images per dataset get their outputs saved (images/) and shown in figure.png.
    reuse : list of paths
        results.csv files of earlier runs: their rows for the same method, dataset, image, crop
        and seed are taken over instead of recomputed (same code and seed, same result), e.g.
        to build a subset table from a run over all images.
    shard : (i, n), optional
        Compute only every n-th image (counted over all datasets), starting at i: run n
        processes with shards 0..n-1 on one results folder to use n cores.
    skip : int
        Leave out the first `skip` pairs of each dataset (e.g. a held-out set after a dev subset).
    progress : bool
        tqdm bar over (image, method) runs.
    compute : bool
        False: run nothing, only write the summary and figure from the rows already there (a
        partial table while long rows are still being filled in by other processes).

    Returns
    -------
    dict
        Paths of ``results``, ``summary`` and (when any images were saved) ``figure``.
    """
    runs = [get_method(m) for m in dict.fromkeys(methods)]
    if not runs:
        raise DenoiselabError("no method given; pass at least one --method")
    sets: list[PairedDataset] = [open_pairs(d).head(limit, skip) for d in datasets]
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise DenoiselabError(f"two datasets share a name ({', '.join(names)}); results are keyed by folder name")
    if crop is not None and crop < 16:
        raise DenoiselabError(f"crop={crop} is too small; use at least 16 pixels (or no crop)")
    if shard is not None and not (len(shard) == 2 and 0 <= shard[0] < shard[1]):
        raise DenoiselabError(f"shard={shard!r}: expected (i, n) with 0 <= i < n")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.csv"
    with _locked(results):
        done = {_key(r) for r in _read_rows(results)}
    dev = resolve_device(device)
    crop_id = crop or 0
    wanted = {(m.name, s.name, p.name, crop_id) for s in sets for p in s for m in runs}
    shown = {(s.name, p.name) for s in sets for p in s.pairs[:figure_images]}
    for path in reuse:
        for row in _read_rows(Path(path)):
            if _key(row) in wanted and row["seed"] == seed and _key(row) not in done:
                _merge_row(results, row)
                done.add(_key(row))
                if (row["dataset"], row["image"]) in shown:  # the figure's pictures come along
                    _copy_pictures(Path(path).parent, out, row)
    images = [(s, i, p) for s in sets for i, p in enumerate(s)] if compute else []
    if shard is not None:
        images = images[shard[0]::shard[1]]
    todo = [(s, i, p, m) for s, i, p in images for m in runs if (m.name, s.name, p.name, crop_id) not in done]
    bar = tqdm(total=len(todo), disable=not progress, desc="bench", unit="run")
    loaded: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for s, index, pair, method in todo:
        if (s.name, pair.name) not in loaded:
            loaded.clear()  # one image in memory at a time
            noisy, clean = pair.load()
            loaded[s.name, pair.name] = center_crop(noisy, crop), center_crop(clean, crop)
        noisy, clean = loaded[s.name, pair.name]
        bar.set_postfix_str(f"{method.name} {s.name}/{pair.name}")
        start = time.perf_counter()
        extra = {"dataset": s.name} if method.per_dataset else {}
        restored = _as_image(method.run(noisy.copy(), clean, seed, str(dev), **extra), noisy, method.name)
        seconds = time.perf_counter() - start
        _merge_row(results, {"method": method.name, "dataset": s.name, "image": pair.name, "crop": crop_id,
                             "psnr": round(float(psnr(restored, clean)[0]), 4),
                             "ssim": round(float(ssim(restored, clean)[0]), 5),
                             "seconds": round(seconds, 3), "device": device_label(dev), "seed": seed})
        if index < figure_images:
            folder = out / "images" / s.name / pair.name
            folder.mkdir(parents=True, exist_ok=True)
            for name, image in (("noisy", noisy), ("clean", clean), (method.name, restored)):
                if name == method.name or not (folder / f"{name}.png").exists():  # inputs once per image
                    write_image(folder / f"{name}.png", image)
        bar.update()
    bar.close()
    with _locked(results):
        rows = _read_rows(results)
    selected = {(s.name, p.name) for s in sets for p in s}
    current = [r for r in rows if (r["dataset"], r["image"]) in selected and r["crop"] == crop_id
               and r["method"] in {m.name for m in runs}]
    paths = {"results": results}
    text = summarize(current, [m.name for m in runs], names, crop=crop, device=dev)
    paths["summary"] = atomic_write(out / "summary.md", lambda tmp: tmp.write_text(text))
    figure = make_figure(out, [m.name for m in runs], names, current)
    if figure is not None:
        paths["figure"] = figure
    return paths


def summarize(rows: list[dict], methods: list[str], datasets: list[str], *, crop: int | None = None,
              device: torch.device | str = "cpu") -> str:
    """Markdown: mean PSNR/SSIM per method × dataset beside the paper's Table 1, mean seconds, and
    what each method is (with its budget where that is not its authors')."""
    cells: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        cells[r["method"], r["dataset"]].append(r)

    def mean(method: str, dataset: str, field: str) -> float | None:
        vals = [float(r[field]) for r in cells.get((method, dataset), [])]
        return sum(vals) / len(vals) if vals else None

    keys = [benchmark_key(d) for d in datasets]
    best = {d: max((mean(m, d, "psnr") or -1e9 for m in methods if m != "noisy"), default=None) for d in datasets}
    header = ["method"] + [f"{d} (n)" for d in datasets]
    quality, speed = [], []
    for m in methods:
        paper = PAPER_TABLE1.get(get_method(m).paper or "", {})
        row, srow = [m], [m]
        for d, key in zip(datasets, keys):
            p, s, n = mean(m, d, "psnr"), mean(m, d, "ssim"), len(cells.get((m, d), []))
            ours = f"{p:.2f}/{s:.3f} ({n})" if p is not None else "–"
            if p is not None and m != "noisy" and p == best[d]:
                ours = f"**{ours}**"
            ref = paper.get(key) if key else None
            row.append(ours + (f" · paper {ref[0]:.2f}/{ref[1]:.3f}" if ref else ""))
            sec = mean(m, d, "seconds")
            srow.append(f"{sec:.1f}" if sec is not None else "–")
        quality.append(row)
        speed.append(srow)
    where = f"{crop}×{crop} centre crops" if crop else "whole images"
    return "\n".join([
        "# Real-noise benchmark (single-image methods)", "", provenance(device),
        f"- data: {', '.join(datasets)}; {where}; PSNR/SSIM of the output clipped to [0, 1], data range 1",
        "- paper: Cheng et al., ICCV 2023, Table 1 (full images, SIDD validation = 1280 blocks, FMDD = test_mix); "
        "not the same images as ours, shown for orientation",
        "", "## PSNR (dB) / SSIM, ours (n images; best in bold) · paper", "", markdown_table(header, quality),
        "", "## Seconds per image (wall time of the method call)", "",
        markdown_table(["method"] + datasets, speed), "",
        "## Methods (and their budgets)", "", *(f"- `{m}`: {get_method(m).description}" for m in methods), "",
    ])


def make_figure(out: Path, methods: list[str], datasets: list[str], rows: list[dict], zoom: int = 96) -> Path | None:
    """figure.png: for each saved image a row of zoomed centre crops, noisy / each method / clean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import read_image

    score = {(r["method"], r["dataset"], r["image"]): (float(r["psnr"]), float(r["ssim"])) for r in rows}
    cases = []
    for d in datasets:
        folder = out / "images" / d
        if folder.is_dir():
            cases += [(d, p.name, p) for p in sorted(folder.iterdir()) if (p / "noisy.png").is_file() and (p / "clean.png").is_file()]
    if not cases:
        return None
    columns = ["noisy", *[m for m in methods if m != "noisy"], "clean"]
    fig, axes = plt.subplots(len(cases), len(columns), figsize=(1.9 * len(columns), 2.4 * len(cases)), squeeze=False)
    for i, (d, image, folder) in enumerate(cases):
        for j, col in enumerate(columns):
            ax = axes[i, j]
            ax.set_axis_off()
            path = folder / f"{col}.png"
            if not path.is_file():
                continue
            arr = center_crop(read_image(path).array, zoom)
            ax.imshow(arr[..., 0] if arr.shape[2] == 1 else arr, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            label = col if col != "noisy" else f"noisy\n{d}/{image}"
            s = score.get((col, d, image))
            ax.set_title(label + (f"\n{s[0]:.2f} dB / {s[1]:.3f}" if s else ""), fontsize=7)
    fig.tight_layout()
    path = out / "figure.png"
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return path
