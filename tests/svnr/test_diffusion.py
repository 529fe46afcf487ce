import math

import numpy as np
import pytest
import torch

from denoiselab.errors import DenoiselabError
from denoiselab.svnr import (conditional_timesteps, conditional_training_sample, gamma, reverse_step,
                             sample_conditional, sample_svnr, time_map, training_sample)

N = 20000  # draws per pixel in the statistical checks


def _oracle(x0):
    """ε̂ = (x − x0)/√γ_t: the exact noise, so x̂_0 = x0 at every step."""
    def model(y, x, t):
        g = gamma(t.double()).sqrt()
        return torch.where(g > 0, (x - x0).double() / g.clamp_min(1e-300), 0.0).to(x.dtype)
    return model


# --- Eq. 8: the reverse step -------------------------------------------------------------------------

def test_reverse_step_matches_the_closed_form(ref):
    times = np.array([1.5, 2.0, 7.25, 24.9, 100.6, 999.9])
    x_t = torch.tensor([0.9, -0.3, 1.7, 0.2, 2.5, -1.0], dtype=torch.float64)
    x0_hat = torch.tensor([0.5, 0.1, 1.0, 0.6, 0.3, 0.4], dtype=torch.float64)
    t = torch.as_tensor(times).view(1, 1, 1, -1).expand(N, 1, 1, -1)
    out = reverse_step(x_t.view(1, 1, 1, -1).expand(N, 1, 1, -1), x0_hat.view(1, 1, 1, -1).expand(N, 1, 1, -1), t,
                       generator=torch.Generator().manual_seed(0))[:, 0, 0].numpy()
    g_t, g_prev = ref.gamma(times), ref.gamma(np.maximum(times - 1, 0))
    eta = g_t - g_prev
    mean = g_prev / g_t * x_t.numpy() + eta / g_t * x0_hat.numpy()
    var = g_prev * eta / g_t
    assert np.all(np.abs(out.mean(0) - mean) < 5 * np.sqrt(var / N))
    np.testing.assert_allclose(out.var(0), var, rtol=5 * math.sqrt(2 / N))


def test_reverse_step_at_t_le_1_returns_x0_hat_and_t_0_stays():
    g = torch.Generator().manual_seed(0)
    x_t, x0_hat = torch.randn(2, 3, 1, 5, generator=g), torch.randn(2, 3, 1, 5, generator=g)
    t = torch.tensor([0.0, 0.002, 0.5, 1.0, 3.0]).view(1, 1, 1, 5).expand(2, 1, 1, 5)
    out = reverse_step(x_t, x0_hat, t, generator=g)
    assert torch.equal(out[..., 0], x_t[..., 0])
    assert torch.equal(out[..., 1:4], x0_hat[..., 1:4])
    assert not torch.equal(out[..., 4], x0_hat[..., 4])


# --- Eq. 11: the training pair -----------------------------------------------------------------------

def _pinned_pair(ref, tau):
    """Fixed x0 and y (so ε_y is fixed) repeated N times, various variances per pixel, one τ."""
    s2 = torch.tensor([0.002, 0.01, 0.04, 0.09, 0.3], dtype=torch.float64).view(1, 1, 1, -1)
    n_fixed = torch.tensor([1.3, -0.7, 0.4, -1.9, 0.8], dtype=torch.float64).view(1, 1, 1, -1)
    x0 = torch.full_like(s2, 2.0)
    y = x0 + s2.sqrt() * n_fixed  # no clipping: ε_y = n_fixed exactly
    t_star = ref.time(s2.flatten().numpy())
    rho = ref.gamma(np.maximum(t_star - tau, 0)) / s2.flatten().numpy()
    rep = lambda v: v.expand(N, 1, 1, 5)
    return rep(x0), rep(y), rep(s2), n_fixed.flatten().numpy(), rho


@pytest.mark.parametrize("tau", [3.0, 12.5])
def test_correlated_pair_given_y_has_mean_sqrt_rho_eps_y_and_variance_1_minus_rho(ref, tau):
    x0, y, s2, eps_y, rho = _pinned_pair(ref, tau)
    s = training_sample(x0, y, s2, tau=torch.full((N,), tau), generator=torch.Generator().manual_seed(0))
    eps = s.target[:, 0, 0].numpy()
    assert ((rho > 0) & (rho < 1)).sum() >= 3 and rho.max() < 1 and rho[0] < 0.2  # a real spread of ρ
    assert np.all(np.abs(eps.mean(0) - np.sqrt(rho) * eps_y) < 5 * np.sqrt((1 - rho) / N))
    np.testing.assert_allclose(eps.var(0), 1 - rho, rtol=5 * math.sqrt(2 / N))
    # the state is x0 + √γ_t ε̃ at the returned times
    g_t = gamma(s.t.double())
    assert torch.allclose(s.x_t, x0 + g_t.sqrt() * s.target, atol=1e-12)


def test_correlated_pair_with_random_tau_standardises(ref):
    """With τ ~ U(0, max t*) per draw, (ε̃ − √ρ ε_y)/√(1 − ρ) is N(0, 1) for the ρ each draw got."""
    x0, y, s2, eps_y, _ = _pinned_pair(ref, 0.0)
    s = training_sample(x0, y, s2, generator=torch.Generator().manual_seed(1))
    t, t_star = s.t.double().numpy()[:, 0, 0], s.t_star.double().numpy()[:, 0, 0]
    assert np.all(t <= t_star + 1e-9) and np.all(t >= 0)
    rho = ref.gamma(t) / ref.gamma(t_star)
    keep = rho < 0.98
    z = (s.target[:, 0, 0].numpy() - np.sqrt(rho) * eps_y) / np.sqrt(np.where(keep, 1 - rho, 1))
    z = z[keep]
    assert abs(z.mean()) < 5 / math.sqrt(z.size) and abs(z.var() - 1) < 5 * math.sqrt(2 / z.size)


@pytest.mark.parametrize("correlated", [True, False])
def test_joint_over_y_unit_variance_and_correlation_sqrt_rho(ref, correlated):
    g = torch.Generator().manual_seed(2)
    s2 = torch.tensor([0.01, 0.04, 0.3], dtype=torch.float64).view(1, 1, 1, 3).expand(N, 1, 1, 3)
    x0 = torch.full_like(s2, 3.0)
    eps_y = torch.randn(s2.shape, generator=g, dtype=torch.float64)
    y = x0 + s2.sqrt() * eps_y  # ε_y redrawn for every sample
    tau = 6.0
    s = training_sample(x0, y, s2, correlated=correlated, tau=torch.full((N,), tau), generator=g)
    eps, e_y = s.target[:, 0, 0].numpy(), eps_y[:, 0, 0].numpy()
    rho = ref.gamma(np.maximum(ref.time(s2[0, 0, 0].numpy()) - tau, 0)) / s2[0, 0, 0].numpy()
    corr = np.array([np.corrcoef(eps[:, j], e_y[:, j])[0, 1] for j in range(3)])
    np.testing.assert_allclose(eps.var(0), 1.0, rtol=5 * math.sqrt(2 / N))
    if correlated:
        assert np.all(np.abs(corr - np.sqrt(rho)) < 5 / math.sqrt(N))
    else:
        assert np.all(np.abs(corr) < 5 / math.sqrt(N))
        assert np.sqrt(rho).min() > 0.3  # the correlated version would fail this


def test_tau_zero_gives_y_and_large_tau_gives_x0_on_rgb():
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 6, 6, generator=g)
    s2 = 0.001 + 0.05 * torch.rand(2, 3, 6, 6, generator=g)
    y = (x0 + s2.sqrt() * torch.randn(x0.shape, generator=g)).clamp_min(0)
    at_y = training_sample(x0, y, s2, tau=torch.zeros(2), generator=g)
    assert torch.allclose(at_y.x_t, y, atol=1e-6) and torch.equal(at_y.t, time_map(s2))
    at_x0 = training_sample(x0, y, s2, tau=torch.full((2,), 1000.0), generator=g)
    assert torch.equal(at_x0.t, torch.zeros_like(at_x0.t)) and torch.equal(at_x0.x_t, x0)


def test_zero_variance_pixels_do_not_make_nans():
    x0 = torch.full((1, 1, 2, 2), 0.5)
    s2 = torch.tensor([0.0, 1e-6, 0.01, 0.04]).view(1, 1, 2, 2)
    y = x0 + s2.sqrt()
    for correlated in (True, False):
        s = training_sample(x0, y, s2, correlated=correlated, generator=torch.Generator().manual_seed(0))
        assert all(bool(torch.isfinite(v).all()) for v in s[:3])
        assert float(s.t[0, 0, 0, 0]) == 0.0 and float(s.x_t[0, 0, 0, 0]) == 0.5


def test_conditional_pair_is_one_integer_time_per_image(ref):
    x0 = torch.zeros(64, 1, 3, 3)
    s = conditional_training_sample(x0, generator=torch.Generator().manual_seed(0))
    t = s.t[:, 0, 0, 0]
    assert torch.equal(s.t, t.view(-1, 1, 1, 1).expand_as(s.t)) and torch.equal(t, t.round())
    assert 1 <= float(t.min()) and float(t.max()) <= 1000 and len(set(t.tolist())) > 50
    np.testing.assert_allclose(s.x_t.double().numpy(), (np.sqrt(ref.gamma(t.numpy())).reshape(-1, 1, 1, 1)
                                                         * s.target.double().numpy()), rtol=1e-5, atol=1e-7)


# --- Alg. 2 and the baseline ---------------------------------------------------------------------------

def test_sampler_with_an_oracle_recovers_x0_in_ceil_max_t_star_calls():
    g = torch.Generator().manual_seed(0)
    x0 = 0.2 + torch.rand(1, 3, 9, 11, generator=g)
    s2 = 0.001 + 0.04 * torch.rand(1, 3, 9, 11, generator=g)  # spatially variant, t* up to about 24
    y = x0 + s2.sqrt() * torch.randn(x0.shape, generator=g)
    calls = []
    model = _oracle(x0)
    x_hat, n = sample_svnr(lambda *a: calls.append(a[2]) or model(*a), y, s2, seed=0, return_calls=True)
    t_star = time_map(s2)
    assert n == len(calls) == math.ceil(float(t_star.max())) and n > 15
    assert torch.allclose(x_hat, x0, atol=1e-5)
    assert torch.allclose(calls[0], t_star) and torch.allclose(calls[3], (t_star - 3).clamp_min(0))


def test_sampler_chain_has_the_bridge_marginals(ref):
    """With the oracle, after step i the state is x0 + √γ(t* − i − 1) n marginally over y (Eq. 8's variance)."""
    g = torch.Generator().manual_seed(3)
    x0 = torch.full((1, 1, 100, 100), 1.0, dtype=torch.float64)
    s2 = torch.full_like(x0, 0.04)
    y = x0 + 0.2 * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    seen = {}
    sample_svnr(_oracle(x0), y, s2, generator=g, callback=lambda d: seen.setdefault(d["i"], d["x"] - x0))
    t_star = float(ref.time(0.04))
    for i in (0, 5, 15, 22):
        expected = float(ref.gamma(max(t_star - i - 1, 0)))
        assert float(seen[i].var()) == pytest.approx(expected, rel=5 * math.sqrt(2 / 1e4))
    assert float(seen[24].abs().max()) < 1e-8  # the last step lands on x̂_0 = x0


@pytest.mark.parametrize("steps", [1, 3, 7])
def test_sampler_with_fewer_steps_walks_each_pixels_own_time_down_in_equal_parts(ref, steps):
    """`steps` = N: calls at t*·(1 − i/N); with the oracle the chain keeps the bridge marginal
    x0 + √γ(t_{i+1}) n and ends on x0."""
    g = torch.Generator().manual_seed(1)
    x0 = torch.full((1, 1, 60, 60), 1.0, dtype=torch.float64)
    s2 = torch.full_like(x0, 0.04)
    s2[..., 30:, :] = 0.01  # two time regions
    y = x0 + s2.sqrt() * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    calls, seen = [], {}
    model = _oracle(x0)
    x_hat, n = sample_svnr(lambda *a: calls.append(a[2]) or model(*a), y, s2, steps=steps, generator=g,
                           callback=lambda d: seen.setdefault(d["i"], d["x"] - x0), return_calls=True)
    t_star = time_map(s2)
    assert n == len(calls) == steps
    for i, t in enumerate(calls):
        assert torch.allclose(t.double(), t_star * (1 - i / steps), atol=1e-5)
    if steps > 1:
        t_next = t_star[0, 0, 0, 0] * (1 - 1 / steps)
        expected = float(ref.gamma(float(t_next)))
        assert float(seen[0][..., :30, :].var()) == pytest.approx(expected, rel=5 * math.sqrt(2 / 1800))
    assert torch.allclose(x_hat, x0, atol=1e-8)


def test_reverse_step_to_a_given_time_is_the_default_one_step_below_and_checks_its_target():
    g = torch.Generator().manual_seed(0)
    x_t, x0_hat = torch.randn(1, 3, 4, 4, generator=g), torch.randn(1, 3, 4, 4, generator=g)
    t = 1 + 30 * torch.rand(1, 1, 4, 4, generator=g)
    a = reverse_step(x_t, x0_hat, t, generator=torch.Generator().manual_seed(5))
    b = reverse_step(x_t, x0_hat, t, s=t - 1, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(a, b, atol=1e-6)
    assert torch.equal(reverse_step(x_t, x0_hat, t, s=torch.zeros_like(t)), x0_hat)
    with pytest.raises(DenoiselabError, match="must not exceed"):
        reverse_step(x_t, x0_hat, t, s=t + 1)
    with pytest.raises(DenoiselabError, match="steps"):
        sample_svnr(lambda y, x, t: x, x_t, torch.full_like(x_t, 0.01), steps=0)


def test_sampler_is_reproducible_with_a_seed():
    g = torch.Generator().manual_seed(0)
    x0, y = torch.rand(1, 1, 8, 8, generator=g), torch.rand(1, 1, 8, 8, generator=g)
    model = lambda y, x, t: 0.5 * (x - y)  # an imperfect model, so the noise shows
    s2 = torch.full_like(y, 0.02)
    a, b, c = (sample_svnr(model, y, s2, seed=s) for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("steps, eta", [(10, None), (25, 0.5), (1000, None)])
def test_baseline_sampler_with_an_oracle_recovers_x0(steps, eta):
    x0 = 0.3 + 0.4 * torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    x_hat, n = sample_conditional(_oracle(x0), x0, steps=steps, eta=eta, seed=0, return_calls=True)
    assert n == steps and torch.allclose(x_hat, x0, atol=1e-4)


def test_baseline_ddim_is_deterministic_given_the_start_and_follows_its_schedule():
    times = []
    model = lambda y, x, t: times.append(float(t[0, 0, 0, 0])) or 0.1 * x
    y = torch.rand(1, 1, 4, 4)
    a = sample_conditional(model, y, steps=4, seed=0)
    assert times == [1000, 750, 500, 250]
    b = sample_conditional(model, y, steps=4, seed=0, start="y")
    assert not torch.equal(a, b)
    assert conditional_timesteps(3) == [1000, 667, 333, 0]


@pytest.mark.parametrize("call, message", [
    (lambda: training_sample(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5), torch.ones(1, 1, 4, 4)), "differs"),
    (lambda: training_sample(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.ones(1, 2, 4, 4)), "sigma2"),
    (lambda: training_sample(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), -torch.ones(1, 1, 2, 2)), ">= 0"),
    (lambda: training_sample(torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2) * 0.01,
                             tau=torch.tensor([-1.0, 0.0])), "tau"),
    (lambda: reverse_step(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2)), "time map"),
    (lambda: reverse_step(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 2000.0)), "T=1000"),
    (lambda: sample_svnr("not a model", torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)), "callable"),
    (lambda: sample_svnr(lambda y, x, t: x, torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 9.0)), "exceeds"),
    (lambda: sample_svnr(lambda y, x, t: x[:, :1], torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2) * 0.01), "ε̂ of shape"),
    (lambda: sample_svnr(lambda y, x, t: x, torch.zeros(3, 4), torch.ones(3, 4)), r"\(B, C, H, W\)"),
    (lambda: sample_conditional(lambda y, x, t: x, torch.zeros(1, 1, 2, 2), steps=0), "steps"),
    (lambda: sample_conditional(lambda y, x, t: x, torch.zeros(1, 1, 2, 2), steps=5, eta=2.0), "eta"),
    (lambda: sample_conditional(lambda y, x, t: x, torch.zeros(1, 1, 2, 2), steps=5, start="zero"), "start"),
    (lambda: sample_svnr(lambda y, x, t: x, torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2) * 0.01, seed=0,
                         generator=torch.Generator()), "either seed or generator"),
])
def test_bad_diffusion_arguments(call, message):
    with pytest.raises(DenoiselabError, match=message):
        call()
