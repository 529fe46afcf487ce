"""Gaussian denoisers behind one call, ``denoiser(y, sigma)``: our trained networks and classical methods."""

from .bfdncnn import BFDnCNN
from .protocol import Denoiser, as_sigma, check_image_batch
from .registry import describe_denoiser, list_denoisers, load_denoiser, load_denoiser_for

__all__ = ["BFDnCNN", "Denoiser", "as_sigma", "check_image_batch", "describe_denoiser", "list_denoisers", "load_denoiser", "load_denoiser_for"]
