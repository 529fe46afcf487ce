"""Linear forward operators: the base classes, conjugate gradient and the adjointness check.

Every operator is a plain object with two methods that define it,

- ``A(x)``: images ``x`` (B, C, H, W) → measurements ``y`` (shape set by the operator),
- ``A_adjoint(y)``: measurements → images, the exact transpose of ``A``,

and three that solvers use:

- ``prox(z, y, gamma)`` = argmin_x ½‖Ax − y‖² + ‖x − z‖²/(2·gamma), the data step of PnP and
  RED; exact (FFT or SVD) where the structure allows it, conjugate gradient otherwise;
- ``initial_estimate(y)``: a cheap image-shaped guess from the measurements, to start a solver;
- for :class:`DecomposableOperator`, an SVD ``A = U·diag(s)·Vᵀ`` given as operators (``U``,
  ``U_adjoint``, ``V``, ``V_adjoint``, ``singulars``), which DDRM/SNIPS-style samplers need.

Operators hold no device or dtype: constant tensors (kernels, masks) are moved to ``x``'s on
the fly, so the same object works for float32 images and float64 tests.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..errors import DenoiselabError

__all__ = ["LinearOperator", "DecomposableOperator", "Identity", "adjoint_gap", "solve_cg"]


def _check_images(x: Tensor, name: str = "x") -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        desc = f"shape {tuple(x.shape)}, dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise DenoiselabError(f"{name} must be a float tensor of shape (B, C, H, W), got {desc}")


def _batch_scalar(value: float | Tensor, like: Tensor, name: str) -> Tensor:
    """A positive float or (B,) tensor as a (B or 1, 1, 1, 1) tensor on `like`'s device and dtype."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] not in (1, like.shape[0])):
        raise DenoiselabError(f"{name} must be a float or a ({like.shape[0]},) tensor, got shape {tuple(t.shape)}")
    if not bool(((t > 0) & torch.isfinite(t)).all()):
        raise DenoiselabError(f"{name} must be finite and > 0, got {value}")
    return t.reshape(-1, 1, 1, 1)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-image inner product, shape (B, 1, 1, 1)."""
    return (a * b).sum(dim=(1, 2, 3), keepdim=True)


def solve_cg(apply: Callable[[Tensor], Tensor], b: Tensor, x0: Tensor | None = None, *,
             n_steps: int = 100, tol: float = 1e-6) -> Tensor:
    """Solve ``apply(x) = b`` by conjugate gradient, independently for each image of the batch.

    Parameters
    ----------
    apply : callable
        A symmetric positive definite linear map on (B, C, H, W) tensors that acts on each image
        separately (e.g. ``x ↦ AᵀAx + x/gamma``).
    b : Tensor, shape (B, C, H, W)
        Right-hand side.
    x0 : Tensor, shape (B, C, H, W), optional
        Starting point (zeros by default); a good one (e.g. the prox centre) saves iterations.
    n_steps : int, optional
        Maximum number of CG iterations, >= 1.
    tol : float, optional
        Stop when every image's residual norm is below ``tol·‖b‖`` (relative, > 0).

    Returns
    -------
    x : Tensor, shape (B, C, H, W)

    Examples
    --------
    >>> b = torch.arange(4.0).view(1, 1, 2, 2)
    >>> x = solve_cg(lambda v: 2 * v, b)
    >>> torch.allclose(x, b / 2)
    True
    """
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - apply(x)
    p = r.clone()
    rs = _dot(r, r)
    threshold = tol**2 * _dot(b, b)
    for _ in range(n_steps):
        if bool((rs <= threshold).all()):
            break
        ap = apply(p)
        curvature = _dot(p, ap)
        alpha = torch.where(curvature > 0, rs / curvature.clamp_min(torch.finfo(b.dtype).tiny), 0.0)
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = _dot(r, r)
        beta = torch.where(rs > 0, rs_new / rs.clamp_min(torch.finfo(b.dtype).tiny), 0.0)
        p = r + beta * p
        rs = rs_new
    return x


class LinearOperator:
    """Base class of the forward operators: subclasses define ``A`` and ``A_adjoint``.

    The default ``prox`` solves its normal equations ``(AᵀA + I/gamma) x = Aᵀy + z/gamma`` by
    conjugate gradient (``cg_steps`` iterations at most, relative tolerance ``cg_tol``);
    subclasses with structure override it with an exact solution. The default
    ``initial_estimate`` is ``A_adjoint(y)``.
    """

    cg_steps: int = 100
    cg_tol: float = 1e-6

    def A(self, x: Tensor) -> Tensor:  # noqa: N802 (the maths name)
        raise NotImplementedError

    def A_adjoint(self, y: Tensor) -> Tensor:  # noqa: N802
        raise NotImplementedError

    def prox(self, z: Tensor, y: Tensor, gamma: float | Tensor) -> Tensor:
        """argmin_x ½‖Ax − y‖² + ‖x − z‖²/(2·gamma), for images `z` (B, C, H, W), gamma > 0 (float or (B,))."""
        _check_images(z, "z")
        g = _batch_scalar(gamma, z, "gamma")
        # Multiplied through by gamma, which keeps the system well scaled for large and small gamma.
        rhs = g * self.A_adjoint(y) + z
        return solve_cg(lambda v: g * self.A_adjoint(self.A(v)) + v, rhs, z, n_steps=self.cg_steps, tol=self.cg_tol)

    def initial_estimate(self, y: Tensor) -> Tensor:
        """An image-shaped starting point for solvers, computed cheaply from the measurements `y`."""
        return self.A_adjoint(y)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class DecomposableOperator(LinearOperator):
    """An operator with a known SVD ``A = U · diag(s) · Vᵀ``, given as operators.

    Spectral coefficients live in tensors of the image's shape (B, C, H, W): ``V_adjoint``
    maps an image to its coefficients and ``V`` back (``V`` orthogonal). ``singulars(shape)``
    gives the singular values as a tensor broadcastable to that shape, zero on the null space of
    ``A``. ``U_adjoint`` maps measurements to coefficients (zero where ``s = 0``) and ``U`` back,
    so that ``U(U_adjoint(y)) = y``. Then ``A(x) = U(s · V_adjoint(x))``,
    ``A_adjoint(y) = V(s · U_adjoint(y))`` and the prox is exact:
    ``V[(s·Uᵀy + Vᵀz/gamma) / (s² + 1/gamma)]``.
    """

    def U(self, c: Tensor) -> Tensor:  # noqa: N802
        raise NotImplementedError

    def U_adjoint(self, y: Tensor) -> Tensor:  # noqa: N802
        raise NotImplementedError

    def V(self, c: Tensor) -> Tensor:  # noqa: N802
        raise NotImplementedError

    def V_adjoint(self, x: Tensor) -> Tensor:  # noqa: N802
        raise NotImplementedError

    def singulars(self, shape: torch.Size | tuple[int, ...], *, dtype: torch.dtype = torch.float32,
                  device: torch.device | str = "cpu") -> Tensor:
        raise NotImplementedError

    def A(self, x: Tensor) -> Tensor:  # noqa: N802
        _check_images(x)
        return self.U(self.singulars(x.shape, dtype=x.dtype, device=x.device) * self.V_adjoint(x))

    def A_adjoint(self, y: Tensor) -> Tensor:  # noqa: N802
        c = self.U_adjoint(y)
        return self.V(self.singulars(c.shape, dtype=c.dtype, device=c.device) * c)

    def prox(self, z: Tensor, y: Tensor, gamma: float | Tensor) -> Tensor:
        _check_images(z, "z")
        g = _batch_scalar(gamma, z, "gamma")
        s = self.singulars(z.shape, dtype=z.dtype, device=z.device)
        c = (g * s * self.U_adjoint(y) + self.V_adjoint(z)) / (g * s**2 + 1)
        return self.V(c)


class PixelDiagonalOperator(DecomposableOperator):
    """A :class:`DecomposableOperator` that is diagonal in the pixel basis: ``U`` and ``V`` are
    the identity and ``singulars`` holds the per-pixel gains (identity, inpainting)."""

    def U(self, c: Tensor) -> Tensor:  # noqa: N802
        return c

    def U_adjoint(self, y: Tensor) -> Tensor:  # noqa: N802
        _check_images(y, "y")
        return y

    def V(self, c: Tensor) -> Tensor:  # noqa: N802
        return c

    def V_adjoint(self, x: Tensor) -> Tensor:  # noqa: N802
        _check_images(x)
        return x


class Identity(PixelDiagonalOperator):
    """The identity, ``A(x) = x``: the forward model of plain denoising.

    Examples
    --------
    >>> op = Identity()
    >>> x = torch.rand(1, 1, 8, 8)
    >>> torch.equal(op.A(x), x)
    True
    >>> torch.allclose(op.prox(torch.zeros_like(x), x, 1.0), x / 2)    # the midpoint of z and y
    True
    """

    def A(self, x: Tensor) -> Tensor:  # noqa: N802
        _check_images(x)
        return x

    def A_adjoint(self, y: Tensor) -> Tensor:  # noqa: N802
        _check_images(y, "y")
        return y

    def singulars(self, shape, *, dtype=torch.float32, device="cpu") -> Tensor:
        return torch.ones(1, 1, 1, 1, dtype=dtype, device=device)

    def initial_estimate(self, y: Tensor) -> Tensor:
        return y


def adjoint_gap(op: LinearOperator, shape: tuple[int, int, int, int], *, dtype: torch.dtype = torch.float64,
                generator: torch.Generator | None = None) -> float:
    """Relative adjointness error ``|⟨Ax, y⟩ − ⟨x, Aᵀy⟩| / (‖Ax‖·‖y‖)`` for random x, y.

    Parameters
    ----------
    op : LinearOperator
        The operator to check.
    shape : tuple of 4 ints
        Image shape (B, C, H, W) on which to test.
    dtype : torch.dtype, optional
        float64 (default) makes the gap ~1e-15 for an exact adjoint; float32 gives ~1e-7.
    generator : torch.Generator, optional
        For reproducible draws.

    Returns
    -------
    gap : float
        0 for an exact adjoint up to rounding.

    Examples
    --------
    >>> adjoint_gap(Identity(), (1, 1, 8, 8)) < 1e-12
    True
    """
    x = torch.randn(shape, dtype=dtype, generator=generator)
    ax = op.A(x)
    y = torch.randn(ax.shape, dtype=dtype, generator=generator)
    aty = op.A_adjoint(y)
    lhs, rhs = float((ax * y).sum()), float((x * aty).sum())
    scale = max(float(ax.norm() * y.norm()), float(x.norm() * aty.norm()), torch.finfo(dtype).tiny)
    return abs(lhs - rhs) / scale
