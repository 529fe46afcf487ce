"""Stochastic methods over a denoiser: drawing images from the prior implicit in it.

- :func:`sample_annealed_langevin`: NCSN-style annealed Langevin dynamics with Tweedie's score
  ``(D(x, σ) − x)/σ²`` (:func:`score_from_denoiser`) on a geometric σ schedule.
- :func:`sample_implicit_prior`: Kadkhodaie & Simoncelli's coarse-to-fine stochastic ascent,
  which needs no schedule (a blind denoiser's residual tells the noise level).

Both are functions of ``(denoiser, shape)`` with keyword-only options, reproducible with
``seed=`` or ``generator=``. Posterior samplers (Kawar et al., SNIPS, DDRM) are not here yet.
"""

from .implicit_prior import sample_implicit_prior
from .langevin import sample_annealed_langevin, score_from_denoiser

__all__ = ["sample_annealed_langevin", "sample_implicit_prior", "score_from_denoiser"]
