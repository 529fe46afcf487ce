"""Samplers over a denoiser: the right statistics on an analytic prior, reproducible seeds, quick runs."""

import pytest
import torch

from denoiselab.errors import DenoiselabError
from denoiselab.sampling import sample_annealed_langevin, sample_implicit_prior, score_from_denoiser

torch.set_num_threads(1)

MU = 0.4


def constant_image_prior(s: float):
    """Exact MMSE denoiser for constant images x = (MU + s·c)·1, c ~ N(0, 1), under white noise of std σ.

    The noisy mean m is sufficient: D(y) = MU + s²/(s² + σ²/N)·(m − MU), the same at every pixel.
    """
    def denoiser(x, sigma):
        n = x[0].numel()
        sig = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        return (MU + s**2 / (s**2 + sig**2 / n) * (m - MU)).expand_as(x)
    return denoiser


def _image_means(x):
    return x.mean(dim=(1, 2, 3))


def test_langevin_draws_from_an_analytic_prior():
    s = 0.2
    x = sample_annealed_langevin(constant_image_prior(s), (128, 1, 8, 8), n_steps_each=100, step_scale=2e-5,
                                 seed=0, dtype=torch.float64)
    means = _image_means(x)
    assert abs(float(means.mean()) - MU) < 3 * s / 128**0.5
    assert float(means.std()) == pytest.approx(s, rel=0.15)
    assert float((x - means.view(-1, 1, 1, 1)).abs().max()) < 1e-12  # the final denoise lands on the prior's support


def test_implicit_prior_draws_approximately_from_an_analytic_prior():
    """Kadkhodaie–Simoncelli is a stochastic ascent, not an exact sampler: ~10 % under-dispersed here."""
    s = 0.1
    y = sample_implicit_prior(constant_image_prior(s), (256, 1, 4, 4), beta=0.5, seed=0, dtype=torch.float64)
    means = _image_means(y)
    assert abs(float(means.mean()) - MU) < 0.03
    assert float(means.std()) == pytest.approx(s, rel=0.2)
    residual = float((y - means.view(-1, 1, 1, 1)).std())  # the noise left when it stopped
    assert residual == pytest.approx(0.01, rel=0.2)


def test_score_is_tweedie():
    x = torch.full((1, 1, 4, 4), 0.9)
    score = score_from_denoiser(constant_image_prior(0.1), x, 0.1)
    assert torch.allclose(score, (constant_image_prior(0.1)(x, 0.1) - x) / 0.01)


@pytest.fixture(scope="module")
def prior():
    from denoiselab.denoisers import load_denoiser

    denoiser = load_denoiser("bfdncnn-gray")
    denoiser(torch.rand(1, 1, 16, 16), 0.1)  # warm-up
    return denoiser


RUNS = {
    "langevin": lambda d, **kw: sample_annealed_langevin(d, (2, 1, 16, 16), n_levels=4, sigma_max=0.3,
                                                         n_steps_each=5, step_scale=1e-4, **kw),
    "implicit-prior": lambda d, **kw: sample_implicit_prior(d, (2, 1, 16, 16), h0=0.05, **kw),
}


@pytest.mark.parametrize("name", RUNS)
def test_trained_prior_runs_on_16x16_and_the_seed_reproduces_it(prior, name):
    run = RUNS[name]
    a, b = run(prior, seed=3), run(prior, seed=3)
    assert a.shape == (2, 1, 16, 16) and bool(torch.isfinite(a).all())
    assert torch.equal(a, b)
    assert torch.equal(a, run(prior, generator=torch.Generator().manual_seed(3)))
    assert not torch.allclose(a, run(prior, seed=4))


def test_implicit_prior_warns_at_the_callers_line_when_it_runs_out_of_steps():
    with pytest.warns(UserWarning, match="max_steps=3") as caught:
        sample_implicit_prior(constant_image_prior(0.1), (1, 1, 4, 4), max_steps=3, seed=0)
    assert caught[0].filename == __file__


def test_user_errors():
    d = constant_image_prior(0.1)
    with pytest.raises(DenoiselabError, match="either seed or generator"):
        sample_implicit_prior(d, (1, 1, 4, 4), seed=0, generator=torch.Generator())
    with pytest.raises(DenoiselabError, match=r"\(B, C, H, W\)"):
        sample_annealed_langevin(d, (4, 4), seed=0)
    with pytest.raises(DenoiselabError, match="non-increasing"):
        sample_annealed_langevin(d, (1, 1, 4, 4), sigmas=[0.1, 0.5], seed=0)
    with pytest.raises(DenoiselabError, match=r"\(0, 1\]"):
        sample_implicit_prior(d, (1, 1, 4, 4), beta=2.0)
