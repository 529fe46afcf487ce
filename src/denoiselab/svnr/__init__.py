"""SVNR: spatially-variant noise removal with denoising diffusion (Pearl et al., 2023, arXiv:2306.16052).

A variance-exploding diffusion whose reverse chain starts from the noisy image itself: with
shot + read noise every pixel has its own variance σ²_p, which is the state of the chain at its
own time t*_p = γ⁻¹(σ²_p), so the network takes a per-pixel time map and sampling needs only
⌈max t*⌉ calls. Method details are reconstructed from the paper's summary (see
``shared/references/algorithms.md``, "SVNR"); the tags [reconstructed] / [guess] in the
docstrings say what must be validated by experiment.

Where each part lives: schedule.py (γ_t, per-pixel time map), noise.py (linear RGB, shot + read
noise, the test-time variance), unet.py (UNet with a per-pixel time embedding at every
resolution; the EDM preconditioning of the conditioned baseline), diffusion.py (Eq. 11 training
pairs, Eq. 8 reverse step, Alg. 2 sampler, the
conditional baseline), train.py (training, validation, model cards, loading).

Typical use, on sRGB images in [0, 1] (the sampler works on the linear scale)::

    from denoiselab.svnr import load_svnr, to_linear, add_svnr_noise, estimate_variance, sample_svnr, to_srgb
    m = load_svnr("svnr-rgb.safetensors")
    x_lin = to_linear(x_srgb, white_level=1.0)
    y, _ = add_svnr_noise(x_lin, read_sigma=0.1, shot_sigma=0.03, generator=g)      # or a real linear image
    x_hat = sample_svnr(m.model, y, estimate_variance(y, 0.1, 0.03), schedule=m.schedule, seed=0)
    x_hat_srgb = to_srgb(x_hat, white_level=1.0)
"""

from .denoise import denoise_svnr, estimate_svnr_noise
from .diffusion import (DiffusionSample, conditional_timesteps, conditional_training_sample, reverse_step,
                        sample_conditional, sample_svnr, training_sample)
from .noise import (add_svnr_noise, draw_noise_params, estimate_variance, linear_to_srgb, make_noisy_batch,
                    srgb_to_linear, svnr_variance, to_linear, to_srgb)
from .schedule import DEFAULT_SCHEDULE, VESchedule, gamma, time_map
from .train import KINDS, SVNRConfig, SVNRModel, evaluate_svnr, load_svnr, train_svnr, training_loss
from .unet import SVNRUNet, time_features

__all__ = [
    "VESchedule", "DEFAULT_SCHEDULE", "gamma", "time_map",
    "srgb_to_linear", "linear_to_srgb", "to_linear", "to_srgb", "svnr_variance", "add_svnr_noise",
    "estimate_variance", "draw_noise_params", "make_noisy_batch",
    "SVNRUNet", "time_features",
    "DiffusionSample", "training_sample", "conditional_training_sample", "reverse_step", "sample_svnr",
    "sample_conditional", "conditional_timesteps",
    "denoise_svnr", "estimate_svnr_noise",
    "KINDS", "SVNRConfig", "SVNRModel", "training_loss", "evaluate_svnr", "train_svnr", "load_svnr",
]
