"""Solvers for inverse problems ``y = A x + n`` with a denoiser as the prior.

- :func:`solve_pnp_hqs` (DPIR) and :func:`solve_pnp_admm`: the denoiser replaces a proximal
  step; the denoiser level falls log-spaced from 49/255 to the noise level (:func:`dpir_sigmas`).
- :func:`solve_red_steepest_descent`, :func:`solve_red_fixed_point`: minimise the explicit
  RED objective ``‖Ax − y‖²/(2σ²) + λ/2 xᵀ(x − D(x))`` (:func:`red_objective`).

Every solver is a function of ``(y, op, denoiser)`` with keyword-only options: ``op`` is a
``denoiselab.physics`` operator, ``denoiser`` any ``denoiser(x, sigma)`` callable, and ``sigma``
the noise std of ``y`` on [0, 1]. Each returns the estimate, and with ``return_record=True`` a
:class:`SolveRecord` of the iterations too.

(The style guide names this package ``solvers/``; it is ``optim/`` as issue 10 asks, after
deepinv's split into physics / optim / sampling.)
"""

from ._common import SolveRecord
from .pnp import dpir_sigmas, solve_pnp_admm, solve_pnp_hqs
from .red import (
    red_gradient,
    red_objective,
    red_paper_settings,
    red_regularizer,
    solve_red_fixed_point,
    solve_red_steepest_descent,
)

__all__ = [
    "SolveRecord", "dpir_sigmas", "solve_pnp_admm", "solve_pnp_hqs",
    "red_gradient", "red_objective", "red_paper_settings", "red_regularizer",
    "solve_red_fixed_point", "solve_red_steepest_descent",
]
