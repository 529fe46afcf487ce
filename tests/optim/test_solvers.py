"""PnP and RED solvers: each lowers the objective it claims to, reaches closed forms on linear toys,
and improves a real blurred crop with the default trained prior."""

from pathlib import Path

import pytest
import torch

from denoiselab.cli.restore import DEFAULT_STEPS, injects
from denoiselab.errors import DenoiselabError
from denoiselab.metrics import psnr
from denoiselab.optim import (
    dpir_sigmas,
    red_gradient,
    red_objective,
    red_paper_settings,
    red_regularizer,
    solve_pnp_admm,
    solve_pnp_hqs,
    solve_red_fixed_point,
    solve_red_steepest_descent,
)
from denoiselab.physics import BicubicDownsample, Blur, BoxDownsample, Identity, Inpainting, box_mask

torch.set_num_threads(1)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sidd_18_1_clean.png"
SIZE = 32


class LinearDenoiser:
    """D(x) = ½x + ½ G x with G a circular Gaussian blur: linear, symmetric, eigenvalues in (½, 1]."""

    def __init__(self, std: float = 1.0) -> None:
        self.blur = Blur.gaussian(std)

    def __call__(self, x, sigma):
        return 0.5 * x + 0.5 * self.blur.A(x)

    def eigenvalues(self, like):
        """The DFT eigenvalues (rfft2 layout) of the circulant matrix D."""
        delta = torch.zeros_like(like[:1, :1])
        delta[..., 0, 0] = 1.0
        return torch.fft.rfft2(self(delta, 0.0)).real


def _fourier(f, a):
    """Apply the function `f` of the eigenvalues to the image `a` (circulant operators only)."""
    return torch.fft.irfft2(f * torch.fft.rfft2(a), s=a.shape[-2:])


@pytest.fixture
def clean():
    g = torch.Generator().manual_seed(0)
    smooth = Blur.gaussian(2.0).A(torch.rand(1, 1, SIZE, SIZE, generator=g, dtype=torch.float64))
    return (smooth - smooth.min()) / (smooth.max() - smooth.min())


def _observe(op, x, sigma, seed=1):
    ax = op.A(x)
    return ax + sigma * torch.randn(ax.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)


# --- RED --------------------------------------------------------------------------------------

def test_red_gradient_is_the_autograd_gradient_for_a_symmetric_linear_denoiser(clean):
    x = (clean + 0.1 * torch.randn(clean.shape, dtype=torch.float64)).requires_grad_(True)
    d = LinearDenoiser()
    (grad,) = torch.autograd.grad(red_regularizer(d, x, 0.05).sum(), x)
    assert torch.allclose(grad, red_gradient(d, x.detach(), 0.05), atol=1e-12)


def test_red_gradient_identity_fails_without_a_symmetric_jacobian(clean):
    """The check above has teeth: with an asymmetric kernel, ∇ρ = ½(I − Dᵀ)x + ½(I − D)x ≠ x − D(x)."""
    kernel = torch.zeros(3, 3, dtype=torch.float64)
    kernel[1, 1], kernel[1, 2] = 0.5, 0.5  # averages each pixel with its left neighbour: not symmetric
    shift = Blur(kernel)
    x = clean.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(red_regularizer(lambda v, s: shift.A(v), x, 0.05).sum(), x)
    assert (grad - red_gradient(lambda v, s: shift.A(v), x.detach(), 0.05)).abs().max() > 1e-3


@pytest.mark.parametrize("solver", [solve_red_steepest_descent, solve_red_fixed_point])
def test_red_solvers_decrease_the_red_objective_to_its_minimum(clean, solver):
    op, d, sigma, lam = Blur.gaussian(1.6), LinearDenoiser(), 0.02, 500.0
    y = _observe(op, clean, sigma)
    n_steps = 400 if solver is solve_red_steepest_descent else 60
    x_hat, record = solver(y, op, d, sigma=sigma, lam=lam, denoiser_sigma=0.05, n_steps=n_steps, return_record=True)
    energies = torch.tensor(record.objective)
    assert bool((energies[1:] <= energies[:-1] + 1e-9 * energies[0]).all())  # monotone
    # E is quadratic here; its minimiser solves (KᵀK/σ² + λ(I − W)) x = Kᵀy/σ², diagonal in Fourier.
    k, w = op._otf(SIZE, SIZE, clean), d.eigenvalues(clean)
    x_star = torch.fft.irfft2(k.conj() * torch.fft.rfft2(y) / sigma**2 / (k.abs() ** 2 / sigma**2 + lam * (1 - w)), s=(SIZE, SIZE))
    e_star = float(red_objective(y, op, d, x_star, sigma=sigma, lam=lam, denoiser_sigma=0.05))
    e_start = float(red_objective(y, op, d, y, sigma=sigma, lam=lam, denoiser_sigma=0.05))
    assert energies[-1] - e_star < 1e-3 * (e_start - e_star)
    if solver is solve_red_fixed_point:
        assert torch.allclose(x_hat, x_star, atol=1e-6)


def test_red_defaults_are_the_published_settings():
    lam, s = red_paper_settings(Blur.gaussian(1.6))
    assert (round(lam / 255**2, 4), round(s * 255, 2)) == (0.01, 4.1)
    lam, s = red_paper_settings(BicubicDownsample(3))
    assert (round(lam / 255**2, 4), round(s * 255, 2)) == (0.008, 3.0)


# --- PnP --------------------------------------------------------------------------------------

def test_one_hqs_step_with_the_identity_is_the_denoiser(clean):
    y = _observe(Identity(), clean, 0.1)
    d = LinearDenoiser()
    assert torch.allclose(solve_pnp_hqs(y, Identity(), d, sigma=0.1, sigmas=[0.1]), d(y, 0.1))


def test_pnp_hqs_with_identity_converges_to_the_closed_form(clean):
    """Fixed point of z = W (y + α z)/(1 + α): z = W (1 + α(1 − W))⁻¹ y, α = λσ²/σ_k²."""
    sigma, level, lam = 0.05, 0.1, 0.23
    y = _observe(Identity(), clean, sigma)
    d = LinearDenoiser()
    z = solve_pnp_hqs(y, Identity(), d, sigma=sigma, sigmas=[level] * 30, lam=lam)
    alpha = lam * sigma**2 / level**2
    w = d.eigenvalues(clean)
    assert torch.allclose(z, _fourier(w / (1 + alpha * (1 - w)), y), atol=1e-10)


def test_pnp_hqs_never_increases_its_splitting_objective(clean):
    """HQS is block-coordinate descent on F(x, z) = ½‖Ax − y‖² + α/2‖x − z‖² + α/2 zᵀ(W⁻¹ − I)z,
    whose z-minimiser is exactly z = W x for the linear denoiser."""
    op, d, sigma, level, lam = Blur.gaussian(1.6), LinearDenoiser(), 0.02, 0.04, 0.23
    y = _observe(op, clean, sigma)
    alpha = lam * sigma**2 / level**2
    w = d.eigenvalues(clean)

    def objective(x, z):
        prior = (z * _fourier(1 / w - 1, z)).sum()
        return float(0.5 * (op.A(x) - y).pow(2).sum() + alpha / 2 * (x - z).pow(2).sum() + alpha / 2 * prior)

    values = []
    z0 = op.initial_estimate(y)
    values.append(objective(op.prox(z0, y, 1 / alpha), z0))
    solve_pnp_hqs(y, op, d, sigma=sigma, sigmas=[level] * 15, lam=lam,
                  callback=lambda info: values.append(objective(info["x"], info["z"])))
    values = torch.tensor(values)
    assert bool((values[1:] <= values[:-1] + 1e-12).all())
    assert values[-1] < 0.9 * values[0]


def test_pnp_admm_converges_to_the_minimiser_of_its_objective(clean):
    """With D = W = prox of g(v) = ρ/2 vᵀ(W⁻¹ − I)v, ADMM minimises ½‖Ax − y‖² + g(x):
    x* = (KᵀK + ρ(W⁻¹ − I))⁻¹ Kᵀy."""
    op, d, sigma, level, lam = Blur.gaussian(1.6), LinearDenoiser(), 0.02, 0.04, 0.23
    y = _observe(op, clean, sigma)
    rho = lam * sigma**2 / level**2
    k, w = op._otf(SIZE, SIZE, clean), d.eigenvalues(clean)
    x_star = torch.fft.irfft2(k.conj() * torch.fft.rfft2(y) / (k.abs() ** 2 + rho * (1 / w - 1)), s=(SIZE, SIZE))
    x_hat, record = solve_pnp_admm(y, op, d, sigma=sigma, sigmas=[level] * 200, lam=lam, return_record=True)
    assert torch.allclose(x_hat, x_star, atol=1e-6)
    assert record.change[-1] < 1e-6


@pytest.mark.parametrize("solver", [solve_pnp_hqs, solve_pnp_admm])
@pytest.mark.parametrize("op", [BoxDownsample(2), Inpainting(box_mask((1, 1, SIZE, SIZE), (8, 8, 8, 8))),
                                Blur.uniform(5, boundary="valid")], ids=repr)
def test_pnp_runs_on_every_kind_of_operator(clean, solver, op):
    y = _observe(op, clean, 0.02)
    x_hat, record = solver(y, op, LinearDenoiser(), sigma=0.02, n_steps=4, return_record=True)
    assert x_hat.shape == clean.shape and bool(torch.isfinite(x_hat).all())
    assert len(record.sigmas) == 4 and record.sigmas[0] == pytest.approx(49 / 255)
    assert record.data_fit[-1] < 10  # the estimate explains the data to within a few noise stds


def test_dpir_schedule():
    s = dpir_sigmas(2.55 / 255)
    assert len(s) == 8 and float(s[0]) == pytest.approx(49 / 255) and float(s[-1]) == pytest.approx(2.55 / 255)
    assert bool((s[1:] < s[:-1]).all())


def test_user_errors(clean):
    d = LinearDenoiser()
    with pytest.raises(DenoiselabError, match="0-255 scale"):
        solve_pnp_hqs(clean, Identity(), d, sigma=25)
    with pytest.raises(DenoiselabError, match="must be > 0"):
        solve_red_fixed_point(clean, Identity(), d, sigma=0.0)
    with pytest.raises(DenoiselabError, match="x_init"):
        solve_pnp_admm(clean, Identity(), d, sigma=0.1, x_init=torch.zeros(1, 1, 4, 4))
    with pytest.raises(DenoiselabError, match="operator"):
        solve_red_steepest_descent(clean, "blur", d, sigma=0.1)


# --- a real run with our trained prior -------------------------------------------------------

@pytest.fixture(scope="module")
def real_problem():
    from denoiselab.denoisers import load_denoiser
    from denoiselab.io import read_image, to_tensor

    image = to_tensor(read_image(EXAMPLE).array).mean(dim=1, keepdim=True)
    x = image[..., 192:240, 208:256].contiguous()  # the most textured 48×48 crop of the example
    op, sigma = Blur.gaussian(1.6), 2.55 / 255
    y = op.A(x) + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    denoiser = load_denoiser("bfdncnn-gray")
    denoiser(y, sigma)  # warm-up, so that no test pays for the first call
    return x, y, op, sigma, denoiser


ADMM_WITH_PUBLISHED_PRIOR = pytest.mark.xfail(strict=True, reason=(
    "PnP-ADMM's scaled dual u carries the deconvolved measurement noise removed at earlier steps and "
    "feeds it back coherently (the input x + u holds it twice); the published 20-layer prior keeps that "
    "pattern as texture: 22.6 dB with injection, 17.7 dB as is, y 25.7 dB (bfdncnn-gray-s: 30.2 dB)"))


@pytest.mark.parametrize("method, solver, options", [
    ("pnp-hqs", solve_pnp_hqs, {}),
    pytest.param("pnp-admm", solve_pnp_admm, {}, marks=ADMM_WITH_PUBLISHED_PRIOR),
    ("red", solve_red_fixed_point, {"n_steps": DEFAULT_STEPS["red"]}),  # RED-FP peaks early, then drifts
    ("red", solve_red_steepest_descent, {"n_steps": 60})], ids=["pnp-hqs", "pnp-admm", "red-fp", "red-sd"])
def test_trained_prior_deblurs_a_real_crop(real_problem, method, solver, options):
    """The default prior, given to each solver as ``restore --blind-prior auto`` gives it."""
    from denoiselab.denoisers import with_noise_level

    x, y, op, sigma, denoiser = real_problem
    prior = with_noise_level(denoiser, seed=0) if injects(method, "auto") else denoiser
    x_hat = solver(y, op, prior, sigma=sigma, **options)
    gain = float(psnr(x_hat.clamp(0, 1), x)[0] - psnr(y, x)[0])
    assert gain > 1.0, f"{solver.__name__} gained only {gain:.2f} dB"
