"""Pixel-shuffle down-sampling (PD) and its inverse.

PD splits an image into ``stride**2`` sub-images, each made of every ``stride``-th pixel.
Spatially correlated real-world noise becomes (nearly) white on the sub-images while the
image content survives, which is why ScoreDVI estimates the noise level on them
(Cheng et al. 2023, Sec. 3.5) and why Zhou et al. (2020) denoise them with an AWGN denoiser.

Order of the sub-images
-----------------------
For an input of shape ``(B, C, H, W)`` and stride ``s``, sub-image ``(i, j)`` of image ``b``
(``0 <= i, j < s``) is ``y[b, :, i::s, j::s]`` (after cropping ``H`` and ``W`` down to
multiples of ``s``), and it is stored at batch index ``b * s * s + i * s + j``.
So the output holds the ``s * s`` sub-images of image 0 first, row offset ``i`` major and
column offset ``j`` minor, then those of image 1, and so on.

References
----------
.. [1] Y. Zhou, J. Jiao, H. Huang, Y. Wang, J. Wang, H. Shi, T. Huang, "When AWGN-based
   denoiser meets real noises", AAAI 2020. doi:10.1609/aaai.v34i07.7011
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import DenoiselabError

__all__ = ["PixelShuffleDenoiser", "pd_apply", "pd_down", "pd_refine", "pd_up"]


def _check_stride(stride: int) -> int:
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise DenoiselabError(f"stride={stride!r} is not a positive integer; pass e.g. stride=4")
    return stride


def pd_down(y: Tensor, stride: int) -> Tensor:
    """Split images into ``stride**2`` pixel-shuffled sub-images (Zhou et al. 2020).

    Parameters
    ----------
    y : Tensor, shape (B, C, H, W)
        Images, any dtype and device.
    stride : int
        Sampling step ``s`` >= 1, in pixels. ``stride=1`` returns `y` unchanged.

    Returns
    -------
    sub : Tensor, shape (B * s * s, C, H // s, W // s)
        Sub-image ``(i, j)`` of image ``b`` is ``y[b, :, i::s, j::s]`` on ``y`` cropped to
        ``(s * (H // s), s * (W // s))`` (the last ``H % s`` rows and ``W % s`` columns are
        dropped), stored at index ``b * s * s + i * s + j``. Same dtype and device as `y`.

    Raises
    ------
    DenoiselabError
        If `y` is not 4-D, `stride` is not a positive integer, or ``H`` or ``W`` < `stride`.

    Examples
    --------
    >>> y = torch.arange(16.0).view(1, 1, 4, 4)
    >>> pd_down(y, 2)[1, 0]          # sub-image (i=0, j=1): y[0, 0, 0::2, 1::2]
    tensor([[ 1.,  3.],
            [ 9., 11.]])
    """
    s = _check_stride(stride)
    if not isinstance(y, Tensor) or y.ndim != 4:
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise DenoiselabError(f"y has shape {shape}; expected a 4-D tensor (B, C, H, W)")
    b, c, h, w = y.shape
    hs, ws = h // s, w // s
    if hs == 0 or ws == 0:
        raise DenoiselabError(f"image size {h}x{w} is smaller than stride={s}; use a smaller stride")
    y = y[:, :, : hs * s, : ws * s]
    # (b, c, hs, i, ws, j) -> (b, i, j, c, hs, ws)
    sub = y.reshape(b, c, hs, s, ws, s).permute(0, 3, 5, 1, 2, 4)
    return sub.reshape(b * s * s, c, hs, ws)


def pd_up(sub: Tensor, stride: int, batch: int) -> Tensor:
    """Reassemble pixel-shuffled sub-images into images: the inverse of :func:`pd_down`.

    Parameters
    ----------
    sub : Tensor, shape (batch * s * s, C, h, w)
        Sub-images in the order produced by :func:`pd_down`.
    stride : int
        The stride ``s`` used by :func:`pd_down`.
    batch : int
        Number of images ``B``.

    Returns
    -------
    y : Tensor, shape (batch, C, h * s, w * s)
        ``pd_up(pd_down(y, s), s, B)`` equals `y` cropped to multiples of ``s``, exactly.

    Raises
    ------
    DenoiselabError
        If `sub` is not 4-D or its first dimension is not ``batch * stride**2``.

    Examples
    --------
    >>> y = torch.rand(2, 3, 8, 12)
    >>> torch.equal(pd_up(pd_down(y, 4), 4, 2), y)
    True
    """
    s = _check_stride(stride)
    if not isinstance(sub, Tensor) or sub.ndim != 4:
        shape = tuple(sub.shape) if isinstance(sub, Tensor) else type(sub).__name__
        raise DenoiselabError(f"sub has shape {shape}; expected a 4-D tensor (B * stride**2, C, h, w)")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1 or sub.shape[0] != batch * s * s:
        raise DenoiselabError(
            f"sub has {sub.shape[0]} sub-images but batch={batch!r} and stride={s} need {batch!r}*{s * s}; "
            "pass the batch size of the images given to pd_down"
        )
    _, c, hs, ws = sub.shape
    # (b, i, j, c, hs, ws) -> (b, c, hs, i, ws, j)
    y = sub.reshape(batch, s, s, c, hs, ws).permute(0, 3, 4, 1, 5, 2)
    return y.reshape(batch, c, hs * s, ws * s)


def pd_apply(fn: Callable[[Tensor], Tensor], y: Tensor, stride: int, *, out_batch: int | None = None) -> Tensor:
    """Run `fn` on the pixel-shuffled sub-images of `y` and put its output back together.

    Images whose sides are not multiples of `stride` are padded at the bottom and right by
    repeating their last row and column (a reflected copy of a pixel could land in its own
    sub-image), and the result is cropped back to ``H x W``.

    Parameters
    ----------
    fn : callable
        Maps the ``(B * s * s, C, h, w)`` sub-images (the order of :func:`pd_down`) to
        ``(out_batch * s * s, C', h, w)`` sub-images in the same order, image by image.
    y : Tensor, shape (B, C, H, W)
        Images, ``H, W >= stride``.
    stride : int
        Sampling step ``s`` >= 1; 1 calls ``fn(y)``.
    out_batch : int, optional
        Number of images `fn`'s output stands for (default B; e.g. ``K * B`` for K samples of each).

    Returns
    -------
    out : Tensor, shape (out_batch, C', H, W)

    Examples
    --------
    >>> y = torch.rand(1, 3, 10, 7)
    >>> torch.equal(pd_apply(lambda sub: 2 * sub, y, 4), 2 * y)
    True
    """
    s = _check_stride(stride)
    if s == 1:
        return fn(y)
    h, w = y.shape[-2:]
    ph, pw = -h % s, -w % s
    padded = F.pad(y, (0, pw, 0, ph), mode="replicate") if ph or pw else y
    out = fn(pd_down(padded, s))
    return pd_up(out, s, y.shape[0] if out_batch is None else out_batch)[..., :h, :w]


def pd_refine(denoiser: Callable[[Tensor, float | Tensor], Tensor], y: Tensor, stride: int = 2,
              sigma: float | Tensor = 0.0, *, refine: bool = True) -> Tensor:
    """PD-s denoising with PD refinement (Zhou et al. 2020): a Gaussian denoiser on real noise.

    The denoiser runs once on the pixel-shuffled sub-images (:func:`pd_apply`), where spatially
    correlated noise is nearly white; then the refinement puts each of the ``s * s`` sub-grids of
    noisy pixels back into that result in turn and averages the denoiser's ``s * s``
    full-resolution outputs, which removes the grid artefacts of the first pass.

    Parameters
    ----------
    denoiser : callable
        ``denoiser(x, sigma) -> x_hat`` on ``(N, C, H, W)`` tensors (blind ones ignore `sigma`).
    y : Tensor, shape (B, C, H, W)
        Noisy images, ``H, W >= stride``.
    stride : int, optional
        ``s`` >= 1 (the paper's choice for sRGB photos: 2); 1 is one plain denoiser call.
    sigma : float or Tensor, optional
        Passed to `denoiser` unchanged ([0, 1] scale). Default 0.
    refine : bool, optional
        Apply the refinement (default True); False returns the PD-s pass alone.

    Returns
    -------
    Tensor, shape (B, C, H, W)
        Not clamped. One denoiser call on the ``B * s * s`` sub-images, and with `refine` one on
        ``B * s * s`` full-size images.

    Examples
    --------
    >>> y = torch.rand(2, 3, 9, 8)
    >>> torch.allclose(pd_refine(lambda x, s: x, y, 2), y)
    True
    """
    s = _check_stride(stride)
    x = pd_apply(lambda sub: denoiser(sub, sigma), y, s)
    if s == 1 or not refine:
        return x
    mixed = x.unsqueeze(0).repeat(s * s, 1, 1, 1, 1)  # (s*s, B, C, H, W): copy (i, j) takes back grid (i, j)
    for i in range(s):
        for j in range(s):
            mixed[i * s + j, ..., i::s, j::s] = y[..., i::s, j::s]
    out = denoiser(mixed.flatten(0, 1), sigma)
    return out.view(s * s, *y.shape).mean(0)


class PixelShuffleDenoiser:
    """A Gaussian denoiser made fit for spatially correlated noise by PD-s + refinement (:func:`pd_refine`).

    What the classical white-noise denoisers (NLM, TV, wavelet) become under ``--sigma auto``
    when the noise estimate finds the noise correlated (camera photos): the same denoiser, same
    σ, on the pixel-shuffled sub-images, where neighbouring noisy pixels are ``stride`` apart
    in the camera's image and nearly independent. Measured in ``benchmarks/correlated_noise.py``.

    Parameters
    ----------
    denoiser : callable
        ``denoiser(y, sigma) -> x_hat`` (the Denoiser protocol), a white-noise denoiser.
    stride : int, optional
        PD stride s >= 1 (default 2, Zhou et al.'s choice for sRGB photos).

    Examples
    --------
    >>> pd = PixelShuffleDenoiser(lambda y, sigma: y.mean(dim=(-2, -1), keepdim=True).expand_as(y))
    >>> y = torch.rand(1, 3, 8, 8)
    >>> torch.allclose(pd(y, 0.1), y.mean(dim=(-2, -1), keepdim=True).expand_as(y))
    True
    """

    def __init__(self, denoiser: Callable[[Tensor, float | Tensor], Tensor], stride: int = 2):
        self.denoiser, self.stride = denoiser, _check_stride(stride)
        #: what the CLI prints and the manifest records about the noise's correlation
        self.correlated_noise = f"denoised on stride-{self.stride} pixel-shuffled sub-images + refinement"

    def __repr__(self) -> str:
        return f"PixelShuffleDenoiser({self.denoiser!r}, stride={self.stride})"

    def __call__(self, y: Tensor, sigma: float | Tensor) -> Tensor:
        return pd_refine(self.denoiser, y, self.stride, sigma)
