"""Posterior samplers (Kawar et al., SNIPS, DDRM) on a Gaussian prior with its exact MMSE denoiser.

Images with i.i.d. N(MU, TAU²) pixels have the denoiser D(x, σ) = (τ²x + σ²μ)/(τ² + σ²), and for
an operator with an SVD ``A = U diag(s) Vᵀ`` the posterior is Gaussian and diagonal in V's
coordinates: precision 1/τ² + s²/σ_0², mean (Vᵀμ/τ² + s·Uᵀy/σ_0²)/precision. The tests compare
the samplers' samples with that, in float64, with fixed seeds.

Measured (seed 0), recorded here as the tolerances' basis:
- Kawar et al. (defaults): sample variance / exact 0.97-0.99; MSE of the mean of K samples / MMSE
  2.00, 1.51, 1.27, 1.15 for K = 1, 2, 4, 8 (theory 2, 1.5, 1.25, 1.125).
- SNIPS (defaults): variance / exact 0.99 (identity), 1.06 (inpainting, 50 % lost); one sample's
  MSE / MMSE 2.00, 2.10.
- DDRM (published η = 0.85, η_b = 1, 20 steps): NOT an exact sampler here; its samples have about
  0.2× the posterior variance on denoising and one sample's MSE is about 1.3× the MMSE.
"""

from pathlib import Path

import pytest
import torch

from denoiselab.errors import DenoiselabError
from denoiselab.physics import Blur, BoxDownsample, Identity, Inpainting, gaussian_kernel, random_pixel_mask
from denoiselab.sampling import (posterior_mean, sample_ddrm, sample_posterior_denoising,
                                 sample_snips)

torch.set_num_threads(1)

MU, TAU = 0.5, 0.1


def gaussian_prior(x, sigma):
    """Exact MMSE denoiser of i.i.d. N(MU, TAU²) pixels under white noise of std sigma."""
    return (TAU**2 * x + sigma**2 * MU) / (TAU**2 + sigma**2)


def draw_problem(op, sigma0, shape=(1, 1, 32, 32), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = MU + TAU * torch.randn(shape, generator=g, dtype=torch.float64)
    ax = op.A(x)
    y = ax + sigma0 * torch.randn(ax.shape, generator=g, dtype=torch.float64)
    return x, y


def exact_posterior(op, y, shape, sigma0):
    """Posterior mean (image space) and per-coefficient variance (V's coordinates)."""
    s = op.singulars(shape, dtype=torch.float64).expand(shape)
    prior_mean = op.V_adjoint(torch.full(shape, MU, dtype=torch.float64))
    precision = 1 / TAU**2 + s**2 / sigma0**2
    mean = (prior_mean / TAU**2 + s * op.U_adjoint(y) / sigma0**2) / precision
    return op.V(mean), 1 / precision


def posterior_stats(op, draws, mean, var):
    """(sample variance / exact variance, squared error of the K-sample mean / (variance/K)), averaged."""
    k = draws.samples.shape[0]
    spread = torch.stack([op.V_adjoint(s - draws.mean) for s in draws.samples])
    var_ratio = float((spread.pow(2).sum(0) / (k - 1) / var).mean())
    mean_err = float((op.V_adjoint(draws.mean - mean).pow(2) / (var / k)).mean())
    return var_ratio, mean_err


def test_kawar_samples_the_exact_posterior_and_the_mean_of_k_has_mmse_times_1_plus_1_over_k():
    op, sigma0 = Identity(), 0.1
    x, y = draw_problem(op, sigma0, shape=(2, 1, 32, 32))
    mean, var = exact_posterior(op, y, x.shape, sigma0)
    draws = posterior_mean(sample_posterior_denoising, y, gaussian_prior, sigma=sigma0, n_samples=8, seed=0)
    var_ratio, mean_err = posterior_stats(op, draws, mean, var)
    assert var_ratio == pytest.approx(1.0, abs=0.08)  # measured 0.97
    assert mean_err < 1.4  # 1 for an exact sampler; measured 1.07
    mmse = TAU**2 * sigma0**2 / (TAU**2 + sigma0**2)
    for k in (1, 2, 4, 8):  # 8 samples split into 8/k groups of k
        groups = draws.samples.reshape(8 // k, k, *x.shape).mean(dim=1)
        ratio = float(((groups - x) ** 2).mean()) / mmse
        assert ratio == pytest.approx(1 + 1 / k, rel=0.1), (k, ratio)  # measured 2.00, 1.51, 1.27, 1.15


@pytest.mark.parametrize("name", ["identity", "inpainting"])
def test_snips_samples_the_exact_posterior(name):
    mask = random_pixel_mask((1, 1, 32, 32), 0.5, generator=torch.Generator().manual_seed(1)).double()
    op = Identity() if name == "identity" else Inpainting(mask)
    sigma0 = 0.1
    x, y = draw_problem(op, sigma0)
    mean, var = exact_posterior(op, y, x.shape, sigma0)
    # the paper's grid from 0.5 down, T = 3 and ε scaled by 5/3 (same step per level): 2x faster than the
    # defaults, which measure 0.99 / 1.06 (variance) and 1.07 / 1.08 (mean error) here
    draws = posterior_mean(sample_snips, y, op, gaussian_prior, sigma=sigma0, n_samples=8, seed=0, sigma_max=0.5,
                           n_steps_each=3, step_scale=5.5e-6)
    var_ratio, mean_err = posterior_stats(op, draws, mean, var)
    assert var_ratio == pytest.approx(1.0, abs=0.12)  # measured 0.97 (identity), 1.04 (inpainting)
    assert mean_err < 1.5  # 1 for an exact sampler; measured 1.24, 1.27
    mse = float(((draws.samples - x) ** 2).mean()) / float(var.mean())
    assert mse == pytest.approx(2.0, rel=0.12)  # a posterior sample: twice the MMSE


@pytest.mark.parametrize("name", ["identity", "inpainting"])
def test_ddrm_tracks_the_posterior_mean_but_is_under_dispersed_at_the_published_settings(name):
    """DDRM (η = 0.85, η_b = 1, 20 steps) is an approximate sampler: on this prior, with the exact
    denoiser, its mean is near the posterior mean but its spread is well below the posterior's."""
    mask = random_pixel_mask((1, 1, 32, 32), 0.5, generator=torch.Generator().manual_seed(1)).double()
    op = Identity() if name == "identity" else Inpainting(mask)
    sigma0 = 0.1
    x, y = draw_problem(op, sigma0, shape=(2, 1, 32, 32))
    mean, var = exact_posterior(op, y, x.shape, sigma0)
    draws = posterior_mean(sample_ddrm, y, op, gaussian_prior, sigma=sigma0, n_samples=8, seed=0)
    var_ratio, _ = posterior_stats(op, draws, mean, var)
    assert 0.1 < var_ratio < 0.6  # measured 0.18 (identity), 0.45 (inpainting)
    bias = float((op.V_adjoint(draws.mean - mean).pow(2) / var).mean())
    assert bias < 0.3  # squared error of the mean in posterior variances; measured 0.18, 0.08
    mse = float(((draws.samples - x) ** 2).mean()) / float(var.mean())
    assert 1.1 < mse < 1.8  # between the MMSE (1) and a true posterior sample (2); measured 1.31, 1.57


def test_ddrm_with_identity_starts_from_the_mmse_estimate():
    _, y = draw_problem(Identity(), 0.1)
    seen = []
    sample_ddrm(y, Identity(), gaussian_prior, sigma=0.1, seed=0, callback=seen.append)
    assert len(seen) == 20
    assert seen[0]["sigma"] == pytest.approx(0.1)
    assert torch.allclose(seen[0]["denoised"], gaussian_prior(y, 0.1))


@pytest.mark.parametrize("sampler", ["snips", "ddrm"])
def test_inpainting_keeps_observed_pixels_near_y_and_fills_lost_ones_from_the_prior(sampler):
    mask = random_pixel_mask((1, 1, 32, 32), 0.5, generator=torch.Generator().manual_seed(2)).double()
    op, sigma0 = Inpainting(mask), 0.01
    x, y = draw_problem(op, sigma0)
    if sampler == "snips":
        out = sample_snips(y, op, gaussian_prior, sigma=sigma0, sigmas=torch.logspace(0, -2, 60), seed=0)
    else:
        out = sample_ddrm(y, op, gaussian_prior, sigma=sigma0, seed=0)
    seen, lost = mask.expand_as(x).bool(), ~mask.expand_as(x).bool()
    assert float((out - y)[seen].abs().max()) < 5 * sigma0
    assert float(out[lost].mean()) == pytest.approx(MU, abs=0.02)
    assert 0.02 < float(out[lost].std()) < 0.13  # DDRM measured 0.05 (under-dispersed), SNIPS ~0.1 = τ


def test_ddrm_noiseless_box_downsampling_is_consistent_with_the_measurement():
    op = BoxDownsample(2)
    x, y = draw_problem(op, 0.0, shape=(1, 1, 16, 16))
    out = sample_ddrm(y, op, gaussian_prior, sigma=0.0, seed=0)
    assert out.shape == x.shape
    assert torch.allclose(op.A(out), y, atol=1e-12)


SMALL = {
    "kawar": lambda y, **kw: sample_posterior_denoising(y, gaussian_prior, sigma=0.1, sigmas=torch.logspace(-1.1, -2, 10),
                                                        n_steps_each=2, **kw),
    "snips": lambda y, **kw: sample_snips(y, Identity(), gaussian_prior, sigma=0.1, sigmas=torch.logspace(0, -2, 10),
                                          n_steps_each=2, **kw),
    "ddrm": lambda y, **kw: sample_ddrm(y, Identity(), gaussian_prior, sigma=0.1, n_steps=5, **kw),
}


@pytest.mark.parametrize("name", SMALL)
def test_the_seed_reproduces_a_sample(name):
    run = SMALL[name]
    _, y = draw_problem(Identity(), 0.1, shape=(2, 1, 16, 16))
    y = y.float()
    a = run(y, seed=3)
    assert a.shape == y.shape and a.dtype == y.dtype
    assert torch.equal(a, run(y, seed=3))
    assert torch.equal(a, run(y, generator=torch.Generator().manual_seed(3)))
    assert not torch.allclose(a, run(y, seed=4))


def test_user_errors():
    y = torch.full((1, 1, 8, 8), 0.5)
    d = gaussian_prior
    with pytest.raises(DenoiselabError, match="0-255"):
        sample_posterior_denoising(y, d, sigma=25)
    with pytest.raises(DenoiselabError, match=r"\(B, C, H, W\)"):
        sample_posterior_denoising(y[0], d, sigma=0.1)
    with pytest.raises(DenoiselabError, match="NaN"):
        sample_snips(torch.full((1, 1, 8, 8), float("nan")), Identity(), d, sigma=0.1)
    with pytest.raises(DenoiselabError, match="below the noise std"):
        sample_posterior_denoising(y, d, sigma=0.1, sigmas=[0.2, 0.05])
    with pytest.raises(DenoiselabError, match="strictly decreasing"):
        sample_snips(y, Identity(), d, sigma=0.1, sigmas=[0.05, 0.2])
    with pytest.raises(DenoiselabError, match="SVD"):
        sample_ddrm(y, Blur(gaussian_kernel(1.0)), d, sigma=0.1)
    with pytest.raises(DenoiselabError, match="does not fit"):
        sample_ddrm(y, Inpainting(torch.ones(1, 1, 16, 16)), d, sigma=0.1)  # a 16x16 mask, an 8x8 measurement
    with pytest.raises(DenoiselabError, match="eta"):
        sample_ddrm(y, Identity(), d, sigma=0.1, eta=1.5)
    with pytest.raises(DenoiselabError, match="either seed or generator"):
        sample_ddrm(y, Identity(), d, sigma=0.1, seed=0, generator=torch.Generator())
    with pytest.raises(DenoiselabError, match="> 0"):
        sample_posterior_denoising(y, d, sigma=0.0)
    with pytest.raises(DenoiselabError, match="n_samples"):
        posterior_mean(sample_ddrm, y, Identity(), d, sigma=0.1, n_samples=0)
    with pytest.raises(DenoiselabError, match="callable"):
        sample_snips(y, Identity(), "bfdncnn-gray", sigma=0.1)


@pytest.fixture(scope="module")
def gray_crop():
    from denoiselab.io import read_image, to_tensor

    image = to_tensor(read_image(Path(__file__).resolve().parents[2] / "examples" / "sidd_18_1_clean.png").array)
    x = image.mean(dim=1, keepdim=True)[..., 100:132, 100:132].contiguous()
    y = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    return x, y


@pytest.fixture(scope="module")
def trained_prior():
    from denoiselab.denoisers import load_denoiser

    return load_denoiser("bfdncnn-gray")


def _psnr(a, x):
    return float(-10 * torch.log10(((a.clamp(0, 1) - x) ** 2).mean()))


TRAINED = {  # short schedules: a 32x32 crop, about 100 denoiser calls each
    "kawar": lambda y, d: sample_posterior_denoising(y, d, sigma=0.1, sigmas=torch.logspace(-1.1, -2, 40),
                                                     n_steps_each=3, step_scale=1.65e-5, seed=0),
    "snips": lambda y, d: sample_snips(y, Identity(), d, sigma=0.1, sigmas=torch.logspace(0, -2, 40), n_steps_each=3,
                                       step_scale=1.65e-5, seed=0),
    "ddrm": lambda y, d: sample_ddrm(y, Identity(), d, sigma=0.1, seed=0),
}


@pytest.mark.parametrize("name", TRAINED)
def test_trained_denoiser_on_a_real_crop_beats_the_noisy_observation(gray_crop, trained_prior, name):
    x, y = gray_crop
    out = TRAINED[name](y, trained_prior)
    assert out.shape == y.shape and bool(torch.isfinite(out).all())
    assert _psnr(out, x) > _psnr(y, x) + 3  # noisy 19.9 dB; a posterior sample ~3 dB below the MMSE (31.7 dB)
