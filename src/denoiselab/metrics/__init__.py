"""Image quality metrics: PSNR and SSIM through scikit-image, on images in [0, 1].

PSNR and SSIM with ``data_range=1`` on [0, 1] images are the same numbers as on the 0–255 scale
for 8-bit sRGB images (both metrics are scale invariant once the data range scales along), which
is how the ScoreDVI paper and the DnCNN tables report them. Estimates are clipped to [0, 1] first,
as a saved image would be.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import DenoiselabError

__all__ = ["psnr", "ssim"]


def _as_hwc_batch(a: np.ndarray | Tensor) -> np.ndarray:
    """(B,C,H,W) tensor or (H,W[,C]) / (B,H,W,C) array -> float64 (B, H, W, C)."""
    if isinstance(a, Tensor):
        if a.ndim != 4:
            raise DenoiselabError(f"expected a (B, C, H, W) tensor, got shape {tuple(a.shape)}")
        return a.detach().to("cpu", torch.float64).permute(0, 2, 3, 1).numpy()
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2:
        a = a[..., None]
    return a[None] if a.ndim == 3 else a


def _pairs(x_hat, x):
    est, ref = _as_hwc_batch(x_hat), _as_hwc_batch(x)
    if est.shape != ref.shape:
        raise DenoiselabError(f"estimate shape {est.shape} differs from reference shape {ref.shape}")
    return np.clip(est, 0.0, 1.0), ref


def psnr(x_hat: np.ndarray | Tensor, x: np.ndarray | Tensor) -> np.ndarray:
    """Peak signal-to-noise ratio in dB, one value per image, data range 1.

    Parameters
    ----------
    x_hat : Tensor (B, C, H, W) or array (H, W[, C]) / (B, H, W, C)
        Estimate, nominally in [0, 1]; clipped to [0, 1] before the comparison.
    x : same form as `x_hat`
        Reference (clean) image in [0, 1].

    Returns
    -------
    psnr : ndarray, shape (B,)
        10·log10(1 / MSE) per image.
    """
    from skimage.metrics import peak_signal_noise_ratio

    est, ref = _pairs(x_hat, x)
    return np.array([peak_signal_noise_ratio(r, e, data_range=1.0) for e, r in zip(est, ref)])


def ssim(x_hat: np.ndarray | Tensor, x: np.ndarray | Tensor) -> np.ndarray:
    """Structural similarity (Wang et al. 2004; scikit-image defaults, 7×7 window), one value per image.

    Takes the same inputs as :func:`psnr`; colour images use ``channel_axis`` (mean over channels).
    """
    from skimage.metrics import structural_similarity

    est, ref = _pairs(x_hat, x)
    return np.array(
        [structural_similarity(r, e, data_range=1.0, channel_axis=-1) for e, r in zip(est, ref)]
    )
