"""Stochastic methods over a denoiser: drawing images from the prior implicit in it.

- :func:`sample_annealed_langevin`: NCSN-style annealed Langevin dynamics with Tweedie's score
  ``(D(x, σ) − x)/σ²`` (:func:`score_from_denoiser`) on a geometric σ schedule.
- :func:`sample_implicit_prior`: Kadkhodaie & Simoncelli's coarse-to-fine stochastic ascent,
  which needs no schedule (a blind denoiser's residual tells the noise level).

Both are functions of ``(denoiser, shape)`` with keyword-only options, reproducible with
``seed=`` or ``generator=``.

Posterior samplers, functions of ``(y, [op,] denoiser)`` with ``sigma=`` the measurement noise std:

- :func:`sample_posterior_denoising`: Kawar, Vaksman & Elad's stochastic denoiser (annealed
  Langevin on p(x | y) for y = x + σ n, from y).
- :func:`sample_snips`: SNIPS, the same for ``y = A x + σ n`` in the SVD coordinates of A.
- :func:`sample_ddrm`: DDRM (η = 0.85, η_b = 1, 20 denoiser calls) in the same coordinates.
- :func:`posterior_mean`: K samples of each image in one batch, and their mean (MSE → MMSE(1 + 1/K)).
"""

from .implicit_prior import sample_implicit_prior
from .langevin import sample_annealed_langevin, score_from_denoiser
from .posterior import PosteriorSamples, ncsnv2_levels, posterior_mean, sample_posterior_denoising
from .snips import sample_snips
from .ddrm import sample_ddrm

__all__ = ["sample_annealed_langevin", "sample_implicit_prior", "score_from_denoiser",
           "sample_posterior_denoising", "sample_snips", "sample_ddrm", "posterior_mean", "PosteriorSamples",
           "ncsnv2_levels"]
