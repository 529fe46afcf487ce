"""Super-resolution forward models: downsampling by an integer factor (×2, ×3, ×4, ...).

- :class:`BoxDownsample`: the mean of each ``f × f`` block. Its SVD is exact and cheap
  (one orthonormal basis per block), so ``prox`` is exact and DDRM/SNIPS can use it.
- :class:`BicubicDownsample`: antialiased bicubic decimation as in MATLAB's ``imresize``
  (Keys cubic with a = −0.5, kernel widened by the factor, symmetric extension at the border,
  rows renormalised), the usual SR benchmark degradation. It is separable, ``A(x) = Wh · x · Wwᵀ``
  with explicit 1-D matrices, so the adjoint is the explicit transpose ``Whᵀ · y · Ww``;
  ``prox`` uses conjugate gradient.

Both need image sides divisible by the factor; the measurement is ``(B, C, H/f, W/f)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import DenoiselabError
from .base import DecomposableOperator, LinearOperator, _check_images

__all__ = ["BoxDownsample", "BicubicDownsample"]


def _check_factor(factor: int) -> int:
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise DenoiselabError(f"factor={factor!r} must be a positive integer (2, 3 or 4 for the usual SR tasks)")
    return factor


def _check_divisible(x: Tensor, factor: int) -> None:
    h, w = x.shape[-2:]
    if h % factor or w % factor:
        raise DenoiselabError(
            f"image of {h}x{w} pixels is not divisible by the factor {factor}; "
            f"crop it to {h - h % factor}x{w - w % factor}")


class BoxDownsample(DecomposableOperator):
    """Block averaging: ``y[i, j]`` is the mean of the ``factor × factor`` block at (i·f, j·f).

    SVD: within a block, A is the row vector ``1ᵀ/f²``, with one singular value ``1/f`` and
    right singular vector ``1/f`` (the normalised constant). ``V`` is an orthonormal basis of
    each block whose first vector is that constant; its coefficient sits at the block's
    top-left pixel, where ``singulars`` is ``1/f`` (0 elsewhere). ``U`` is the identity on the
    low-resolution grid, placed at those top-left pixels.

    Parameters
    ----------
    factor : int
        Downsampling factor, >= 1 (2, 3, 4 for ×2/×3/×4 SR).

    Examples
    --------
    >>> op = BoxDownsample(2)
    >>> x = torch.arange(16.0).view(1, 1, 4, 4)
    >>> op.A(x)
    tensor([[[[ 2.5000,  4.5000],
              [10.5000, 12.5000]]]])
    >>> torch.allclose(op.V(op.V_adjoint(x)), x, atol=1e-6)  # float32 round-off of the orthonormal basis
    True
    """

    def __init__(self, factor: int) -> None:
        self.factor = _check_factor(factor)
        self._basis_cache: dict[tuple, Tensor] = {}

    def __repr__(self) -> str:
        return f"BoxDownsample(factor={self.factor})"

    def _basis(self, like: Tensor) -> Tensor:
        """(f², f²) orthogonal matrix, first column the constant 1/f (Gram–Schmidt by QR)."""
        key = (like.dtype, like.device)
        if key not in self._basis_cache:
            n = self.factor**2
            m = torch.eye(n, dtype=torch.float64)
            m[:, 0] = 1.0
            q, r = torch.linalg.qr(m)
            q = q * torch.sign(torch.diagonal(r))[None, :]  # positive diagonal of R: first column is +1/f
            self._basis_cache[key] = q.to(dtype=like.dtype, device=like.device)
        return self._basis_cache[key]

    def _blocks(self, x: Tensor) -> Tensor:
        """(B, C, H, W) → (B, C, H/f, W/f, f²), each block's pixels in raster order."""
        b, c, h, w = x.shape
        f = self.factor
        return x.reshape(b, c, h // f, f, w // f, f).permute(0, 1, 2, 4, 3, 5).reshape(b, c, h // f, w // f, f * f)

    def _unblocks(self, t: Tensor) -> Tensor:
        b, c, hb, wb, _ = t.shape
        f = self.factor
        return t.reshape(b, c, hb, wb, f, f).permute(0, 1, 2, 4, 3, 5).reshape(b, c, hb * f, wb * f)

    def A(self, x: Tensor) -> Tensor:  # noqa: N802
        _check_images(x)
        _check_divisible(x, self.factor)
        return F.avg_pool2d(x, self.factor)

    def A_adjoint(self, y: Tensor) -> Tensor:  # noqa: N802
        _check_images(y, "y")
        return torch.repeat_interleave(torch.repeat_interleave(y, self.factor, dim=-2), self.factor, dim=-1) / self.factor**2

    def V_adjoint(self, x: Tensor) -> Tensor:  # noqa: N802
        _check_images(x)
        _check_divisible(x, self.factor)
        return self._unblocks(self._blocks(x) @ self._basis(x))

    def V(self, c: Tensor) -> Tensor:  # noqa: N802
        _check_images(c, "c")
        _check_divisible(c, self.factor)
        return self._unblocks(self._blocks(c) @ self._basis(c).T)

    def U_adjoint(self, y: Tensor) -> Tensor:  # noqa: N802
        _check_images(y, "y")
        b, ch, h, w = y.shape
        c = y.new_zeros(b, ch, h * self.factor, w * self.factor)
        c[..., :: self.factor, :: self.factor] = y
        return c

    def U(self, c: Tensor) -> Tensor:  # noqa: N802
        return c[..., :: self.factor, :: self.factor]

    def singulars(self, shape, *, dtype=torch.float32, device="cpu") -> Tensor:
        h, w = shape[-2:]
        s = torch.zeros(1, 1, h, w, dtype=dtype, device=device)
        s[..., :: self.factor, :: self.factor] = 1.0 / self.factor
        return s

    def initial_estimate(self, y: Tensor) -> Tensor:
        """Nearest-neighbour upsampling, the pseudo-inverse ``A⁺y``."""
        return self.A_adjoint(y) * self.factor**2


def _keys_cubic(t: Tensor, a: float = -0.5) -> Tensor:
    """Keys' cubic convolution kernel (a = −0.5, as MATLAB's imresize)."""
    t = t.abs()
    near = (a + 2) * t**3 - (a + 3) * t**2 + 1
    far = a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def _bicubic_matrix(n_in: int, factor: int) -> Tensor:
    """(n_in / factor, n_in) float64 matrix of antialiased bicubic decimation along one axis."""
    n_out = n_in // factor
    centre = (torch.arange(n_out, dtype=torch.float64) + 0.5) * factor - 0.5  # output pixel in input coordinates
    reach = 2 * factor  # the cubic's support [-2, 2], widened by the factor (antialiasing)
    offsets = torch.arange(-reach, reach + 1, dtype=torch.float64)
    taps = torch.floor(centre)[:, None] + offsets[None, :]  # (n_out, n_taps) input indices
    weights = _keys_cubic((taps - centre[:, None]) / factor)
    # symmetric extension at the border: index -1 → 0, -2 → 1, n → n - 1, ...
    idx = taps.long()
    idx = torch.where(idx < 0, -idx - 1, idx)
    idx = torch.where(idx >= n_in, 2 * n_in - 1 - idx, idx).clamp(0, n_in - 1)
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m.scatter_add_(1, idx, weights)
    return m / m.sum(dim=1, keepdim=True)


class BicubicDownsample(LinearOperator):
    """Antialiased bicubic downsampling by an integer factor (MATLAB ``imresize`` convention).

    Parameters
    ----------
    factor : int
        Downsampling factor, >= 1 (2, 3, 4 for ×2/×3/×4 SR).

    Examples
    --------
    >>> op = BicubicDownsample(2)
    >>> x = torch.full((1, 3, 8, 8), 0.5)
    >>> y = op.A(x)
    >>> tuple(y.shape), torch.allclose(y, torch.full_like(y, 0.5))   # rows sum to 1
    ((1, 3, 4, 4), True)
    """

    def __init__(self, factor: int) -> None:
        self.factor = _check_factor(factor)
        self._matrix_cache: dict[tuple, Tensor] = {}

    def __repr__(self) -> str:
        return f"BicubicDownsample(factor={self.factor})"

    def _matrix(self, n_in: int, like: Tensor) -> Tensor:
        key = (n_in, like.dtype, like.device)
        if key not in self._matrix_cache:
            self._matrix_cache[key] = _bicubic_matrix(n_in, self.factor).to(dtype=like.dtype, device=like.device)
        return self._matrix_cache[key]

    def A(self, x: Tensor) -> Tensor:  # noqa: N802
        _check_images(x)
        _check_divisible(x, self.factor)
        wh, ww = self._matrix(x.shape[-2], x), self._matrix(x.shape[-1], x)
        return wh @ x @ ww.T

    def A_adjoint(self, y: Tensor) -> Tensor:  # noqa: N802
        _check_images(y, "y")
        wh = self._matrix(y.shape[-2] * self.factor, y)
        ww = self._matrix(y.shape[-1] * self.factor, y)
        return wh.T @ y @ ww

    def initial_estimate(self, y: Tensor) -> Tensor:
        """Bicubic upsampling of the observation (torch's ``interpolate``)."""
        _check_images(y, "y")
        return F.interpolate(y, scale_factor=self.factor, mode="bicubic", align_corners=False)

