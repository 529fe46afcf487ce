"""White-noise methods on correlated camera noise: as they are, and on pixel-shuffled sub-images.

    nice -n 10 python benchmarks/correlated_noise.py [--limit 8] [--threads 1]

NLM, TV and wavelet thresholding take the noise as white. Camera noise after demosaicking and
processing is correlated between neighbouring pixels, and they leave its low-frequency part.
Under ``--sigma auto`` they now run through :class:`denoiselab.pixel_shuffle.PixelShuffleDenoiser`
(PD-2 + refinement, Zhou et al. 2020) where :func:`denoiselab.noise.estimate_real_noise` finds
the noise correlated; where it finds it white they run as before. Per 256² crop and method,
with the σ estimated on the noisy crop:

- ``white``: the method as it is (before this change);
- ``PD-2``: the same method and σ through PD-2 + refinement;
- ``auto``: what ``denoise --method M --sigma auto`` runs (PD-2 where the estimate says
  correlated, white where white).

Crops: the real pairs that the Table 1 CPU subset does not use and the simulated camera
pipeline, as in ``bm3d_correlated.py`` (whose BM3D table, told the noise's covariance, is the
comparison for these numbers). Rows go to ``benchmarks/results/correlated_noise/rows.csv`` as
they finish (a rerun skips finished crops); ``summary.md`` is rewritten from all rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import bm3d_correlated
from denoiselab.bench.tables import write_table_summary
from denoiselab.denoisers.classic import nlm_denoiser, tv_denoiser, wavelet_denoiser
from denoiselab.metrics import psnr
from denoiselab.noise import estimate_real_noise
from denoiselab.pixel_shuffle import PixelShuffleDenoiser

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "correlated_noise"
METHODS = {"nlm": nlm_denoiser, "tv": tv_denoiser, "wavelet": wavelet_denoiser}
FIELDS = ["group", "image", "correlated", "est. σ (/255)", "noisy",
          *(f"{m} {run}" for m in METHODS for run in ("white", "PD-2"))]


def _psnr(out: torch.Tensor, clean: np.ndarray) -> float:
    return float(psnr(np.clip(out[0].permute(1, 2, 0).numpy(), 0, 1), clean)[0])


def run_crop(noisy: np.ndarray, clean: np.ndarray) -> dict:
    y = torch.from_numpy(np.ascontiguousarray(noisy)).permute(2, 0, 1)[None].float()
    est = estimate_real_noise(y)
    sigma = float(est.sigma[0])
    row = {"correlated": int(bool(est.correlated[0])), "est. σ (/255)": 255 * sigma, "noisy": float(psnr(noisy, clean)[0])}
    for name, make in METHODS.items():
        row[f"{name} white"] = _psnr(make()(y, sigma), clean)
        row[f"{name} PD-2"] = _psnr(PixelShuffleDenoiser(make())(y, sigma), clean)
    return row


def summarise(rows: list[dict]) -> str:
    body = []
    for group, rs in bm3d_correlated.by_group(rows).items():
        cells = [group, str(len(rs)), f"{sum(int(r['correlated']) for r in rs)}/{len(rs)}",
                 f"{np.mean([r['noisy'] for r in rs]):.2f}"]
        for m in METHODS:
            white = np.array([r[f"{m} white"] for r in rs])
            pd = np.array([r[f"{m} PD-2"] for r in rs])
            auto = np.where([int(r["correlated"]) for r in rs], pd, white)
            cells += [f"{white.mean():.2f}", f"{pd.mean():.2f}", f"{auto.mean() - white.mean():+.2f}",
                      f"{int((pd < white).sum())}/{len(rs)}"]
        body.append(cells)
    head = ["group", "crops", "found correlated", "noisy"]
    for m in METHODS:
        head += [f"{m} white", f"{m} PD-2", f"{m} auto − white", f"{m}: PD-2 loses on"]
    intro = ("Mean PSNR (dB) per group of 256² crops (real: pairs not in the Table 1 CPU subset; sim camera: "
             "CBSD68 through the simulated camera pipeline). σ from `estimate_real_noise` on the noisy crop. "
             "*white*: the method as it is; *PD-2*: the same method and σ on stride-2 pixel-shuffled sub-images "
             "with refinement; *auto − white*: the gain of what `denoise --sigma auto` now runs (PD-2 only where "
             "the estimate finds the noise correlated); *PD-2 loses on*: crops where PD-2 is below white. "
             "BM3D told the estimated covariance, on the same crops: `benchmarks/results/bm3d_correlated/`.")
    return write_table_summary(OUT / "summary.md", "White-noise methods on correlated noise: pixel-shuffled sub-images",
                               intro, head, body)


if __name__ == "__main__":
    bm3d_correlated.main(run_crop, summarise, FIELDS, OUT, __doc__, limit=8)
