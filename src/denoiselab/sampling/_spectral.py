"""Shared pieces of the posterior samplers: checks of the observation and the SVD view of an operator."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import DenoiselabError
from ..physics.base import DecomposableOperator


def check_observation(y: Tensor, name: str = "y") -> Tensor:
    """Raise DenoiselabError unless `y` is a finite floating (B, C, H, W) tensor."""
    if not isinstance(y, Tensor) or y.ndim != 4 or not y.is_floating_point():
        desc = f"shape {tuple(y.shape)}, dtype {y.dtype}" if isinstance(y, Tensor) else type(y).__name__
        raise DenoiselabError(f"{name} must be a float tensor of shape (B, C, H, W), got {desc}")
    if not bool(torch.isfinite(y).all()):
        raise DenoiselabError(f"{name} holds NaN or infinite values; clean or mask them first")
    return y


def check_noise_sigma(sigma: float, *, allow_zero: bool = False) -> float:
    """The measurement noise std on [0, 1]: a finite number > 0 (>= 0 with `allow_zero`), not on 0-255."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma):
        raise DenoiselabError(f"sigma={sigma!r} must be the noise std on the [0, 1] scale, a finite number")
    if sigma < 0 or (sigma == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise DenoiselabError(f"sigma={sigma!r} must be {bound} (noise std on the [0, 1] scale)")
    if sigma > 1:
        raise DenoiselabError(f"sigma={sigma} looks like the 0-255 scale; denoiselab uses [0, 1], pass {sigma}/255 "
                              f"≈ {sigma / 255:.3g}")
    return float(sigma)


def check_levels(sigmas, name: str = "sigmas") -> list[float]:
    """A non-empty, strictly decreasing sequence of positive levels, as Python floats."""
    try:
        levels = [float(s) for s in torch.as_tensor(sigmas, dtype=torch.float64).flatten()]
    except (TypeError, ValueError, RuntimeError) as err:
        raise DenoiselabError(f"{name} must be a 1-D sequence of noise levels (std on [0, 1])") from err
    if not levels or any(not (s > 0 and math.isfinite(s)) for s in levels) \
            or any(b >= a for a, b in zip(levels, levels[1:])):
        raise DenoiselabError(f"{name} must be a non-empty, strictly decreasing sequence of positive levels "
                              "(std on [0, 1])")
    return levels


class Spectral(NamedTuple):
    """The measurement in the SVD coordinates of ``A = U diag(s) Vᵀ`` (all tensors broadcast to x's shape).

    ``s``: singular values (0 on the null space); ``y_bar``: ``Uᵀy / s`` where s > 0, else 0 (the
    pseudo-inverse solution's coefficients); ``observed``: bool mask of s > 0.
    """

    s: Tensor
    y_bar: Tensor
    observed: Tensor


def spectral_view(op, y: Tensor, shape: tuple[int, int, int, int], *, dtype: torch.dtype,
                  device: torch.device | str) -> Spectral:
    """Check that `op` exposes an SVD and fits `y`; return the measurement in its spectral coordinates."""
    if not isinstance(op, DecomposableOperator):
        raise DenoiselabError(f"op must expose its SVD (a physics.DecomposableOperator such as Identity, "
                              f"BoxDownsample or Inpainting), got {type(op).__name__}; for other operators "
                              "use the PnP/RED solvers")
    y = y.to(dtype=dtype, device=device)
    try:
        y_spec = op.U_adjoint(y)
        s = op.singulars(shape, dtype=dtype, device=device)
        s, y_spec = torch.broadcast_tensors(s, y_spec)
        if tuple(y_spec.shape) != tuple(shape):
            raise RuntimeError(f"spectral coefficients of shape {tuple(y_spec.shape)}")
        x_probe = op.A(torch.zeros(shape, dtype=dtype, device=device))
    except RuntimeError as err:  # shapes that do not fit each other
        raise DenoiselabError(f"measurement y of shape {tuple(y.shape)} does not fit {op!r} for images of shape "
                              f"{tuple(shape)}: {err}") from err
    if tuple(x_probe.shape) != tuple(y.shape):
        raise DenoiselabError(f"measurement y has shape {tuple(y.shape)} but {op!r} maps images of shape "
                              f"{tuple(shape)} to {tuple(x_probe.shape)}")
    s = s.contiguous()
    observed = s > 0
    y_bar = torch.where(observed, y_spec / torch.where(observed, s, torch.ones_like(s)), torch.zeros_like(s))
    return Spectral(s=s, y_bar=y_bar, observed=observed)


def image_shape(op, y: Tensor, shape: tuple[int, ...] | None) -> tuple[int, int, int, int]:
    """The image shape to sample: `shape` if given, else that of ``A_adjoint(y)``."""
    if shape is not None:
        try:
            dims = tuple(int(v) for v in shape)
        except (TypeError, ValueError) as err:
            raise DenoiselabError(f"shape={shape!r} must be (B, C, H, W)") from err
        if len(dims) != 4 or min(dims) < 1:
            raise DenoiselabError(f"shape={tuple(shape)} must be four positive sizes (B, C, H, W)")
        return dims  # type: ignore[return-value]
    try:
        return tuple(op.A_adjoint(y).shape)  # type: ignore[return-value]
    except RuntimeError as err:
        raise DenoiselabError(f"measurement y of shape {tuple(y.shape)} does not fit {op!r}: {err}") from err
