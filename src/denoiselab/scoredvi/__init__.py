"""ScoreDVI: score-prior guided deep variational inference for real-world denoising (Cheng et al., ICCV 2023).

Public API::

    from denoiselab.scoredvi import scoredvi
    res = scoredvi(y, preset="fast")          # y: (B, C, H, W) tensor or (H, W[, C]) array in [0, 1]
    res.image, res.variance, res.record

Where each equation lives: nets.py (Θ networks, Eq. 10), objective.py (L1-L5, Eqs. 12-16;
score unit, Eqs. 5, 13, 17), prior_weight.py (λ(y), Eqs. 19-20; β rule), core.py
(Algorithm 1, Eq. 18 output, restart; tiles through denoiselab.tiling), presets.py (paper / fast settings).
"""

from .core import GrayFromColor, ScoreDVIResult, default_prior_names, fit_scoredvi, load_priors, scoredvi
from .objective import ScoreIdentity, apply_priors, compute_loss_terms
from .presets import PRESETS, Preset, get_preset
from .prior_weight import choose_beta, choose_prior_weight, estimate_delta
from ..tiling import denoise_tiled  # re-exported: the generic tiler lives in denoiselab.tiling

__all__ = [
    "scoredvi", "ScoreDVIResult", "fit_scoredvi", "Preset", "PRESETS", "get_preset", "ScoreIdentity",
    "apply_priors", "compute_loss_terms", "choose_prior_weight", "choose_beta", "estimate_delta",
    "denoise_tiled", "GrayFromColor", "default_prior_names", "load_priors",
]
