"""Classical denoisers behind the ``denoiser(y, sigma)`` protocol: BM3D, NLM, TV and wavelet.

Each is a thin adapter over a maintained implementation (the ``bm3d`` package, scikit-image's
``restoration``), run image by image on the CPU in numpy. They need the noise level: ``sigma`` is
the standard deviation on the [0, 1] scale, a float or one value per image. A per-pixel map is
reduced to its root-mean-square per image, since these implementations take one level only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import DenoiselabError
from .protocol import as_sigma, check_image_batch


def _per_image_sigma(sigma: float | Tensor, y: Tensor) -> np.ndarray:
    s = as_sigma(sigma, y).expand(y.shape[0], -1, -1, -1)
    return s.pow(2).mean(dim=(1, 2, 3)).sqrt().cpu().double().numpy()


class NumpyDenoiser:
    """Apply ``fn(image_hwc, sigma) -> image_hwc`` to each image of a batch; the protocol adapter.

    Parameters
    ----------
    fn : callable
        Takes one image as float64 (H, W, C) and its σ ([0, 1] scale), returns an (H, W, C) array.
    name : str
        Shown in ``repr`` and the CLI.
    """

    def __init__(self, fn: Callable[[np.ndarray, float], np.ndarray], name: str):
        self.fn, self.name = fn, name

    def __repr__(self) -> str:
        return f"NumpyDenoiser({self.name})"

    def __call__(self, y: Tensor, sigma: float | Tensor) -> Tensor:
        check_image_batch(y, channels=(1, 3))
        sigmas = _per_image_sigma(sigma, y)
        images = y.detach().to("cpu", torch.float64).permute(0, 2, 3, 1).numpy()
        out = [np.asarray(self.fn(im, float(s)), dtype=np.float64).reshape(im.shape) for im, s in zip(images, sigmas)]
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(y.device, y.dtype).contiguous()


def _bm3d(image: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d

    if sigma <= 0:
        return image
    h, w = image.shape[:2]
    if min(h, w) < 8 or h * w <= 64:  # the bm3d library raises below 8 pixels and segfaults on exactly 8x8
        raise DenoiselabError(f"BM3D needs an image larger than 8x8 pixels, this one is {w}x{h}; use another method "
                              "(e.g. tv or bfdncnn-color)")
    if image.shape[2] == 3:  # CBM3D: opponent colour transform, then BM3D on each channel
        return bm3d.bm3d_rgb(image, sigma)
    return bm3d.bm3d(image[..., 0], sigma)


def _nlm(image: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.restoration import denoise_nl_means

    if sigma <= 0:
        return image
    # h = 0.8·σ with sigma given is scikit-image's advice for fast mode.
    return denoise_nl_means(image, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                            fast_mode=True, channel_axis=-1)


def _tv(image: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.restoration import denoise_tv_chambolle

    if sigma <= 0:
        return image
    # Weight proportional to σ (weight = 1/λ of the ROF model); factor 1 chosen on CBSD68 at σ=25/255.
    return denoise_tv_chambolle(image, weight=sigma, channel_axis=-1)


def _wavelet(image: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.restoration import denoise_wavelet

    if sigma <= 0:
        return image
    return denoise_wavelet(image, sigma=sigma, method="BayesShrink", mode="soft", rescale_sigma=True,
                           channel_axis=-1, convert2ycbcr=image.shape[2] == 3)


def bm3d_denoiser() -> NumpyDenoiser:
    """BM3D (Dabov et al., IEEE TIP 2007) for gray, CBM3D for colour, via the ``bm3d`` package."""
    return NumpyDenoiser(_bm3d, "bm3d")


def nlm_denoiser() -> NumpyDenoiser:
    """Non-local means (Buades et al., CVPR 2005), scikit-image fast mode, 5×5 patches, 13×13 search."""
    return NumpyDenoiser(_nlm, "nlm")


def tv_denoiser() -> NumpyDenoiser:
    """Total-variation denoising (Chambolle's projection), weight = σ."""
    return NumpyDenoiser(_tv, "tv")


def wavelet_denoiser() -> NumpyDenoiser:
    """BayesShrink soft wavelet thresholding (Chang et al., IEEE TIP 2000), YCbCr for colour."""
    return NumpyDenoiser(_wavelet, "wavelet")
