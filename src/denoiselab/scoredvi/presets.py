"""Named settings of ScoreDVI: ``paper`` (the published configuration) and ``fast`` (CPU-sized).

``paper``: K = 3 priors, M = 5 samples per component, full-size nets (UNet 64 base channels,
4 down-steps, bilinear up-sampling with aligned corners; 5-layer 32-channel aux nets), 400 Adam
iterations at lr 1e-3, EMA 0.9 started from y, restart when the mean posterior std exceeds 0.05
(§4.1 and the authors' code, ``../shared/references/algorithms.md``). The colour priors are the
three published BF-DnCNNs the authors used (``bfdncnn-color-cbsd300``, ``-scoredvi1``,
``-scoredvi2``). Audited line by line against the paper and the authors' code (2026-12-03/04);
what still differs, and why:

1. β: the authors fix it per dataset (SIDD and FMDD 0.02, CC 0.01, PolyU 0.005); a single
   image has no dataset, so :func:`~denoiselab.scoredvi.scoredvi` takes β from the caller (for
   ``paper`` its default ``auto`` picks among the three from the estimated δ) and ``bench``
   passes the paper's value for each dataset to ``scoredvi-paper``.
2. δ (for λ, Eq. 20): denoiselab's one noise estimator
   (:func:`denoiselab.noise.estimate_real_noise` through ``estimate_delta``) instead of the
   authors' per-sub-image Liu et al. 2014 fit with a free exponent (Powell): one estimator for
   every ``auto`` in the library; it fixes a collapse of the authors' kind of fit on flat,
   low-noise regions (SIDD 10_1: δ 3 for a true 23). Near δ = 10 or 25 the two can pick a
   different λ.
3. Gray priors: the authors trained gray BF-DnCNNs on the same data and did not publish them;
   ``paper`` uses the published gray BF-DnCNN and bias-free UNet of Mohan et al. (BSD400) and
   the CBSD300 colour model on replicated channels.
4. Φ/Z/Ω normalisation: instance normalisation (eps 1e-5) instead of batch norm at batch 1
   (eps 1e-4): the same statistics per image, which lets a batch of images run as independent
   fits.
5. Seeds: per image (seed, seed + 7919 for the draws) instead of one stream seeded 1314 for a
   whole dataset, so that an image's result does not depend on its position in the dataset.
6. PSNR: ``bench`` scores the output clipped to [0, 1] (what a saved image holds); the authors
   score the unclipped float output.

Everything else is as the authors ran it, including the gradient the score unit gives the
mixture weights π (``pi_score_gradient``: the unit returns z, so π_k receives −λ·mean_M z_k).

``fast``: derived from ``paper`` one change at a time by the ablation
(``benchmarks/scoredvi_ablation.py``, table in ``benchmarks/results/scoredvi_ablation/``: five
128² dev crops, one per dataset and two for SIDD, 1 thread); the deviations are commented per
field. On those crops ``fast`` averages 35.37 dB against ``paper``'s 34.46 (400 iterations), in
about 14 s each instead of 55 min; 256² RGB takes 42-47 s on 2 idle cores (gray 26 s). The steps:
- M = 1, 40 iterations, small nets (UNet 16 × 3 levels, 3 × 8 aux nets): from 55 min to under
  a minute, and alone a collapse (18.7 dB mean) that three start-up changes repair (33.0 dB):
  µ_k as a residual on a warm start, σ_k starting at 0.05, q(φ) starting at the hyperprior;
- zero-mean score (+0.2 dB), lr 3e-3 (+0.8), output EMA 0.8 from the first iterate (+0.3);
  π without the score unit's gradient: −0.03 dB, kept (simpler);
- K = 1 published prior (CBSD300; gray BSD400) instead of three (+0.2 dB; a published prior
  costs what nine small ones do): what fits 45 s per 256²;
- β = 0.02 for every image (the paper's heavy-noise value): +0.8 dB mean over β chosen from δ
  among the paper's three (PolyU +1.2, CC +0.6, FMDD +2.1, SIDD equal), +0.2 over the paper's
  per-dataset values;
- warm start through PD-2 + refinement (:func:`~denoiselab.pixel_shuffle.pd_refine`) where the
  noise estimate finds the noise spatially correlated (camera photos), D_k(y) where it is white
  (FMDD): SIDD +2.1 / +0.7 dB, PolyU and CC −0.1 / +0.2; on FMDD a PD start would cost 0.9 dB.
What ``paper`` still does better on the ablation crops: SIDD 10_1 (32.49 against 31.66 dB; 32.33
since the change below).

Since 2026-12-05 the PD warm start runs at stride 3 instead of 2 and, where the noise's colour
channels are correlated but its chroma is not blotchy, on colours in which the noise is white
across channels (:func:`~denoiselab.noise.colour_whitening`): the prior was trained on noise
independent per channel and left much of SIDD's colour-correlated noise. Warm start alone on 16
SIDD 256² crops: PD-3 beats PD-2 by 0.4-1.7 dB, and whitening adds 0.6-5.2 dB (one crop −0.5);
PolyU and CC, whose JPEG chroma noise is blotchy, are left unwhitened (whitening cost them up to
10 dB). ``fast`` on Table 1 CPU (``benchmarks/results/table1_cpu_v2``): SIDD 33.40 → 35.06 dB
(six crops +1.2 to +5.1, two −0.4), PolyU / CC / FMDD +0.06 to +0.08; held out
(``benchmarks/results/heldout_cpu``): SIDD 36.24 → 37.15, PolyU 34.94 → 35.07, FMDD 29.65 → 29.75.
On the five 128² ablation crops: 35.37 → 35.45 (PD-3) → 35.41 (whitening), a 128² crop giving a
noisier covariance. Both are ``NetConfig`` settings (``pd_stride``, ``pd_whiten``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..errors import DenoiselabError
from .nets import NetConfig

__all__ = ["Preset", "PRESETS", "get_preset", "PAPER_BETA"]

#: Our CPU-trained priors (10 × 32): ``fast``'s until 2026-12-04 (the ablation's `small priors` step).
SMALL_COLOR_PRIORS = ("bfdncnn-color-s-bsd", "bfdncnn-color-s-imagenet", "bfdncnn-color-s-union")
SMALL_GRAY_PRIORS = ("bfdncnn-gray-s", "bfdncnn-color-s-bsd", "bfdncnn-color-s-imagenet")
#: The authors' three published colour priors (20 × 64), and the published gray ones.
PUBLISHED_COLOR_PRIORS = ("bfdncnn-color-cbsd300", "bfdncnn-color-scoredvi1", "bfdncnn-color-scoredvi2")
PUBLISHED_GRAY_PRIORS = ("bfdncnn-gray-bsd400", "bfunet-gray-bsd400", "bfdncnn-color-cbsd300")
#: The paper's Gamma rate β per dataset (§4.1): heavy noise 0.02, medium 0.01, light 0.005.
PAPER_BETA = {"sidd": 0.02, "fmdd": 0.02, "cc": 0.01, "polyu": 0.005}


@dataclass(frozen=True)
class Preset:
    """All settings of one ScoreDVI run.

    Attributes
    ----------
    name : str
    n_iter : int
        Adam iterations T.
    n_samples : int
        Monte Carlo samples M per component and iteration.
    nets : NetConfig
        Network sizes and initialisation.
    lr : float
        Adam learning rate (paper: 1e-3).
    ema : float
        Weight of the past in the output's moving average (paper code: 0.9).
    ema_from_y : bool
        Start the moving average from y (paper code) or from the first iterate.
    restart : bool
        Run again from scratch when the mean posterior std σ_k exceeds `restart_threshold`.
    restart_threshold : float
        Mean σ_k (on [0, 1]) above which a run counts as failed (paper code: 0.05).
    score_zero_mean : bool
        Remove each sample's spatial mean (per channel) from D_k(z) - z, so the priors cannot move
        an image's global colour - the likelihood alone sets it. Our addition (not in the paper): a
        denoiser with a small colour bias, applied every iteration, otherwise drifts the colour.
    max_side : int
        Images with a side above this are denoised in overlapping tiles of this size.
    tile_overlap : int
        Overlap of neighbouring tiles, in pixels.
    color_priors, gray_priors : tuple of str
        The K prior names used for RGB and for gray images when the caller names none (colour
        priors on gray images run on replicated channels).
    pi_score_gradient : bool
        Let the prior term give π its gradient as the authors' score unit does (its forward
        returns z, so π_k gets −λ·mean_M z_k); False: π gets only the −½ log σ²_k part.
    auto_beta : float or None
        The Gamma rate β when the caller asks for ``beta="auto"``: this number for every image,
        or None to pick among the paper's three values from the estimated δ
        (:func:`~denoiselab.scoredvi.prior_weight.choose_beta`).
    warm_start_priors : {"same", "published"}
        With a warm start (``nets.mean_init`` other than "y"), which priors compute D_k(y) once
        before the first step: the score priors themselves, or the published full-size ones
        (one call each; the iterations then run on the cheaper score priors).
    """

    name: str
    n_iter: int
    n_samples: int
    nets: NetConfig = field(default_factory=NetConfig)
    lr: float = 1e-3
    ema: float = 0.9
    ema_from_y: bool = True
    restart: bool = True
    restart_threshold: float = 0.05
    score_zero_mean: bool = False
    max_side: int = 512
    tile_overlap: int = 32
    color_priors: tuple[str, ...] = SMALL_COLOR_PRIORS
    gray_priors: tuple[str, ...] = SMALL_GRAY_PRIORS
    pi_score_gradient: bool = False
    auto_beta: float | None = None
    warm_start_priors: str = "same"


PRESETS: dict[str, Preset] = {
    "paper": Preset(name="paper", n_iter=400, n_samples=5, nets=NetConfig(align_corners=True),
                    color_priors=PUBLISHED_COLOR_PRIORS, gray_priors=PUBLISHED_GRAY_PRIORS, pi_score_gradient=True),
    "fast": Preset(
        name="fast",
        n_iter=40,  # 42-47 s for 256×256 RGB on 2 CPU cores
        n_samples=1,  # M = 1: one prior call per component and iteration
        nets=NetConfig(
            x_base=16, x_depth=3,  # 0.21 M parameters instead of 13.4 M
            aux_width=8, aux_depth=3,  # Φ/Z/Ω nets: 3 layers of 8 channels
            residual_mean=True,  # warm start: µ_k = (start image) + residual (zero at start) ...
            mean_init="auto",  # ... the start through PD + refinement where the noise is correlated, else D_k(y)
            pd_stride=3,  # PD-3: +0.4-1.7 dB over PD-2 on the warm start of 14 SIDD crops
            pd_whiten=True,  # on colours where the noise is white across channels (SIDD; not JPEG PolyU/CC)
            init_log_var=-6.0,  # σ_k starts at 0.05, not ≈ 1
            phi_from_hyperprior=True,  # q(φ) starts at the hyperprior Gamma(1, β)
        ),
        lr=3e-3,
        ema=0.8,
        ema_from_y=False,
        restart=False,  # the rule would double the time; σ starts at 0.05 and stays near it
        score_zero_mean=True,  # measured: without it the interim priors' colour bias drifts SIDD to 11 dB
        max_side=512,
        color_priors=PUBLISHED_COLOR_PRIORS[:1],  # K = 1: one published prior costs what 9 small ones do
        gray_priors=PUBLISHED_GRAY_PRIORS[:1],
        auto_beta=0.02,  # the paper's heavy-noise β for every image: beat β from δ on every ablation crop
    ),
}


def get_preset(preset: str | Preset, **overrides) -> Preset:
    """Look up a preset by name (or pass one through) and apply keyword overrides that are not None."""
    if isinstance(preset, Preset):
        base = preset
    else:
        try:
            base = PRESETS[preset]
        except KeyError:
            raise DenoiselabError(f"preset={preset!r} is unknown; choose one of {', '.join(PRESETS)}") from None
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, **changes) if changes else base
