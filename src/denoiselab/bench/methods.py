"""The methods ``denoiselab bench`` can run on real noisy/clean pairs, and the paper's Table 1.

Each method is a :class:`BenchMethod`: a function ``run(noisy, clean, seed, device) ->
restored`` over float32 (H, W, C) arrays (``per_dataset`` methods also take ``dataset=``). Only oracle methods (DIP's best iteration, which
the ScoreDVI paper picks with the ground truth) look at ``clean``; every other method gets it
and ignores it. Heavy imports happen inside the functions, so listing methods is cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import DenoiselabError

#: Cheng et al., ICCV 2023, Table 1 (PSNR dB, SSIM), single-image methods. Full images; SIDD
#: validation = 1280 blocks; FMDD = its test_mix (our FMDD pairs are single raw frames).
PAPER_TABLE1: dict[str, dict[str, tuple[float, float]]] = {
    "BM3D": {"sidd": (25.65, 0.475), "fmdd": (30.06, 0.771), "polyu": (37.40, 0.953), "cc": (35.19, 0.858)},
    "DIP": {"sidd": (32.11, 0.740), "fmdd": (32.90, 0.854), "polyu": (37.17, 0.912), "cc": (35.61, 0.912)},
    "Self2Self": {"sidd": (29.46, 0.595), "fmdd": (30.76, 0.695), "polyu": (38.33, 0.962), "cc": (37.44, 0.948)},
    "PD-denoising": {"sidd": (33.97, 0.820), "fmdd": (33.01, 0.856), "polyu": (37.04, 0.940), "cc": (35.85, 0.923)},
    "NN+denoiser": {"fmdd": (32.21, 0.831), "polyu": (37.66, 0.956), "cc": (36.52, 0.943)},
    "APBSN-single": {"sidd": (30.90, 0.818), "fmdd": (28.43, 0.804), "polyu": (29.61, 0.897), "cc": (27.72, 0.891)},
    "ScoreDVI": {"sidd": (34.75, 0.856), "fmdd": (33.10, 0.865), "polyu": (37.77, 0.959), "cc": (37.09, 0.945)},
}


@dataclass(frozen=True)
class BenchMethod:
    """A named way to restore one noisy image; `paper` names its row in :data:`PAPER_TABLE1`."""

    name: str
    run: Callable[..., np.ndarray]
    paper: str | None
    description: str
    per_dataset: bool = False  # run() also takes dataset=<folder name> (for the paper's per-dataset rules)


def _noisy(noisy, clean, seed, device):
    return noisy


def _bm3d(sigma: str):
    def run(noisy, clean, seed, device):
        from ..baselines.bm3d_est import bm3d_estimated

        return bm3d_estimated(noisy, sigma=sigma)

    return run


def _pd(noisy, clean, seed, device):
    from ..baselines.pd_denoising import pd_denoising

    return pd_denoising(noisy, device=device)


#: NN+BM3D on a CPU budget: 5 ADMM sweeps of 50 Adam steps with 8-channel, 3-level UNets that start
#: as the identity, instead of the paper's 30-50 sweeps of 500 steps with 13.4 M-parameter UNets
#: (about 2 min per 256² colour crop on one core instead of hours).
NN_BM3D_CPU = dict(outer_iterations=5, inner_iterations=50, base=8, depth=3, identity_start=True)


def _baseline(module: str, **settings):
    """run(noisy, clean, seed, device) -> ``denoiselab.baselines.<module>.<module>(noisy, seed=,
    device=, **settings)``, imported at the first call (listing methods stays cheap)."""
    def run(noisy, clean, seed, device):
        fn = getattr(importlib.import_module(f"..baselines.{module}", __package__), module)
        return fn(noisy, seed=seed, device=device, **settings)

    return run


def _dip_oracle(noisy, clean, seed, device):
    from ..baselines.dip import dip

    return dip(noisy, reference=clean, seed=seed, device=device)


#: CPU budgets of the slow single-image baselines: about 20 minutes per 256² RGB crop on 2 cores,
#: as iteration counts (the result must not depend on the machine's speed), read off their
#: convergence curves (``benchmarks/baseline_curves.py``: 1 thread, 256² dev crops; 2 threads run
#: about 1.65× faster on these nets). Everything else is the authors' setting; each stops after a
#: fixed iteration count, as its authors' code does (DIP's 1800 iterations are its early stop).
#: Runs of 20 minutes show their own progress bar (iterations) under bench's.
#: The curves: DIP 4.3 s, Self2Self 1.1 s, APBSN-single 48 s per iteration on one thread.
DIP_CPU = dict(iterations=450)  # authors: 1800
SELF2SELF_CPU = dict(iterations=1700)  # authors: 150 000
# APBSN-single: 40 steps of the authors' 128-channel network left it barely trained (13.2 and 12.1 dB on
# SIDD 10_1 and 11_1); a quarter of the width at 10x the learning rate trains in that time (curve
# "apbsn-single-w32": SIDD 10_1 31.38 dB at 500 steps, 1744 s on one thread; 30.67 at 608).
APBSN_CPU = dict(iterations=500, width=32, lr=1e-3)  # authors (single image, ScoreDVI §4.2): 1000, 128, 1e-4


def paper_beta(dataset: str) -> float | str:
    """The paper's β for a dataset folder name (``sidd_val`` → SIDD's 0.02, ...); ``"auto"`` if unknown."""
    from ..scoredvi.presets import PAPER_BETA

    key = dataset.lower().split("_")[0]
    return PAPER_BETA.get(key, "auto")


def _scoredvi(preset: str, beta_per_dataset: bool = False):
    def run(noisy, clean, seed, device, dataset: str = ""):
        from ..scoredvi.core import scoredvi

        beta = paper_beta(dataset) if beta_per_dataset else "auto"
        return scoredvi(noisy, preset=preset, beta=beta, seed=seed, device=device, progress=False,
                        return_record=False).image

    return run


METHODS: dict[str, BenchMethod] = {m.name: m for m in [
    BenchMethod("noisy", _noisy, None, "the noisy input itself (reference row)"),
    BenchMethod("bm3d", _bm3d("auto"), None,
                ("BM3D/CBM3D as denoise --sigma auto: σ from estimate_real_noise and, where the noise is correlated, "
                 "its estimated covariance (BM3D for correlated noise, Mäkinen et al. 2020)")),
    BenchMethod("bm3d-white", _bm3d("white"), "BM3D",
                "BM3D/CBM3D for white noise, σ from estimate_real_noise (the paper's baseline)"),
    BenchMethod("pd-denoising", _pd, "PD-denoising", "PD-2 + our blind BF-DnCNN + PD refinement"),
    BenchMethod("nn-bm3d", _baseline("nn_denoiser"), "NN+denoiser", "NN+BM3D (Zheng et al. 2021), the authors' settings (GPU)"),
    BenchMethod("nn-bm3d-cpu", _baseline("nn_denoiser", **NN_BM3D_CPU), "NN+denoiser",
                "NN+BM3D on a CPU budget: 5 sweeps × 50 steps, small identity-start UNets"),
    BenchMethod("dip", _baseline("dip"), None, "deep image prior, the authors' fixed 1800 iterations"),
    BenchMethod("dip-cpu", _baseline("dip", **DIP_CPU, progress=True), None,
                ("deep image prior on a CPU budget: 450 of the authors' 1800 iterations (about 20 min per 256² RGB "
                "crop on 2 cores); on the convergence curves DIP on SIDD 10_1 run to the authors' 1800 peaks near 500 "
                "(31.15 dB) and falls to 27.59 at 1000 and 24.32 at 1800 (fitting the noise), so there this budget is 7 dB "
                "*above* the authors' count; on PolyU, CC and FMDD the curves (to 450–640 iterations) were still rising")),
    BenchMethod("dip-oracle", _dip_oracle, "DIP", "deep image prior, best iteration picked with the ground truth (as the paper)"),
    BenchMethod("self2self", _baseline("self2self"), "Self2Self", "Self2Self with dropout ensemble"),
    BenchMethod("self2self-cpu", _baseline("self2self", **SELF2SELF_CPU, progress=True), "Self2Self",
                ("Self2Self on a CPU budget: 1700 of the authors' 150 000 iterations; on the curves, after 1000 it is 3–18 dB "
                "below the paper's Self2Self row (and below the noisy input except on SIDD): far from converged")),
    BenchMethod("apbsn-single", _baseline("apbsn"), "APBSN-single", "AP-BSN trained on the one noisy image (PD 5 / 2)"),
    BenchMethod("apbsn-single-cpu", _baseline("apbsn", **APBSN_CPU, progress=True), "APBSN-single",
                ("APBSN-single on a CPU budget: 500 steps of a 32-channel network (the authors': 128) at learning rate "
                "1e-3 (authors: 1e-4); on the curve of SIDD 10_1 it reaches 31.38 dB at 500 steps (the paper's SIDD row: "
                "30.90), while the authors' network after 28 steps (the same time) is at 11.35; curves of the other data "
                "sets not measured yet")),
    BenchMethod("scoredvi-fast", _scoredvi("fast"), "ScoreDVI", "ScoreDVI, CPU preset"),
    BenchMethod("scoredvi-paper", _scoredvi("paper", beta_per_dataset=True), "ScoreDVI",
                "ScoreDVI, the paper's settings and priors, β per dataset as §4.1", per_dataset=True),
]}


def get_method(name: str) -> BenchMethod:
    """The :class:`BenchMethod` called `name`; a one-line error lists the known ones otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise DenoiselabError(f"unknown bench method {name!r}; known: {', '.join(METHODS)}") from None
