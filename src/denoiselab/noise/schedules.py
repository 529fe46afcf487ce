"""Noise-level schedules: descending 1-D tensors of σ on the [0, 1] scale, shared by solvers and samplers."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import DenoiselabError

__all__ = ["sigmas_geometric"]


def sigmas_geometric(n_steps: int, sigma_max: float, sigma_min: float) -> Tensor:
    """`n_steps` noise levels log-spaced from `sigma_max` down to `sigma_min`, both included.

    The schedule of DPIR (Zhang et al. 2021: 8 levels from 49/255 to the noise level) and of
    annealed Langevin sampling (Song & Ermon 2019).

    Parameters
    ----------
    n_steps : int
        Number of levels, >= 1 (one level gives ``[sigma_max]``).
    sigma_max, sigma_min : float
        First and last level, std on the [0, 1] scale, ``sigma_max >= sigma_min > 0``.

    Returns
    -------
    sigmas : Tensor, shape (n_steps,), float64, non-increasing

    Examples
    --------
    >>> s = sigmas_geometric(8, 49 / 255, 2.55 / 255)
    >>> [round(float(v) * 255, 2) for v in (s[0], s[-1])]
    [49.0, 2.55]
    """
    if int(n_steps) < 1:
        raise DenoiselabError(f"n_steps={n_steps} must be >= 1")
    if not sigma_max >= sigma_min > 0:
        raise DenoiselabError(f"need sigma_max >= sigma_min > 0 (std on [0, 1]), got {sigma_max} and {sigma_min}")
    if int(n_steps) == 1:
        return torch.tensor([float(sigma_max)], dtype=torch.float64)
    return torch.logspace(math.log10(sigma_max), math.log10(sigma_min), int(n_steps), dtype=torch.float64)
