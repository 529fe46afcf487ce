"""Synthetic Gaussian denoising benchmark: our priors beside BM3D given the true σ.

Protocol (as in the DnCNN papers): AWGN of std σ (0–255 scale) added in float to the clean
8-bit image with a fixed seed per (image, σ), so every method sees the same noisy input; no
clipping of the noisy image; PSNR/SSIM of the output clipped to [0, 1] with data range 1 (equal
to the 0–255 numbers). Speed is megapixels per second of the denoiser call alone (after a warm-up
call), I/O and noise generation outside the timed region.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..denoisers import load_denoiser
from ..io import read_image, to_tensor
from ..metrics import psnr, ssim
from ..noise import add_gaussian_noise
from ..training.patches import list_images
from .tables import markdown_table

# Published numbers to print beside ours: (dataset, method) -> {sigma255: psnr}.
REFERENCE = {
    ("CBSD68", "CDnCNN-B"): {15: 33.89, 25: 31.23, 50: 27.92},
    ("CBSD68", "CBM3D"): {25: 30.71},
    ("BSD68", "DnCNN-B"): {15: 31.61, 25: 29.16, 50: 26.23},
}


@dataclass(frozen=True)
class Dataset:
    name: str
    folder: Path
    channels: int


def noisy_copy(x: torch.Tensor, sigma255: float, seed: int, index: int) -> torch.Tensor:
    """The benchmark's noisy observation of image number `index`: same for every method."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + index * 1_009 + int(round(sigma255 * 10)))
    return add_gaussian_noise(x, sigma255 / 255, generator=gen)


def run_gaussian_benchmark(datasets: list[Dataset], methods: dict[int, list[str]], sigmas255: list[float], *,
                           seed: int = 0, limit: int | None = None, bm3d_limit: int | None = None,
                           device: str | torch.device = "cpu", progress: bool = True, precision: str = "fp32",
                           done: list[dict] = (), on_row=None) -> list[dict]:
    """Denoise every image of `datasets` at every σ with each method for its channel count.

    Parameters
    ----------
    datasets : list of Dataset
        Folders of clean 8-bit images and their channel count (1 gray, 3 colour).
    methods : dict
        Channel count -> denoiser names (from ``list_denoisers``); ``bm3d`` is given the true σ.
    sigmas255 : list of float
        Noise std on the 0–255 scale.
    limit : int, optional
        Only the first `limit` images (sorted by name) of each dataset.
    bm3d_limit : int, optional
        BM3D only on the first `bm3d_limit` images (it takes ~10–100 s per image on one core).
    precision : {"fp32", "bf16", "auto"}
        Arithmetic of the networks (see :func:`~denoiselab.denoisers.load_denoiser`).
    done : list of dict
        Rows of an earlier, interrupted run: those (method, dataset, image, σ) are not redone.
    on_row : callable, optional
        Called with each new row as soon as it is measured (e.g. to append it to a CSV).

    Returns
    -------
    rows : list of dict
        One per (method, dataset, image, σ): psnr (dB), ssim, seconds, megapixels, device.
    """
    rows = []
    device = torch.device(device)
    finished = {(r["method"], r["dataset"], r["image"], float(r["sigma255"])) for r in done}
    for ds in datasets:
        files = list_images(ds.folder)[:limit]
        images = [to_tensor(read_image(p).array) for p in files]
        for name in methods[ds.channels]:
            denoiser = load_denoiser(name, device=device, precision=precision)
            n = min(len(files), bm3d_limit) if (name == "bm3d" and bm3d_limit) else len(files)
            with torch.inference_mode():
                denoiser(images[0][..., :64, :64].to(device), 0.1)  # warm-up
                for s255 in sigmas255:
                    todo = [i for i in range(n) if (name, ds.name, files[i].name, float(s255)) not in finished]
                    for i in tqdm(todo, desc=f"{name} {ds.name} σ={s255:g}", disable=not progress, leave=False):
                        x = images[i]
                        y = noisy_copy(x, s255, seed, i).to(device)
                        if device.type == "cuda":
                            torch.cuda.synchronize()
                        start = time.perf_counter()
                        x_hat = denoiser(y, s255 / 255)
                        if device.type == "cuda":
                            torch.cuda.synchronize()
                        seconds = time.perf_counter() - start
                        x_hat = x_hat.float().cpu()
                        rows.append({
                            "method": name, "dataset": ds.name, "image": files[i].name, "sigma255": s255,
                            "psnr": round(float(psnr(x_hat, x)[0]), 4), "ssim": round(float(ssim(x_hat, x)[0]), 5),
                            "seconds": round(seconds, 4), "megapixels": x.shape[-1] * x.shape[-2] / 1e6,
                            "device": str(device), "seed": seed, "precision": getattr(denoiser, "precision", "fp32"),
                        })
                        if on_row is not None:
                            on_row(rows[-1])
    return rows


def summarize(rows: list[dict]) -> str:
    """Markdown: per dataset, mean PSNR / SSIM per method and σ, speed, and the published references.

    When a method ran on fewer images (BM3D's subset), every method is also summarised on that
    subset so the comparison is like for like.
    """
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        drows = [r for r in rows if r["dataset"] == dataset]
        sigmas = sorted({r["sigma255"] for r in drows})
        methods = list(dict.fromkeys(r["method"] for r in drows))
        counts = {m: len({r["image"] for r in drows if r["method"] == m}) for m in methods}
        subsets = [("all images", None)]
        if len(set(counts.values())) > 1:
            n_min = min(counts.values())
            keep = {r["image"] for r in drows if r["method"] == min(counts, key=counts.get)}
            subsets.append((f"the {n_min} images every method ran on", keep))
        for label, keep in subsets:
            header = ["method", "images"] + [f"σ={s:g}" for s in sigmas] + ["MP/s"]
            table = []
            for m in methods:
                mrows = [r for r in drows if r["method"] == m and (keep is None or r["image"] in keep)]
                if keep is None and counts[m] < max(counts.values()):
                    continue
                cells = []
                for s in sigmas:
                    sr = [r for r in mrows if r["sigma255"] == s]
                    cells.append(f"{np.mean([r['psnr'] for r in sr]):.2f} / {np.mean([r['ssim'] for r in sr]):.4f}" if sr else "–")
                mp_s = sum(r["megapixels"] for r in mrows) / max(sum(r["seconds"] for r in mrows), 1e-9)
                table.append([m, str(len({r['image'] for r in mrows}))] + cells + [f"{mp_s:.3g}"])
            if keep is None:
                for (ds, ref), vals in REFERENCE.items():
                    if ds == dataset:
                        table.append([f"*{ref} (published)*", "all"] + [f"{vals[s]:.2f}" if s in vals else "" for s in sigmas] + [""])
            out.append(f"### {dataset}, {label}: PSNR (dB) / SSIM\n\n" + markdown_table(header, table))
    return "\n\n".join(out)
