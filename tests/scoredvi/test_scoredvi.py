"""Tests of denoiselab.scoredvi: score unit, loss terms, λ schedule, API contract. CPU, seconds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import digamma, gammaln

from denoiselab.denoisers.bfdncnn import BFDnCNN
from denoiselab.errors import DenoiselabError
from denoiselab.scoredvi import (
    GrayFromColor,
    ScoreIdentity,
    choose_beta,
    choose_prior_weight,
    compute_loss_terms,
    denoise_tiled,
    get_preset,
    scoredvi,
)
from denoiselab.scoredvi.nets import NetConfig, Theta

torch.set_num_threads(1)

TINY = get_preset("fast", n_iter=4, nets=NetConfig(x_base=4, x_depth=2, aux_width=4, aux_depth=3, residual_mean=True,
                                                      init_log_var=-6.0))


def _tiny_image(channels: int = 3, size: int = 32, seed: int = 0, sigma: float = 0.1) -> torch.Tensor:
    """Ramps and edges plus Gaussian noise, (1, C, size, size)."""
    g = torch.Generator().manual_seed(seed)
    r = torch.linspace(0, 1, size)
    x = 0.25 + 0.5 * r[None, :] * r[:, None]
    x = x + 0.2 * (r[None, :] > 0.5).float() * (r[:, None] > 0.3).float()
    x = x.expand(channels, size, size).clone()
    if channels == 3:
        x[1] = x[1].flip(0)
        x[2] = 1 - x[2]
    return (x + sigma * torch.randn(x.shape, generator=g))[None]


@pytest.fixture(autouse=True)
def _quick_noise_estimate(request, monkeypatch):
    """Most tests use the small stand-in δ estimator, so they test ScoreDVI alone (and fast);
    tests marked ``real_estimator`` go through denoiselab.noise."""
    if "real_estimator" not in request.keywords:
        from denoiselab.scoredvi import core
        from denoiselab.scoredvi.prior_weight import _estimate_delta_fallback

        def quick(y, *, return_estimate=False):
            delta = _estimate_delta_fallback(y)
            return (delta, None) if return_estimate else delta

        monkeypatch.setattr(core, "estimate_delta", quick)


@pytest.fixture(scope="module")
def priors3():
    torch.manual_seed(0)
    return [BFDnCNN(3, depth=3, width=8).eval() for _ in range(3)]


# ----------------------------------------------------------------------------- score unit
def test_score_unit_matches_gaussian_prior_exactly():
    """Gaussian prior N(m, s²): the exact MMSE denoiser at noise σ² is linear, and the unit's
    gradient must equal -∇ log p_σ(z) with p_σ = N(m, s² + σ²)."""
    g = torch.Generator().manual_seed(1)
    m, s2 = torch.rand(2, 3, 4, 4, generator=g), 0.02 + 0.05 * torch.rand(2, 3, 4, 4, generator=g)
    var = 0.001 + 0.03 * torch.rand(2, 3, 4, 4, generator=g)
    z = torch.randn(2, 3, 4, 4, generator=g).requires_grad_(True)
    denoised = (s2 * z.detach() + var * m) / (s2 + var)
    (-ScoreIdentity.apply(z, denoised, var).sum()).backward()
    expected = (z.detach() - m) / (s2 + var)
    torch.testing.assert_close(z.grad, expected, rtol=1e-5, atol=1e-6)
    # the same against autograd on the explicit density
    z2 = z.detach().clone().requires_grad_(True)
    (-torch.distributions.Normal(m, torch.sqrt(s2 + var)).log_prob(z2).sum()).backward()
    torch.testing.assert_close(z.grad, z2.grad, rtol=1e-5, atol=1e-6)


def test_score_unit_is_identity_and_sends_no_gradient_to_denoiser_or_variance():
    z = torch.randn(3, 5, requires_grad=True)
    d = torch.randn(3, 5, requires_grad=True)
    v = torch.rand(3, 5).add(0.1).requires_grad_(True)
    out = ScoreIdentity.apply(z, d, v)
    assert torch.equal(out, z)
    out.sum().backward()
    assert d.grad is None and v.grad is None
    torch.testing.assert_close(z.grad, (d - z).detach() / v.detach())


# ----------------------------------------------------------------------------- loss terms
def _random_theta(b=1, k=2, c=1, h=2, w=2, seed=0) -> Theta:
    g = torch.Generator().manual_seed(seed)
    shp = (b, k, c, h, w)
    log_var = -4 + torch.rand(shp, generator=g)
    pi = torch.softmax(torch.randn(shp, generator=g), dim=1)
    return Theta(mu=torch.rand(shp, generator=g), var=torch.exp(log_var), log_var=log_var,
                 alpha=0.5 + 3 * torch.rand(shp, generator=g), beta=0.001 + 0.05 * torch.rand(shp, generator=g),
                 pi=pi, d=0.3 + 2 * torch.rand(shp, generator=g))


def _numpy_terms(y, th: Theta, alpha, beta, dpr):
    """Direct per-pixel loops over Eqs. 12-16 in float64 with scipy's special functions."""
    y = y.double().numpy()
    mu, var, a, bb, pi, d = (getattr(th, n).double().numpy() for n in ("mu", "var", "alpha", "beta", "pi", "d"))
    _, k, c, h, w = mu.shape
    tot = {f"L{i}": 0.0 for i in range(1, 6)}
    n = c * h * w
    for ci in range(c):
        for i in range(h):
            for j in range(w):
                dsum = sum(d[0, kk, ci, i, j] for kk in range(k))
                l5 = gammaln(dsum) - sum(gammaln(d[0, kk, ci, i, j]) for kk in range(k)) - (gammaln(k * dpr) - k * gammaln(dpr))
                for kk in range(k):
                    p, m, v, al, be, dk = (x[0, kk, ci, i, j] for x in (pi, mu, var, a, bb, d))
                    yy = y[0, ci, i, j]
                    tot["L1"] += -p * (-((m - yy) ** 2 + v) * al / (2 * be) + (digamma(al) - math.log(be)) / 2)
                    tot["L2"] += -0.5 * p * math.log(v)
                    tot["L3"] += p * (gammaln(alpha) - gammaln(al) + (al - alpha) * digamma(al) + alpha * math.log(be / beta)
                                      + (beta - be) * al / be)
                    tot["L4"] += p * (math.log(p) - digamma(dk) + digamma(dsum))
                    l5 += (dk - dpr) * (digamma(dk) - digamma(dsum))
                tot["L5"] += l5
    return {key: val / n for key, val in tot.items()}


@pytest.mark.parametrize("seed", [0, 1])
def test_loss_terms_match_direct_computation(seed):
    th = _random_theta(seed=seed)
    y = torch.rand(1, 1, 2, 2, generator=torch.Generator().manual_seed(seed + 10))
    got = compute_loss_terms(y, th, alpha=1.0, beta=0.02, d_prior=1.0)
    want = _numpy_terms(y, th, 1.0, 0.02, 1.0)
    for key in want:
        assert got[key].shape == (1,)
        assert got[key].item() == pytest.approx(want[key], rel=1e-4, abs=1e-5), key


def test_kl_terms_vanish_when_posterior_equals_prior():
    th = _random_theta(seed=3)
    th.alpha, th.beta = torch.full_like(th.alpha, 1.0), torch.full_like(th.beta, 0.01)
    th.d = torch.ones_like(th.d)
    th.pi = torch.full_like(th.pi, 0.5)
    got = compute_loss_terms(torch.rand(1, 1, 2, 2), th, alpha=1.0, beta=0.01, d_prior=1.0)
    assert got["L3"].abs().item() < 1e-6 and got["L5"].abs().item() < 1e-6
    assert got["L4"].item() == pytest.approx(math.log(0.5) + 1.0, abs=1e-5)  # log π + ψ(2) - ψ(1)


# ----------------------------------------------------------------------------- λ and β
def test_prior_weight_schedule_at_the_boundaries():
    lam = choose_prior_weight(torch.tensor([0.0, 10.0, 10.01, 10.5, 25.0, 25.5, 26.0, 80.0]))
    assert lam.tolist() == [0.5, 0.5, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    assert choose_prior_weight(torch.tensor([5.0, 30.0]), gamma=1.0).tolist() == [1.0, 1.0]
    assert choose_prior_weight(torch.tensor([5.0, 30.0]), gamma=4.0).tolist() == [0.25, 4.0]
    with pytest.raises(DenoiselabError):
        choose_prior_weight(5.0, gamma=0.0)


def test_beta_rule_follows_the_same_thresholds():
    got = choose_beta(torch.tensor([3.0, 10.0, 11.0, 25.0, 26.0]))
    torch.testing.assert_close(got, torch.tensor([0.005, 0.005, 0.01, 0.01, 0.02]))


# ----------------------------------------------------------------------------- API contract
def test_same_seed_gives_identical_output(priors3):
    y = _tiny_image()
    a = scoredvi(y, preset=TINY, priors=priors3, seed=3, progress=False, device="cpu")
    b = scoredvi(y, preset=TINY, priors=priors3, seed=3, progress=False, device="cpu")
    c = scoredvi(y, preset=TINY, priors=priors3, seed=4, progress=False, device="cpu")
    assert torch.equal(a.image, b.image) and torch.equal(a.variance, b.variance)
    assert not torch.equal(a.image, c.image)


def test_batch_equals_single_image_runs(priors3):
    y = torch.cat([_tiny_image(seed=0), _tiny_image(seed=1, sigma=0.2)])
    both = scoredvi(y, preset=TINY, priors=priors3, progress=False, device="cpu", beta=0.01)
    for i in range(2):
        one = scoredvi(y[i:i + 1], preset=TINY, priors=priors3, progress=False, device="cpu", beta=0.01)
        torch.testing.assert_close(both.image[i:i + 1], one.image, rtol=1e-4, atol=1e-5)


def test_rgb_and_gray_numpy_inputs_keep_their_form(priors3):
    rgb = _tiny_image(3).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    res = scoredvi(rgb, preset=TINY, priors=priors3, progress=False, device="cpu")
    assert isinstance(res.image, np.ndarray) and res.image.shape == rgb.shape and res.image.dtype == np.float32
    gray = _tiny_image(1).clamp(0, 1)[0, 0].numpy().astype(np.float64)
    gray_priors = [BFDnCNN(1, depth=3, width=8).eval(), GrayFromColor(priors3[0]), GrayFromColor(priors3[1])]
    res = scoredvi(gray, preset=TINY, priors=gray_priors, progress=False, device="cpu")
    assert res.image.shape == gray.shape and res.variance.shape == gray.shape
    assert np.isfinite(res.image).all()


def test_sixteen_bit_like_input_runs(priors3):
    y = np.round(_tiny_image(3).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 65535) / 65535
    res = scoredvi(y, preset=TINY, priors=priors3, progress=False, device="cpu")
    assert np.isfinite(res.image).all()
    assert res.record["iterations"] == TINY.n_iter and len(res.record["delta255"]) == 1


def test_loss_falls_and_variance_is_nonnegative(priors3):
    y = _tiny_image()
    res = scoredvi(y, preset=TINY, priors=priors3, n_iter=8, progress=False, device="cpu")
    loss = res.record["loss"][:, 0]
    assert loss.shape == (8,)
    assert loss[-1] < loss[0]
    assert bool((res.variance >= 0).all())


def test_paper_preset_architecture_runs_one_step(priors3):
    res = scoredvi(_tiny_image(size=16), preset="paper", priors=priors3, n_iter=1, progress=False, device="cpu")
    assert res.image.shape == (1, 3, 16, 16) and res.record["n_samples"] == 5
    assert res.record["restarted"] == [True]  # an untrained run keeps σ ≈ 1 > 0.05, so the rule fires


def test_paper_preset_defaults_to_the_published_priors():
    from denoiselab.denoisers import list_denoisers
    from denoiselab.scoredvi import default_prior_names

    assert default_prior_names(3, "paper") == ("bfdncnn-color-cbsd300", "bfdncnn-color-scoredvi1", "bfdncnn-color-scoredvi2")
    assert default_prior_names(3, "fast") == ("bfdncnn-color-cbsd300",)  # K = 1: the first published prior
    assert default_prior_names(1, "fast") == ("bfdncnn-gray-bsd400",)
    known = set(list_denoisers())
    for preset in ("paper", "fast"):
        assert set(default_prior_names(1, preset)) <= known and set(default_prior_names(3, preset)) <= known


def test_pi_score_gradient_is_minus_the_mean_sample_as_in_the_authors_unit():
    """With the authors' unit (value z) π_k gets an extra −mean_M z_k per pixel; µ's gradient is unchanged."""
    th = _random_theta(b=1, k=2, c=1, h=2, w=2, seed=3)
    th.pi.requires_grad_(True)
    th.mu.requires_grad_(True)
    g = torch.Generator().manual_seed(1)
    eps = torch.randn(2, 3, 1, 1, 2, 2, generator=g)
    grads = {}
    for with_pi in (False, True):
        th.pi.grad = th.mu.grad = None
        z = th.mu.transpose(0, 1).unsqueeze(1) + th.var.sqrt().transpose(0, 1).unsqueeze(1) * eps
        unit = ScoreIdentity.apply(z, torch.zeros_like(z), th.var.transpose(0, 1).unsqueeze(1))
        term = unit if with_pi else unit - z.detach()
        compute_loss_terms(torch.rand(1, 1, 2, 2), th, alpha=1.0, beta=0.02, d_prior=1.0, score_term=term)["L2"].sum().backward()
        grads[with_pi] = (th.pi.grad.clone(), th.mu.grad.clone())
    n_pixels = 4
    extra = -z.detach().mean(1).transpose(0, 1) / n_pixels  # (B, K, C, H, W)
    torch.testing.assert_close(grads[True][0] - grads[False][0], extra)
    torch.testing.assert_close(grads[True][1], grads[False][1])


def test_pi_score_gradient_changes_the_fit(priors3):
    y = _tiny_image(size=16)
    runs = [scoredvi(y, preset=get_preset(TINY, pi_score_gradient=flag), priors=priors3, n_iter=3, progress=False,
                     device="cpu").image for flag in (False, True)]
    assert not torch.equal(runs[0], runs[1])


def test_warm_start_can_come_from_other_priors(priors3):
    from denoiselab.scoredvi import fit_scoredvi

    y = _tiny_image(size=16)
    warm = get_preset(TINY, nets=NetConfig(x_base=4, x_depth=2, aux_width=4, aux_depth=3, residual_mean=True,
                                           mean_init="prior", init_log_var=-6.0), n_iter=1)
    lam, beta = torch.ones(1), torch.full((1,), 0.02)
    halves = [lambda v, s: 0.5 * v] * 3  # (the random priors3 start as the identity themselves)
    same = fit_scoredvi(y, priors3, lam=lam, beta=beta, preset=warm)[0]
    other = fit_scoredvi(y, priors3, lam=lam, beta=beta, preset=warm, init_priors=halves)[0]
    assert not torch.allclose(same, other)
    with pytest.raises(DenoiselabError, match="warm-start priors"):
        fit_scoredvi(y, priors3, lam=lam, beta=beta, preset=warm, init_priors=halves[:2])


def test_align_corners_reaches_the_unet():
    from denoiselab.scoredvi.nets import PosteriorNets

    y = _tiny_image(size=16)
    outs = []
    for flag in (False, True):
        nets = PosteriorNets(1, 3, 2, NetConfig(x_base=4, x_depth=2, aux_width=4, aux_depth=3, align_corners=flag),
                             torch.Generator().manual_seed(0))
        assert nets.x_net.align_corners is flag
        outs.append(nets(y).mu)
    assert not torch.allclose(outs[0], outs[1])
    assert get_preset("paper").nets.align_corners and not get_preset("fast").nets.align_corners


@pytest.mark.real_estimator
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_runs_with_the_project_noise_estimator(priors3):
    res = scoredvi(_tiny_image(size=64, sigma=0.15), preset=TINY, priors=priors3, n_iter=1, progress=False, device="cpu")
    assert res.record["delta255"][0] > 10 and res.record["lam"][0] in (1.0, 2.0)


def test_large_images_are_tiled(priors3):
    small = get_preset(TINY, max_side=24, tile_overlap=8, n_iter=2)
    res = scoredvi(_tiny_image(size=40), preset=small, priors=priors3, progress=False, device="cpu")
    assert res.image.shape == (1, 3, 40, 40) and res.record["n_tiles"] == 4
    assert torch.isfinite(res.image).all()


def test_tiling_blends_to_identity():
    y = torch.rand(2, 3, 70, 45)
    out = denoise_tiled(lambda t: (t, 2 * t), y, tile=32, overlap=8)
    torch.testing.assert_close(out[0], y)
    torch.testing.assert_close(out[1], 2 * y)


@pytest.mark.parametrize(
    "bad",
    [
        torch.rand(3, 8, 8),  # 3-D tensor
        torch.rand(1, 2, 8, 8),  # 2 channels
        torch.full((1, 3, 8, 8), float("nan")),
        torch.randint(0, 255, (1, 3, 8, 8)),  # integer dtype
        torch.rand(1, 3, 8, 8) * 255,  # 0-255 scale
        np.zeros((8, 8, 4)),
        [[0.5]],
    ],
)
def test_bad_input_raises_one_line_error(bad, priors3):
    with pytest.raises(DenoiselabError) as err:
        scoredvi(bad, preset=TINY, priors=priors3, progress=False, device="cpu")
    assert "\n" not in str(err.value)


def test_bad_options_raise(priors3):
    y = _tiny_image(size=16)
    for kwargs in ({"preset": "slow"}, {"beta": -1.0}, {"beta": "big"}, {"priors": []}, {"priors": [3]}):
        kw = {"preset": TINY, "priors": priors3, **kwargs}
        with pytest.raises(DenoiselabError):
            scoredvi(y, progress=False, device="cpu", **kw)


def test_gaussian_oracle_prior_approaches_the_bayes_estimate():
    """x ~ N(m, s²) per pixel, y = x + N(0, sn²): with the exact MMSE denoiser as prior, the output
    must beat the noisy image clearly and come near the Bayes MSE s²sn²/(s²+sn²) = noisy MSE / 2."""
    g = torch.Generator().manual_seed(0)
    m, s, sn = 0.5, 0.1, 0.1
    x = m + s * torch.randn(1, 3, 32, 32, generator=g)
    y = x + sn * torch.randn(x.shape, generator=g)

    def oracle(z, sigma):
        return (s**2 * z + sigma**2 * m) / (s**2 + sigma**2)

    res = scoredvi(y, preset="fast", priors=[oracle] * 3, n_iter=40, beta=0.02, gamma=1.0, progress=False, device="cpu")
    mse = lambda a: ((a - x) ** 2).mean().item()  # noqa: E731
    bayes = mse((s**2 * y + sn**2 * m) / (s**2 + sn**2))
    assert mse(res.image) < 0.7 * mse(y)
    assert mse(res.image) < 1.35 * bayes


def test_warm_start_auto_goes_through_pd_only_for_correlated_images():
    from denoiselab.pixel_shuffle import pd_refine
    from denoiselab.scoredvi.core import _warm_start

    y = torch.cat([_tiny_image(size=16, seed=s) for s in (1, 2)])
    blur = lambda v, s: torch.nn.functional.avg_pool2d(v, 3, stride=1, padding=1, count_include_pad=False)  # noqa: E731
    base = _warm_start([blur, blur], y, "auto", torch.tensor([True, False]), stride=3, whiten=True)
    assert base.shape == (2, 2, 3, 16, 16)
    # these tiny images are too small for the noise covariance (12×12 windows): colours left as they are
    torch.testing.assert_close(base[0, 1], pd_refine(blur, y[:1], 3)[0])
    torch.testing.assert_close(base[1, 0], blur(y[1:], 0.0)[0])
    assert not torch.allclose(base[0, 0], blur(y[:1], 0.0)[0])  # the PD start is not the plain one
    torch.testing.assert_close(_warm_start([blur], y, "pd", None)[:, 0], pd_refine(blur, y, 2))  # default: PD-2
    torch.testing.assert_close(_warm_start([blur], y, "auto", None)[:, 0], blur(y, 0.0))  # no flags: plain start


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_pd_warm_start_denoises_in_colours_where_the_noise_is_white():
    """Noise correlated across channels: with `whiten` the PD start is D on W·y mapped back with W⁻¹."""
    from denoiselab.noise import colour_whitening
    from denoiselab.pixel_shuffle import pd_refine
    from denoiselab.scoredvi.core import _warm_start

    g = torch.Generator().manual_seed(3)
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.5, 0.3, 0.8]])
    y = 0.5 + 0.05 * torch.einsum("ij,bjhw->bihw", mix, torch.randn(1, 3, 96, 96, generator=g))
    # a per-channel nonlinear denoiser (a linear one would commute with the colour transform)
    blur = lambda v, s: torch.nn.functional.avg_pool2d(v, 3, stride=1, padding=1, count_include_pad=False).clamp(0.45, 0.55)  # noqa: E731
    w, w_inv, applied = colour_whitening(y.double())
    assert applied.tolist() == [True]
    expected = torch.einsum("bij,bjhw->bihw", w_inv, pd_refine(blur, torch.einsum("bij,bjhw->bihw", w, y), 3))
    torch.testing.assert_close(_warm_start([blur], y, "pd", None, stride=3, whiten=True)[:, 0], expected)
    unwhitened = _warm_start([blur], y, "pd", None, stride=3)[:, 0]
    torch.testing.assert_close(unwhitened, pd_refine(blur, y, 3))
    assert not torch.allclose(expected, unwhitened, atol=1e-4)


def test_fast_preset_warm_starts_through_whitened_pd3():
    nets = get_preset("fast").nets
    assert (nets.mean_init, nets.pd_stride, nets.pd_whiten) == ("auto", 3, True)
    assert (NetConfig().pd_stride, NetConfig().pd_whiten) == (2, False)  # Zhou et al.'s PD-2 unless a preset says otherwise


def test_unknown_mean_init_is_refused(priors3):
    from denoiselab.scoredvi import fit_scoredvi

    bad = get_preset(TINY, nets=NetConfig(x_base=4, x_depth=2, aux_width=4, aux_depth=3, mean_init="noisy"), n_iter=1)
    with pytest.raises(DenoiselabError, match="mean_init"):
        fit_scoredvi(_tiny_image(size=16), priors3, lam=torch.ones(1), beta=torch.full((1,), 0.02), preset=bad)


@pytest.mark.real_estimator
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_fast_decides_the_warm_start_from_the_noise_correlation(priors3):
    """White noise: plain D(y) start; the same noise blurred 2 px (correlated): PD start."""
    g = torch.Generator().manual_seed(0)
    x = torch.full((1, 3, 64, 64), 0.5)
    white = x + 0.08 * torch.randn(x.shape, generator=g)
    noise = torch.nn.functional.avg_pool2d(torch.randn(1, 3, 66, 66, generator=g), 3, stride=1)
    correlated = x + 0.2 * noise
    cfg = get_preset("fast", n_iter=1, nets=replace_nets(TINY.nets, mean_init="auto"))
    flags = [scoredvi(img, preset=cfg, priors=priors3, progress=False, device="cpu").record["correlated"][0]
             for img in (white, correlated)]
    assert flags == [False, True]


@pytest.mark.real_estimator
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_whitened_warm_start_reuses_the_noise_estimate_of_delta(priors3, monkeypatch):
    """One noise estimate per image: δ's, also for the colour whitening of the PD start (which
    used to estimate it again), with the same result as estimating it again on one tile."""
    import denoiselab.noise as noise_pkg
    import denoiselab.noise.estimate as estimate_mod
    from denoiselab.noise import colour_whitening
    from denoiselab.scoredvi.core import _warm_start

    g = torch.Generator().manual_seed(0)
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.5, 0.3, 0.8]])
    noise = torch.nn.functional.avg_pool2d(torch.randn(1, 3, 98, 98, generator=g), 3, stride=1)
    y = 0.5 + 0.2 * torch.einsum("ij,bjhw->bihw", mix, noise)
    cfg = get_preset("fast", n_iter=1, nets=replace_nets(TINY.nets, mean_init="auto", pd_whiten=True))
    assert bool(colour_whitening(y.double())[2][0])  # the whitened PD start is taken on this image
    blur = lambda v, s: torch.nn.functional.avg_pool2d(v, 3, stride=1, padding=1, count_include_pad=False).clamp(0.2, 0.8)  # noqa: E731
    reused = _warm_start([blur], y, "pd", None, stride=3, whiten=True, noise_estimate=estimate_mod.estimate_real_noise(y, stride=4))
    torch.testing.assert_close(reused, _warm_start([blur], y, "pd", None, stride=3, whiten=True))
    calls = []
    real = estimate_mod.estimate_real_noise

    def counted(*args, **kwargs):
        calls.append(kwargs.get("stride", "auto"))
        return real(*args, **kwargs)

    monkeypatch.setattr(noise_pkg, "estimate_real_noise", counted)
    monkeypatch.setattr(estimate_mod, "estimate_real_noise", counted)
    res = scoredvi(y, preset=cfg, priors=priors3, progress=False, device="cpu")
    assert calls == [4] and res.record["correlated"] == [True]


def replace_nets(nets: NetConfig, **kw) -> NetConfig:
    from dataclasses import replace

    return replace(nets, residual_mean=True, **kw)


def test_auto_beta_is_the_presets_rule(priors3):
    y = _tiny_image(size=16, sigma=0.02)
    fixed = scoredvi(y, preset=get_preset(TINY, auto_beta=0.02, n_iter=1), priors=priors3, progress=False, device="cpu")
    from dataclasses import replace

    from_delta = scoredvi(y, preset=replace(TINY, auto_beta=None, n_iter=1), priors=priors3, progress=False, device="cpu")
    assert fixed.record["beta"] == pytest.approx([0.02])
    delta = from_delta.record["delta255"][0]
    assert from_delta.record["beta"] == pytest.approx([float(choose_beta(torch.tensor([delta]))[0])])
    assert get_preset("fast").auto_beta == 0.02 and get_preset("paper").auto_beta is None


def test_phi_net_starts_at_the_hyperprior_per_image():
    from denoiselab.scoredvi.nets import PosteriorNets

    cfg = NetConfig(x_base=4, x_depth=2, aux_width=4, aux_depth=3, phi_from_hyperprior=True)
    beta = torch.tensor([0.005, 0.02])
    th = PosteriorNets(2, 3, 2, cfg, torch.Generator().manual_seed(0), beta=beta)(_tiny_image(size=16).expand(2, -1, -1, -1))
    # near Gamma(α = 1, β), the hyperprior (the head's weights are scaled down, its bias sets the level)
    assert th.alpha.log().abs().median() < 0.1
    torch.testing.assert_close(th.beta.flatten(1).median(1).values, beta, rtol=0.15, atol=0)
    plain = PosteriorNets(2, 3, 2, replace_nets(cfg, phi_from_hyperprior=False), torch.Generator().manual_seed(0), beta=beta)
    assert (plain(_tiny_image(size=16).expand(2, -1, -1, -1)).beta.flatten(1).median(1).values / beta).min() > 10


def test_zero_mean_score_stops_a_colour_biased_prior_from_moving_the_mean_colour():
    """A prior that adds a constant colour cast shifts the output's mean colour, unless the score is zero-mean."""
    y = _tiny_image(size=16, sigma=0.05)
    cast = torch.tensor([0.1, -0.1, 0.05]).view(1, 3, 1, 1)
    priors = [lambda v, s: v + cast] * 2
    means = {}
    for flag in (False, True):
        cfg = get_preset(TINY, n_iter=30, lr=3e-3, score_zero_mean=flag)
        out = scoredvi(y, preset=cfg, priors=priors, beta=0.02, progress=False, device="cpu").image
        means[flag] = (out - y).mean(dim=(0, 2, 3))
    assert means[True].abs().max() < 0.2 * means[False].abs().max()
    assert means[False][0] > 0.005  # the cast does move it without


def test_output_moving_average_settings():
    """ema_from_y with weight 1 returns y untouched; weight 0 from the first iterate returns the last iterate."""
    y = _tiny_image(size=16)
    ident = [lambda v, s: v] * 2
    keep_y = scoredvi(y, preset=get_preset(TINY, n_iter=3, ema=1.0, ema_from_y=True), priors=ident, progress=False, device="cpu")
    torch.testing.assert_close(keep_y.image, y)
    seen = []
    last = scoredvi(y, preset=get_preset(TINY, n_iter=3, ema=0.0, ema_from_y=False), priors=ident, progress=False,
                    device="cpu", callback=lambda st: seen.append((st["theta"].pi * st["theta"].mu).sum(1).clone()))
    torch.testing.assert_close(last.image, seen[-1])
