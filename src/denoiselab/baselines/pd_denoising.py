"""PD-denoising (Zhou et al., AAAI 2020): an AWGN denoiser on pixel-shuffled sub-images, then refinement.

Real sRGB noise is spatially correlated, which an AWGN-trained denoiser does not expect. Pixel-
shuffle down-sampling with stride s (PD-s) splits the image into s² sub-images of every s-th
pixel: the noise on them is close to white while the content survives, so the AWGN denoiser
works there. Up-shuffling the denoised sub-images leaves grid artefacts; the paper's *PD
refinement* removes them: for each of the s² offsets, the denoised image gets that offset's
noisy pixels back (now only 1 in s² pixels is noisy, so the noise is sparse and decorrelated),
the result is denoised once more at full resolution, and the s² outputs are averaged.

Deviation from the paper: the paper's denoiser is its own noise-map-conditioned CNN with a
noise-estimation sub-network trained on AWGN; here it is any ``denoiser(x, sigma)`` of
denoiselab, by default our blind bias-free DnCNN (which ignores σ), so the noise-level
estimation and the paper's σ-scaling for the refinement pass are not needed.
"""

from __future__ import annotations

import numpy as np
import torch

from .._utils import resolve_device
from ..errors import DenoiselabError
from ..pixel_shuffle import pd_refine
from ._common import check_noisy, from_batch, to_batch


def _default_denoiser(channels: int, device: torch.device):
    from ..denoisers.registry import load_denoiser

    return load_denoiser("bfdncnn-color" if channels == 3 else "bfdncnn-gray", device=device)


def pd_denoising(noisy: np.ndarray, *, stride: int = 2, refine: bool = True, denoiser=None, sigma: float = 0.0,
                 seed: int = 0, device: str = "auto", progress: bool = False) -> np.ndarray:
    """Denoise a real noisy image with a Gaussian denoiser through PD-s and PD refinement.

    Parameters
    ----------
    noisy : ndarray, (H, W) or (H, W, C), C in {1, 3}
        Float image in [0, 1] (not clipped). Sides that are not multiples of `stride` are
        padded by repeating the last row and column and cropped back
        (:func:`denoiselab.pixel_shuffle.pd_refine`).
    stride : int, optional
        Pixel-shuffle stride s >= 1 (paper's default for sRGB photos: 2; 1 = plain denoising).
    refine : bool, optional
        Apply the PD refinement (s² extra full-resolution denoiser calls). Default True.
    denoiser : callable, optional
        ``denoiser(x, sigma) -> x_hat`` on (N, C, H, W) tensors; default: denoiselab's blind
        BF-DnCNN prior for the image's channel count.
    sigma : float, optional
        σ passed to the denoiser ([0, 1] scale); blind denoisers ignore it. Default 0.
    seed : int
        Unused (the method is deterministic); kept for the common baseline interface.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    progress : bool
        Unused (one pass takes well under a second for 256×256 on a CPU).

    Returns
    -------
    ndarray
        Denoised image, float32, the shape of `noisy`.

    References
    ----------
    Y. Zhou, J. Jiao, H. Huang, Y. Wang, J. Wang, H. Shi, T. Huang, "When AWGN-based denoiser
    meets real noises", AAAI 2020, doi:10.1609/aaai.v34i07.7011.
    """
    image = check_noisy(noisy)
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise DenoiselabError(f"stride={stride!r} must be an integer >= 1 (the paper uses 2)")
    dev = resolve_device(device)
    den = denoiser or _default_denoiser(image.shape[2], dev)
    with torch.no_grad():
        x = pd_refine(den, to_batch(image, dev), stride, sigma, refine=refine)
    return from_batch(x, noisy)
