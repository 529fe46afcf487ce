"""Noise: synthetic noise models (``models``), noise-level estimators (``estimate``), σ schedules (``schedules``)."""

from .estimate import (NoiseEstimate, RealNoiseEstimate, colour_whitening, estimate_noise_covariance, estimate_noise_function, estimate_noise_level_pd,
                       estimate_real_noise, estimate_sigma, noise_covariance)
from .models import add_correlated_noise, add_gaussian_noise, add_poisson_gaussian_noise, bayer_demosaic, poisson_gaussian_sigma
from .schedules import sigmas_geometric

__all__ = [
    "NoiseEstimate", "RealNoiseEstimate", "colour_whitening", "estimate_noise_covariance", "estimate_noise_function", "estimate_noise_level_pd", "estimate_real_noise",
    "estimate_sigma", "noise_covariance",
    "add_correlated_noise", "add_gaussian_noise", "add_poisson_gaussian_noise", "bayer_demosaic", "poisson_gaussian_sigma",
    "sigmas_geometric",
]
