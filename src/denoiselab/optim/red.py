"""Regularization by denoising (RED): the prior ρ(x) = ½ xᵀ(x − D(x)) and two ways to minimise

    E(x) = ‖Ax − y‖² / (2σ²) + λ ρ(x).

Under local homogeneity and a symmetric Jacobian of D (Romano et al.), ∇ρ(x) = x − D(x),
so the gradient needs one denoiser call and no differentiation through the network.

Units: everything is on the [0, 1] intensity scale. ``lam`` has units of 1/intensity², so a
λ₂₅₅ quoted for 0–255 pixels is ``λ₂₅₅ · 255²`` here (E is unchanged: ‖Ax−y‖²/σ² is scale-free
and ρ scales with intensity², for a homogeneous D). Published settings (Romano et al.'s
experiments, 0–255 values; our ``lam`` is λ₂₅₅ · 255²), used when ``lam``/``denoiser_sigma`` are left at None:

=================================  =============  ==========  ===========================
problem (operator)                 noise σ        λ₂₅₅        denoiser σ_f
=================================  =============  ==========  ===========================
9×9 uniform blur (``Blur.uniform``)  √2/255       0.02        3.25/255
Gaussian blur, std 1.6 (any Blur)  √2/255         0.01        4.1/255
×3 super-resolution (downsampling) 5/255          0.008       3/255
anything else                      —              0.01        4.1/255 (the Gaussian-blur row)
=================================  =============  ==========  ===========================

References
----------
Y. Romano, M. Elad, P. Milanfar, "The little engine that could: regularization by denoising
(RED)", SIAM J. Imaging Sciences 10(4), 2017, doi:10.1137/16M1102884.
E. T. Reehorst, P. Schniter, "Regularization by denoising: clarifications and new
interpretations", IEEE TCI 5(1), 2019, doi:10.1109/TCI.2018.2880326 (when ∇ρ = x − D(x) fails).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..physics import BicubicDownsample, Blur, BoxDownsample, LinearOperator
from ._common import Callback, SolveRecord, check_positive, check_problem, check_steps, start, steps

__all__ = ["red_regularizer", "red_gradient", "red_objective", "red_paper_settings",
           "solve_red_steepest_descent", "solve_red_fixed_point"]

_SCALE = 255.0**2  # λ on [0, 1] = λ₂₅₅ · 255²


def red_paper_settings(op: LinearOperator) -> tuple[float, float]:
    """RED's published ``(lam, denoiser_sigma)`` for the problem `op` describes, on the [0, 1] scale.

    See the table in the module docstring.

    Examples
    --------
    >>> lam, s = red_paper_settings(Blur.uniform(9))
    >>> round(lam / 255**2, 3), round(s * 255, 2)
    (0.02, 3.25)
    """
    if isinstance(op, (BoxDownsample, BicubicDownsample)):
        return 0.008 * _SCALE, 3.0 / 255
    if isinstance(op, Blur) and op.kind == "uniform":
        return 0.02 * _SCALE, 3.25 / 255
    return 0.01 * _SCALE, 4.1 / 255


def red_regularizer(denoiser: Callable[[Tensor, float], Tensor], x: Tensor, sigma: float | Tensor) -> Tensor:
    """RED's prior ``ρ(x) = ½ xᵀ(x − D(x, σ))``, one value per image.

    Parameters
    ----------
    denoiser : callable
        ``denoiser(x, sigma)``.
    x : Tensor, shape (B, C, H, W)
        Images on [0, 1].
    sigma : float or Tensor (B,)
        Denoiser level σ_f, std on [0, 1].

    Returns
    -------
    rho : Tensor, shape (B,)

    Examples
    --------
    >>> x = torch.ones(2, 1, 4, 4)
    >>> red_regularizer(lambda v, s: 0.5 * v, x, 0.1)     # ½ · 16 · (1 − 0.5)
    tensor([4., 4.])
    """
    return 0.5 * (x * (x - denoiser(x, sigma))).flatten(1).sum(dim=1)


def red_gradient(denoiser: Callable[[Tensor, float], Tensor], x: Tensor, sigma: float | Tensor) -> Tensor:
    """RED's gradient of ρ, ``x − D(x, σ)`` (exact for a locally homogeneous D with symmetric Jacobian).

    Examples
    --------
    >>> x = torch.ones(1, 1, 2, 2)
    >>> red_gradient(lambda v, s: 0.5 * v, x, 0.1)
    tensor([[[[0.5000, 0.5000],
              [0.5000, 0.5000]]]])
    """
    return x - denoiser(x, sigma)


def red_objective(y: Tensor, op: LinearOperator, denoiser: Callable[[Tensor, float], Tensor], x: Tensor, *,
                  sigma: float, lam: float, denoiser_sigma: float) -> Tensor:
    """``E(x) = ‖Ax − y‖²/(2σ²) + lam · ½ xᵀ(x − D(x, denoiser_sigma))``, one value per image (B,).

    Arguments as in :func:`solve_red_fixed_point`; `x` is the image to evaluate.

    Examples
    --------
    >>> from denoiselab.physics import Identity
    >>> x = torch.zeros(1, 1, 4, 4)
    >>> e = red_objective(x + 0.1, Identity(), lambda v, s: v, x, sigma=0.1, lam=1.0, denoiser_sigma=0.1)
    >>> round(float(e), 4)             # 16 pixels · 0.1² / (2 · 0.1²); D = identity adds no prior
    8.0
    """
    fit = (op.A(x) - y).pow(2).flatten(1).sum(dim=1) / (2 * sigma**2)
    return fit + lam * red_regularizer(denoiser, x, denoiser_sigma)


def _settings(op: LinearOperator, lam: float | None, denoiser_sigma: float | None) -> tuple[float, float]:
    paper_lam, paper_sigma = red_paper_settings(op)
    lam = paper_lam if lam is None else check_positive("lam", lam)
    denoiser_sigma = paper_sigma if denoiser_sigma is None else check_positive("denoiser_sigma", denoiser_sigma)
    return lam, denoiser_sigma


@torch.no_grad()
def solve_red_steepest_descent(y: Tensor, op: LinearOperator, denoiser: Callable[[Tensor, float], Tensor], *,
                               sigma: float, lam: float | None = None, denoiser_sigma: float | None = None,
                               n_steps: int = 1000, step_size: float | None = None, x_init: Tensor | None = None,
                               progress: bool = False, callback: Callback | None = None,
                               return_record: bool = False) -> Tensor | tuple[Tensor, SolveRecord]:
    """Minimise the RED objective by steepest descent (Romano et al.).

    ``x ← x − μ [Aᵀ(Ax − y)/σ² + lam (x − D(x, σ_f))]`` with ``μ = 2/(1/σ² + lam)`` by default:
    ``1/σ² + lam`` bounds the Lipschitz constant L of ∇E when ‖A‖ ≤ 1 and ‖I − D‖ ≤ 1, so μ ≤ 2/L
    (E decreases when the bound is not attained; pass a smaller `step_size` otherwise). One
    denoiser call and one ``A``/``Aᵀ`` pair per iteration, no linear solve.

    Parameters
    ----------
    y : Tensor, shape of ``op.A(x)``
        Measurements on [0, 1].
    op : LinearOperator
        Forward operator (``denoiselab.physics``).
    denoiser : callable
        ``denoiser(x, sigma)``.
    sigma : float
        Noise std of `y` on [0, 1], in (0, 1] (RED's deblurring: √2/255 ≈ 0.0055).
    lam : float, optional
        Prior weight on the [0, 1] scale (λ₂₅₅ · 255²), > 0; default RED's published value for
        the operator (:func:`red_paper_settings`).
    denoiser_sigma : float, optional
        Level σ_f passed to the denoiser (std on [0, 1]); default RED's published value.
        Blind denoisers ignore it.
    n_steps : int, optional
        Iterations, >= 1; 1000 by default (steepest descent converges slowly; ours, not RED's).
    step_size : float, optional
        μ on the [0, 1] scale; default ``2/(1/σ² + lam)`` (Romano et al.).
    x_init : Tensor, optional
        Starting image; default ``op.initial_estimate(y)``.
    progress : bool, optional
        Show a tqdm bar.
    callback : callable, optional
        Called after each iteration with ``{"i", "x", "denoised"}`` (denoised: D at the
        previous iterate).
    return_record : bool, optional
        Also return a :class:`SolveRecord` whose ``objective`` holds E after each step (one
        extra denoiser call per step).

    Returns
    -------
    x_hat : Tensor, image shape, not clamped
    record : SolveRecord, only with ``return_record=True``

    Examples
    --------
    >>> from denoiselab.physics import Identity
    >>> y = torch.full((1, 1, 8, 8), 0.5)
    >>> x_hat = solve_red_steepest_descent(y, Identity(), lambda x, s: x, sigma=0.05, n_steps=3)
    >>> torch.allclose(x_hat, y)      # D = identity adds no prior: the data are the minimum
    True
    """
    sigma = check_problem(y, op, denoiser, sigma)
    lam, denoiser_sigma = _settings(op, lam, denoiser_sigma)
    n_steps = check_steps(n_steps)
    mu = 2.0 / (1.0 / sigma**2 + lam) if step_size is None else check_positive("step_size", step_size)
    x = start(y, op, x_init)
    record = SolveRecord()
    for i in steps(range(n_steps), progress, "RED-SD"):
        denoised = denoiser(x, denoiser_sigma)
        grad = op.A_adjoint(op.A(x) - y) / sigma**2 + lam * (x - denoised)  # ∇E with RED's ∇ρ = x − D(x)
        x_prev, x = x, x - mu * grad
        if return_record:
            record.add(denoiser_sigma, x, x_prev, op, y, sigma)
            record.objective.append(float(red_objective(y, op, denoiser, x, sigma=sigma, lam=lam,
                                                        denoiser_sigma=denoiser_sigma).mean()))
        if callback is not None:
            callback({"i": i, "x": x, "denoised": denoised})
    return (x, record) if return_record else x


@torch.no_grad()
def solve_red_fixed_point(y: Tensor, op: LinearOperator, denoiser: Callable[[Tensor, float], Tensor], *,
                          sigma: float, lam: float | None = None, denoiser_sigma: float | None = None,
                          n_steps: int = 200, x_init: Tensor | None = None, progress: bool = False,
                          callback: Callback | None = None,
                          return_record: bool = False) -> Tensor | tuple[Tensor, SolveRecord]:
    """Minimise the RED objective by the fixed-point iteration (Romano et al.).

    Setting ∇E = 0 with D frozen at the current iterate gives
    ``x ← (AᵀA/σ² + lam I)⁻¹ (Aᵀy/σ² + lam D(x, σ_f))``, i.e. ``op.prox(D(x), y, 1/(lam σ²))``:
    exact by FFT for circular blur, by SVD for downsampling by block average and inpainting,
    by conjugate gradient otherwise. For a linear D with a symmetric positive semi-definite
    matrix this is a majorise–minimise step, so E never increases.

    Parameters
    ----------
    y, op, denoiser, sigma, lam, denoiser_sigma, x_init, progress, return_record
        As in :func:`solve_red_steepest_descent`.
    n_steps : int, optional
        Iterations, >= 1; 200 by default (ours; converges much faster than steepest descent).
    callback : callable, optional
        Called after each iteration with ``{"i", "x", "denoised"}``.

    Returns
    -------
    x_hat : Tensor, image shape, not clamped
    record : SolveRecord, only with ``return_record=True``

    Examples
    --------
    >>> from denoiselab.physics import Identity
    >>> y = torch.ones(1, 1, 4, 4)
    >>> x_hat = solve_red_fixed_point(y, Identity(), lambda x, s: torch.zeros_like(x), sigma=0.1,
    ...                               lam=100.0, n_steps=1)
    >>> round(float(x_hat.mean()), 3)     # D ≡ 0 is Tikhonov: y / (1 + lam σ²)
    0.5
    """
    sigma = check_problem(y, op, denoiser, sigma)
    lam, denoiser_sigma = _settings(op, lam, denoiser_sigma)
    n_steps = check_steps(n_steps)
    x = start(y, op, x_init)
    gamma = 1.0 / (lam * sigma**2)
    record = SolveRecord()
    for i in steps(range(n_steps), progress, "RED-FP"):
        denoised = denoiser(x, denoiser_sigma)
        x_prev, x = x, op.prox(denoised, y, gamma)  # RED fixed point: ∇E = 0 with D(x) frozen
        if return_record:
            record.add(denoiser_sigma, x, x_prev, op, y, sigma)
            record.objective.append(float(red_objective(y, op, denoiser, x, sigma=sigma, lam=lam,
                                                        denoiser_sigma=denoiser_sigma).mean()))
        if callback is not None:
            callback({"i": i, "x": x, "denoised": denoised})
    return (x, record) if return_record else x
