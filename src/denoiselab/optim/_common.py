"""Shared pieces of the solvers: argument checks, the per-iteration record, the progress loop."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import DenoiselabError
from ..physics import LinearOperator

Callback = Callable[[dict[str, Any]], None]


@dataclass
class SolveRecord:
    """What a solver did, one entry per iteration (returned with ``return_record=True``).

    Attributes
    ----------
    sigmas : list of float
        Noise level passed to the denoiser at each iteration (std on [0, 1]).
    change : list of float
        Relative change of the iterate, ``‖x_k − x_{k−1}‖ / ‖x_{k−1}‖`` (whole batch).
    data_fit : list of float
        ``‖A x_k − y‖² / (m σ²)`` averaged over the batch (m = number of measurements per
        image): about 1 when the estimate explains the data down to the noise.
    objective : list of float
        The objective the solver minimises, batch mean, where it has one (RED); else empty.
    """

    sigmas: list[float] = field(default_factory=list)
    change: list[float] = field(default_factory=list)
    data_fit: list[float] = field(default_factory=list)
    objective: list[float] = field(default_factory=list)

    def add(self, sigma: float, x: Tensor, x_prev: Tensor, op: LinearOperator, y: Tensor, noise_sigma: float) -> None:
        self.sigmas.append(float(sigma))
        self.change.append(float((x - x_prev).norm() / x_prev.norm().clamp_min(1e-12)))
        residual = op.A(x) - y
        self.data_fit.append(float(residual.pow(2).mean() / noise_sigma**2))


def check_problem(y: Tensor, op: LinearOperator, denoiser: Callable, sigma: float) -> float:
    """Validate the arguments every solver shares; return sigma as a float."""
    if not isinstance(y, Tensor) or y.ndim != 4 or not y.is_floating_point():
        desc = f"shape {tuple(y.shape)}" if isinstance(y, Tensor) else type(y).__name__
        raise DenoiselabError(f"y must be a float tensor (B, C, H, W), got {desc}")
    if not isinstance(op, LinearOperator):
        raise DenoiselabError(f"op must be a denoiselab.physics operator, got {type(op).__name__}")
    if not callable(denoiser):
        raise DenoiselabError(f"denoiser must be callable as denoiser(x, sigma), got {type(denoiser).__name__}")
    try:
        sigma = float(sigma)
    except (TypeError, ValueError) as err:
        raise DenoiselabError(f"sigma={sigma!r} must be a float (noise std on [0, 1])") from err
    if not (sigma > 0 and math.isfinite(sigma)):
        raise DenoiselabError(f"sigma={sigma} must be > 0 (noise std on [0, 1]); for noise-free data pass a small value such as 1/255")
    if sigma > 1:
        raise DenoiselabError(f"sigma={sigma} looks like the 0-255 scale; denoiselab uses [0, 1], pass {sigma:g}/255 = {sigma / 255:.4f}")
    return sigma


def check_positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
        raise DenoiselabError(f"{name}={value!r} must be a positive number")
    return float(value)


def check_steps(n_steps: int) -> int:
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise DenoiselabError(f"n_steps={n_steps!r} must be a positive integer")
    return n_steps


def start(y: Tensor, op: LinearOperator, x_init: Tensor | None) -> Tensor:
    """The solver's starting image: `x_init`, or the operator's cheap estimate from `y`."""
    x = op.initial_estimate(y) if x_init is None else x_init
    if not isinstance(x, Tensor) or x.shape != op.A_adjoint(y).shape:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise DenoiselabError(f"x_init has shape {shape}, the operator's images have {tuple(op.A_adjoint(y).shape)}")
    return x.to(dtype=y.dtype, device=y.device)


def steps(values: Iterable, progress: bool, desc: str) -> Iterable:
    return tqdm(values, desc=desc, disable=not progress, leave=False)


def as_float_sigmas(sigmas: Tensor | Iterable[float]) -> list[float]:
    values = [float(s) for s in torch.as_tensor(sigmas, dtype=torch.float64).flatten()]
    if not values or any(not (s > 0 and math.isfinite(s)) for s in values):
        raise DenoiselabError("sigmas must be a non-empty sequence of positive noise levels (std on [0, 1])")
    return values
