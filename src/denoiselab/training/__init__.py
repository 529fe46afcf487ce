"""Training of MMSE Gaussian denoisers: patch sampling, the loop, checkpoints and model cards."""

from .patches import PatchSampler, load_training_images
from .train import TrainConfig, train_denoiser

__all__ = ["PatchSampler", "load_training_images", "TrainConfig", "train_denoiser"]
