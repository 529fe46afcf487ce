"""Gaussian denoisers behind one call, ``denoiser(y, sigma)``: our trained networks and classical methods."""

from .bfdncnn import BFDnCNN
from .noise_level import InjectedNoiseLevel, is_blind, with_noise_level
from .protocol import CountedDenoiser, Denoiser, as_sigma, check_image_batch
from .registry import describe_denoiser, list_denoisers, load_denoiser, load_denoiser_for

__all__ = ["BFDnCNN", "CountedDenoiser", "Denoiser", "InjectedNoiseLevel", "is_blind", "with_noise_level", "as_sigma", "check_image_batch", "describe_denoiser", "list_denoisers", "load_denoiser", "load_denoiser_for"]
