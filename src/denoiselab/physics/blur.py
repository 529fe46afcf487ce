"""Blur: convolution with a known kernel, under three boundary conditions.

- ``"circular"``: periodic images; ``A`` is diagonal in the Fourier domain, so ``A``, ``Aᵀ`` and
  the prox are exact FFT formulas (the usual setting of PnP/RED papers, DPIR included).
- ``"replicate"``: the image is extended by repeating its edge pixels, then blurred; the output
  has the input's size. No ringing at the border of real photos; prox by conjugate gradient.
- ``"valid"``: only the output pixels whose kernel window lies inside the image are measured,
  (H − k + 1) × (W − k + 1): the most faithful model of a crop of a blurred scene; prox by CG.

``A`` is a true convolution (not a correlation): with the kernel's centre at index
(kh // 2, kw // 2), ``A(x)[i, j] = Σ_{m,n} k[m, n] · x[i − m + kh // 2, j − n + kw // 2]``, the same
for the three boundaries (so they agree away from the border, even for asymmetric kernels).
Every channel is blurred with the same kernel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import DenoiselabError
from .base import LinearOperator, _batch_scalar, _check_images

__all__ = ["Blur", "gaussian_kernel", "uniform_kernel"]

_BOUNDARIES = ("circular", "replicate", "valid")


def gaussian_kernel(std: float, *, size: int | None = None) -> Tensor:
    """A normalised isotropic Gaussian kernel.

    Parameters
    ----------
    std : float
        Standard deviation in pixels, > 0 (1.6 in the RED and DPIR deblurring experiments).
    size : int, optional
        Odd side length in pixels; default ``2·ceil(3·std) + 1``.

    Returns
    -------
    kernel : Tensor, shape (size, size), float64, sums to 1

    Examples
    --------
    >>> k = gaussian_kernel(1.6)
    >>> tuple(k.shape), round(float(k.sum()), 6)
    ((11, 11), 1.0)
    """
    if not std > 0:
        raise DenoiselabError(f"std={std} must be > 0 (pixels)")
    size = 2 * math.ceil(3 * std) + 1 if size is None else int(size)
    if size < 1 or size % 2 == 0:
        raise DenoiselabError(f"size={size} must be a positive odd number of pixels")
    t = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(t**2) / (2 * std**2))
    k = g[:, None] * g[None, :]
    return k / k.sum()


def uniform_kernel(size: int) -> Tensor:
    """A normalised box kernel of ``size × size`` pixels (9 in the RED uniform-blur experiment).

    Examples
    --------
    >>> float(uniform_kernel(3)[0, 0]) == 1 / 9
    True
    """
    if int(size) < 1:
        raise DenoiselabError(f"size={size} must be >= 1 pixel")
    return torch.full((int(size), int(size)), 1.0 / int(size) ** 2, dtype=torch.float64)


class Blur(LinearOperator):
    """Convolution with a fixed kernel, ``y = k * x``.

    Parameters
    ----------
    kernel : Tensor, shape (kh, kw)
        Blur kernel (any real values; normally non-negative and summing to 1). Its centre is
        at (kh // 2, kw // 2).
    boundary : {"circular", "replicate", "valid"}, optional
        How the image is extended beyond its border (see the module docstring). "circular" has an
        exact FFT prox; the other two solve the prox by conjugate gradient.
    kind : str, optional
        A label for what the kernel is ("gaussian", "uniform", "custom"), set by
        :meth:`gaussian` and :meth:`uniform`; RED uses it to pick its published settings.

    Examples
    --------
    >>> op = Blur.gaussian(1.6, boundary="circular")
    >>> x = torch.rand(1, 1, 32, 32, dtype=torch.float64)
    >>> y = op.A(x)
    >>> torch.allclose(y.mean(), x.mean())          # a normalised kernel keeps the mean
    True
    >>> Blur.uniform(9, boundary="valid").A(x).shape
    torch.Size([1, 1, 24, 24])
    """

    def __init__(self, kernel: Tensor, *, boundary: str = "circular", kind: str = "custom") -> None:
        kernel = torch.as_tensor(kernel)
        if kernel.ndim != 2 or not kernel.is_floating_point():
            raise DenoiselabError(f"kernel must be a 2-D float tensor, got shape {tuple(kernel.shape)}")
        if boundary not in _BOUNDARIES:
            raise DenoiselabError(f"boundary={boundary!r} is not one of {', '.join(_BOUNDARIES)}")
        self.kernel = kernel.detach().to(torch.float64)
        self.boundary = boundary
        self.kind = kind
        self._fft_cache: dict[tuple, Tensor] = {}

    @classmethod
    def gaussian(cls, std: float, *, size: int | None = None, boundary: str = "circular") -> "Blur":
        """Gaussian blur of `std` pixels (see :func:`gaussian_kernel`)."""
        return cls(gaussian_kernel(std, size=size), boundary=boundary, kind="gaussian")

    @classmethod
    def uniform(cls, size: int, *, boundary: str = "circular") -> "Blur":
        """Uniform (box) blur of ``size × size`` pixels (see :func:`uniform_kernel`)."""
        return cls(uniform_kernel(size), boundary=boundary, kind="uniform")

    def __repr__(self) -> str:
        kh, kw = self.kernel.shape
        return f"Blur(kind={self.kind!r}, kernel={kh}x{kw}, boundary={self.boundary!r})"

    # -- spatial-domain pieces (replicate, valid) -------------------------------------------------

    def _weight(self, x: Tensor) -> Tensor:
        """The kernel flipped (conv2d correlates) as a depthwise (C, 1, kh, kw) weight."""
        k = torch.flip(self.kernel, dims=(0, 1)).to(dtype=x.dtype, device=x.device)
        return k.expand(x.shape[1], 1, *k.shape)

    def _pads(self) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) replicate padding that centres the kernel at (kh//2, kw//2)."""
        kh, kw = self.kernel.shape
        return (kw - 1 - kw // 2, kw // 2, kh - 1 - kh // 2, kh // 2)

    def _check_size(self, x: Tensor) -> None:
        kh, kw = self.kernel.shape
        if x.shape[-2] < kh or x.shape[-1] < kw:
            raise DenoiselabError(f"image of {x.shape[-2]}x{x.shape[-1]} pixels is smaller than the {kh}x{kw} blur kernel")

    # -- circular (FFT) pieces --------------------------------------------------------------------

    def _otf(self, h: int, w: int, like: Tensor) -> Tensor:
        """rfft2 of the kernel zero-padded to (h, w) with its centre moved to pixel (0, 0)."""
        key = (h, w, like.dtype, like.device)
        if key not in self._fft_cache:
            kh, kw = self.kernel.shape
            pad = torch.zeros(h, w, dtype=like.dtype, device=like.device)
            pad[:kh, :kw] = self.kernel.to(dtype=like.dtype, device=like.device)
            pad = torch.roll(pad, shifts=(-(kh // 2), -(kw // 2)), dims=(0, 1))
            self._fft_cache[key] = torch.fft.rfft2(pad)
        return self._fft_cache[key]

    # -- the operator -----------------------------------------------------------------------------

    def A(self, x: Tensor) -> Tensor:  # noqa: N802
        _check_images(x)
        self._check_size(x)
        if self.boundary == "circular":
            h, w = x.shape[-2:]
            return torch.fft.irfft2(torch.fft.rfft2(x) * self._otf(h, w, x), s=(h, w))
        if self.boundary == "replicate":
            x = F.pad(x, self._pads(), mode="replicate")
        return F.conv2d(x, self._weight(x), groups=x.shape[1])

    def A_adjoint(self, y: Tensor) -> Tensor:  # noqa: N802
        _check_images(y, "y")
        if self.boundary == "circular":
            h, w = y.shape[-2:]
            return torch.fft.irfft2(torch.fft.rfft2(y) * self._otf(h, w, y).conj(), s=(h, w))
        x = F.conv_transpose2d(y, self._weight(y), groups=y.shape[1])
        if self.boundary == "replicate":
            x = _replicate_pad_adjoint(x, self._pads())
        return x

    def prox(self, z: Tensor, y: Tensor, gamma: float | Tensor) -> Tensor:
        if self.boundary != "circular":
            return super().prox(z, y, gamma)
        _check_images(z, "z")
        g = _batch_scalar(gamma, z, "gamma")
        h, w = z.shape[-2:]
        otf = self._otf(h, w, z)
        # (|K|² + 1/g) X = conj(K) Y + Z/g, solved pointwise in the Fourier domain.
        num = otf.conj() * torch.fft.rfft2(y) + torch.fft.rfft2(z) / g
        return torch.fft.irfft2(num / (otf.abs() ** 2 + 1 / g), s=(h, w))

    def initial_estimate(self, y: Tensor) -> Tensor:
        """The observation itself; for "valid", extended to the image size by replicating its edges."""
        if self.boundary == "valid":
            # valid output pixel (i, j) is centred on image pixel (i + top, j + left)
            return F.pad(y, self._pads(), mode="replicate")
        return y


def _replicate_pad_adjoint(g: Tensor, pads: tuple[int, int, int, int]) -> Tensor:
    """Transpose of ``F.pad(x, pads, mode="replicate")``: fold each padded band onto the edge it copies."""
    left, right, top, bottom = pads
    h, w = g.shape[-2] - top - bottom, g.shape[-1] - left - right
    rows = g[..., top:top + h, :].clone()
    rows[..., 0, :] += g[..., :top, :].sum(dim=-2)
    rows[..., -1, :] += g[..., top + h:, :].sum(dim=-2)
    out = rows[..., left:left + w].clone()
    out[..., 0] += rows[..., :left].sum(dim=-1)
    out[..., -1] += rows[..., left + w:].sum(dim=-1)
    return out
