"""The ScoreDVI objective: L = L1 + λ(y)·L2 + L3 + L4 + L5 (Cheng et al., ICCV 2023, Eqs. 11-17, 19).

Notation (per pixel i = one (c, h, w) site, per component k): q(x_k) = N(µ, σ²),
q(φ_k) = Gamma(α̂, β̂) (shape, rate), π = q(z_k = 1), q(ω) = Dir(d̂); hyperpriors α, β, d.
Every term is a **mean over pixels and channels** of the per-pixel sum over k (authors' code),
returned per image as a (B,) tensor. The total optimised is the sum over the batch, so each
image's gradient is that of its own single-image loss.

The score prior (Eqs. 5, 13, 17): the expectation E_q log p(x_k) has no closed form, but its
gradient does: for z = µ + σ ε, ∇_z log p(z) ≈ (D_k(z) - z)/σ² (Tweedie / Theorem 1, with D_k
an MMSE Gaussian denoiser at noise variance σ²). :class:`ScoreIdentity` is an autograd unit
whose forward is the identity on z and whose backward multiplies the incoming gradient by
that score; autograd's chain rule through z = µ + σ ε then yields the µ and σ² gradients.

The authors multiply π_k by the unit's output itself, whose value is z: π_k then receives the
gradient -λ·mean_M z_k (a pull toward the brighter component) besides -½ log σ²_k. ``paper``
keeps that (``Preset.pi_score_gradient``). The alternative, ``unit(z) - z.detach()``, has value
exactly 0 and the same score gradient for µ and σ²: the reported loss is then the computable
part of L (every term except -E_q log p) and π gets nothing from the unknown E_q log p.

References
----------
J. Cheng, T. Liu, S. Tan, "Score priors guided deep variational inference for unsupervised
real-world single image denoising", ICCV 2023, arXiv:2308.04682.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .nets import Theta

__all__ = ["ScoreIdentity", "apply_priors", "compute_loss_terms", "compute_prior_samples"]


class ScoreIdentity(torch.autograd.Function):
    """Identity on z; backward returns grad · (D(z) - z) / σ² (Eq. 5), nothing to D or σ².

    Call as ``ScoreIdentity.apply(z, denoised, var)`` with `denoised` = D(z) computed without
    gradient and `var` = σ² (detached here whatever the caller passes). All broadcastable to z.
    """

    @staticmethod
    def forward(ctx, z: Tensor, denoised: Tensor, var: Tensor) -> Tensor:  # noqa: D102
        ctx.save_for_backward((denoised.detach() - z.detach()) / var.detach())
        return z.view_as(z)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        (score,) = ctx.saved_tensors
        return grad * score, None, None


def compute_prior_samples(theta: Theta, eps: Tensor) -> Tensor:
    """Reparameterised samples z = µ_k + σ_k ε (Eq. 5).

    Parameters
    ----------
    theta : Theta
        µ and σ² of shape (B, K, C, H, W).
    eps : Tensor, shape (K, M, B, C, H, W)
        Standard normal draws, M per component.

    Returns
    -------
    z : Tensor, shape (K, M, B, C, H, W)
        Differentiable in µ and σ².
    """
    mu = theta.mu.transpose(0, 1).unsqueeze(1)  # (K, 1, B, C, H, W)
    sd = torch.sqrt(theta.var).transpose(0, 1).unsqueeze(1)
    return mu + sd * eps


@torch.no_grad()
def apply_priors(priors: Sequence[Callable[[Tensor, float | Tensor], Tensor]], z: Tensor, var: Tensor) -> Tensor:
    """Run prior k on the samples of component k: one denoiser call per prior.

    The M samples and B images of a component go through their prior as one batch of M·B
    images. This is the single place to replace by one batched call across priors (e.g. the
    K networks stacked as grouped convolutions) when they share an architecture.

    Parameters
    ----------
    priors : sequence of K denoisers ``D(y, sigma) -> Tensor`` (the Denoiser protocol)
    z : Tensor, shape (K, M, B, C, H, W)
    var : Tensor, shape (K, 1, B, C, H, W)
        σ²_k; its square root goes to non-blind denoisers as a per-pixel σ map (blind ones ignore it).

    Returns
    -------
    Tensor, shape (K, M, B, C, H, W): D_k(z_k), not clamped.
    """
    k, m, b, c, h, w = z.shape
    out = torch.empty_like(z)
    for i, prior in enumerate(priors):
        sigma = torch.sqrt(var[i]).expand(m, b, c, h, w).reshape(m * b, c, h, w)
        out[i] = prior(z[i].reshape(m * b, c, h, w), sigma).view(m, b, c, h, w)
    return out


def compute_loss_terms(
    y: Tensor,
    theta: Theta,
    *,
    alpha: float,
    beta: float | Tensor,
    d_prior: float,
    score_term: Tensor | None = None,
) -> dict[str, Tensor]:
    """The five terms of the negative ELBO (Eqs. 12-16), each a (B,) mean over pixels and channels.

    Parameters
    ----------
    y : Tensor, shape (B, C, H, W)
        Noisy images in [0, 1].
    theta : Theta
        Variational parameters, each (B, K, C, H, W).
    alpha : float
        Shape α of the Gamma hyperprior on the noise precision (paper: 1).
    beta : float or Tensor of shape (B,)
        Rate β of that hyperprior (paper: 0.02 heavy noise, 0.01 medium, 0.005 light).
    d_prior : float
        Dirichlet hyperprior d_k, the same for every k (paper: 1).
    score_term : Tensor, shape (K, M, B, C, H, W), optional
        ``ScoreIdentity.apply(z, D(z), σ²)`` (value z, as the authors' code) or that minus
        ``z.detach()`` (value 0); the gradient to z is the score either way. When given, L2
        includes -π_k · mean over M of it (the -E_q log p part of Eq. 13).

    Returns
    -------
    dict with keys "L1" ... "L5", each a Tensor of shape (B,). L2 is *not* multiplied by λ.
    """
    mu, var, log_var, a_hat, b_hat, pi, d_hat = (theta.mu, theta.var, theta.log_var, theta.alpha,
                                                 theta.beta, theta.pi, theta.d)
    bsz = y.shape[0]
    beta_t = torch.as_tensor(beta, dtype=y.dtype, device=y.device).reshape(-1, 1, 1, 1, 1)
    yk = y.unsqueeze(1)
    dig_a, log_b = torch.digamma(a_hat), torch.log(b_hat)

    def mean(per_pixel: Tensor) -> Tensor:  # (B, C, H, W) -> (B,)
        return per_pixel.reshape(bsz, -1).mean(1)

    # Eq. 12: -E log N(y; x_k, 1/φ_k), constants dropped
    l1 = -(pi * (-((mu - yk) ** 2 + var) * a_hat / (2 * b_hat) + (dig_a - log_b) / 2)).sum(1)
    # Eq. 13: -½ π log σ² - π E_q log p(x_k)
    l2 = (-0.5 * pi * log_var).sum(1)
    if score_term is not None:
        l2 = l2 - (pi.transpose(0, 1) * score_term.mean(1)).sum(0)
    # Eq. 14: KL(Gamma(α̂, β̂) || Gamma(α, β)) weighted by π
    lg_alpha = torch.lgamma(torch.as_tensor(alpha, dtype=y.dtype))
    l3 = (pi * (lg_alpha - torch.lgamma(a_hat) + (a_hat - alpha) * dig_a + alpha * (log_b - torch.log(beta_t))
                + (beta_t - b_hat) * a_hat / b_hat)).sum(1)
    # Eq. 15: E_q(ω) KL(q(z) || p(z | ω))
    d_sum = d_hat.sum(1, keepdim=True)
    dig_dsum = torch.digamma(d_sum)
    l4 = (pi * (torch.log(pi.clamp_min(1e-30)) - torch.digamma(d_hat) + dig_dsum)).sum(1)
    # Eq. 16: KL(Dir(d̂) || Dir(d)), log Z_Dir(d) = lnΓ(Σd) - Σ lnΓ(d_k)
    k = d_hat.shape[1]
    d_t = torch.as_tensor(d_prior, dtype=y.dtype)
    log_z_prior = torch.lgamma(k * d_t) - k * torch.lgamma(d_t)
    log_z_hat = torch.lgamma(d_sum.squeeze(1)) - torch.lgamma(d_hat).sum(1)
    l5 = ((d_hat - d_prior) * (torch.digamma(d_hat) - dig_dsum)).sum(1) + log_z_hat - log_z_prior
    return {"L1": mean(l1), "L2": mean(l2), "L3": mean(l3), "L4": mean(l4), "L5": mean(l5)}
