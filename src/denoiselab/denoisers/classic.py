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
from ..pixel_shuffle import PixelShuffleDenoiser
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

    #: how spatially correlated noise is handled; None: taken as white (shown by the CLI, in manifests)
    correlated_noise: str | None = None

    def __init__(self, fn: Callable[[np.ndarray, float], np.ndarray], name: str):
        self.fn, self.name = fn, name

    def for_noise(self, y: Tensor, estimate) -> Callable[[Tensor, float | Tensor], Tensor]:
        """The denoiser for the noise of the (1, C, H, W) image `y`, given its `estimate` (a
        :class:`denoiselab.noise.RealNoiseEstimate`): itself for white noise; for correlated
        noise, itself on pixel-shuffled sub-images (:class:`~denoiselab.pixel_shuffle.PixelShuffleDenoiser`,
        PD-2 + refinement), which these white-noise methods need to see camera noise at all."""
        return PixelShuffleDenoiser(self) if bool(estimate.correlated[0]) else self

    def __repr__(self) -> str:
        return f"NumpyDenoiser({self.name})"

    def __call__(self, y: Tensor, sigma: float | Tensor) -> Tensor:
        check_image_batch(y, channels=(1, 3))
        sigmas = _per_image_sigma(sigma, y)
        images = y.detach().to("cpu", torch.float64).permute(0, 2, 3, 1).numpy()
        out = [np.asarray(self.fn(im, float(s)), dtype=np.float64).reshape(im.shape) for im, s in zip(images, sigmas)]
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(y.device, y.dtype).contiguous()


def _check_bm3d_size(image: np.ndarray) -> None:
    h, w = image.shape[:2]
    if min(h, w) < 8 or h * w <= 64:  # the bm3d library raises below 8 pixels and segfaults on exactly 8x8
        raise DenoiselabError(f"BM3D needs an image larger than 8x8 pixels, this one is {w}x{h}; use another method "
                              "(e.g. tv or bfdncnn-color)")


def _gray_as_rgb(image: np.ndarray) -> bool:
    """A gray image stored as RGB: CBM3D's colour transform divides by its chroma range, 0 here (NaN out)."""
    return image.shape[2] == 3 and np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])


def _noise_psd(kernel: np.ndarray, h: int, w: int) -> np.ndarray:
    """The (h, w) noise power spectrum, in the ``bm3d`` package's units, of the covariance `kernel` (k, k).

    The package takes white noise of std σ as the constant spectrum σ²·h·w; the spectrum of a
    covariance is its Fourier transform (the kernel placed around pixel (0, 0), wrapped). An
    estimated kernel can give slightly negative power at some frequencies: floored at 2 % of
    the mean power (BM3D divides by it).
    """
    r = kernel.shape[0] // 2
    wrapped = np.zeros((h, w))
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            wrapped[dy % h, dx % w] += kernel[dy + r, dx + r]
    power = np.real(np.fft.fft2(wrapped))
    return np.maximum(power, 0.02 * power.mean()) * (h * w)


def _bm4d_with_trapz() -> None:
    """bm4d 4.2.5 (under ``bm3d``) calls ``np.trapz``, removed in NumPy 2.4, on its correlated-noise
    path only: give its module a NumPy namespace that still has it (NumPy itself is left alone)."""
    import types

    import bm4d

    if not hasattr(bm4d.np, "trapz"):
        shim = types.ModuleType("numpy")
        shim.__dict__.update(np.__dict__)
        shim.trapz = np.trapezoid
        bm4d.np = shim


def _bm3d(image: np.ndarray, sigma: float, shape: np.ndarray | None = None) -> np.ndarray:
    """BM3D / CBM3D for white noise of std `sigma`, or, given `shape` (C, C, k, k), for correlated
    noise of covariance σ²·`shape` (Mäkinen, Azzari, Foi 2020: the package's noise-spectrum path)."""
    import bm3d

    if sigma <= 0:
        return image
    _check_bm3d_size(image)
    h, w, c = image.shape
    cov = None if shape is None else sigma * sigma * shape
    if cov is not None:
        _bm4d_with_trapz()
    if c == 1 or _gray_as_rgb(image):  # gray as RGB: the same noise in every channel, one gray BM3D
        noise = sigma if cov is None else _noise_psd(cov[0, 0], h, w)
        return np.repeat(np.atleast_3d(bm3d.bm3d(image[..., 0], noise)), c, axis=2)
    if cov is None:  # CBM3D: opponent colour transform, then BM3D on each channel
        return bm3d.bm3d_rgb(image, sigma)
    # the same transform, by hand: its channels' noise covariance follows from the RGB one
    z, o_max, o_min, _, a = bm3d.rgb_to(image, "opp")
    kernels = np.einsum("ij,jkyx,ik->iyx", a, cov, a) / ((o_max - o_min) ** 2)[:, None, None]
    out = bm3d.bm3d(z, np.stack([_noise_psd(k, h, w) for k in kernels], axis=-1), "np")
    return bm3d.rgb_to(out, "opp", True, o_max, o_min)[0]


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


class BM3DDenoiser(NumpyDenoiser):
    """BM3D / CBM3D, for white noise or, given the noise's covariance, for correlated noise.

    Parameters
    ----------
    noise_shape : ndarray or Tensor, shape (C, C, k, k), optional
        The noise covariance divided by its variance (``C_jk(d) / σ²``, σ² the mean over
        channels of ``C_jj(0)``; :func:`denoiselab.noise.estimate_noise_covariance` gives
        ``C``): a call with ``sigma`` then denoises noise of covariance ``σ²·noise_shape``,
        with BM3D for correlated noise (the ``bm3d`` package's noise power spectrum, Mäkinen,
        Azzari and Foi, IEEE TIP 2020). None (default): white noise of std ``sigma``.
    """

    def __init__(self, noise_shape: np.ndarray | Tensor | None = None):
        if noise_shape is None:
            super().__init__(_bm3d, "bm3d")
        else:
            shape = np.asarray(torch.as_tensor(noise_shape).detach().cpu().double())
            if shape.ndim != 4 or shape.shape[0] != shape.shape[1] or shape.shape[2] != shape.shape[3] \
                    or shape.shape[2] % 2 == 0:
                raise DenoiselabError(f"noise_shape has shape {shape.shape}; expected (C, C, k, k) with k odd")
            super().__init__(lambda image, sigma: _bm3d(image, sigma, shape), "bm3d (correlated noise)")
            self.correlated_noise = "its estimated covariance used"
        self.noise_shape = noise_shape

    def for_noise(self, y: Tensor, estimate) -> BM3DDenoiser:
        """The BM3D for the noise of the (1, C, H, W) image `y`, given its `estimate` (a
        :class:`denoiselab.noise.RealNoiseEstimate`): for correlated noise, one told the noise's
        covariance (measured on `y`); for white noise, the white-noise BM3D."""
        from ..noise import estimate_noise_covariance

        if not bool(estimate.correlated[0]) or float(estimate.sigma[0]) <= 0:
            return BM3DDenoiser()
        cov = estimate_noise_covariance(y, estimate=estimate)[0]
        return BM3DDenoiser(cov / float(estimate.sigma[0]) ** 2)


def bm3d_denoiser(noise_shape: np.ndarray | Tensor | None = None) -> BM3DDenoiser:
    """BM3D (Dabov et al., IEEE TIP 2007) for gray, CBM3D for colour, via the ``bm3d`` package;
    for correlated noise given its covariance shape (see :class:`BM3DDenoiser`)."""
    return BM3DDenoiser(noise_shape)


def nlm_denoiser() -> NumpyDenoiser:
    """Non-local means (Buades et al., CVPR 2005), scikit-image fast mode, 5×5 patches, 13×13 search."""
    return NumpyDenoiser(_nlm, "nlm")


def tv_denoiser() -> NumpyDenoiser:
    """Total-variation denoising (Chambolle's projection), weight = σ."""
    return NumpyDenoiser(_tv, "tv")


def wavelet_denoiser() -> NumpyDenoiser:
    """BayesShrink soft wavelet thresholding (Chang et al., IEEE TIP 2000), YCbCr for colour."""
    return NumpyDenoiser(_wavelet, "wavelet")
