"""estimate_noise_covariance: the noise's spatial and cross-channel covariance from the noisy image alone."""

import pytest
import torch

from denoiselab.errors import DenoiselabError
from denoiselab.noise import add_correlated_noise, estimate_noise_covariance, estimate_real_noise, noise_covariance


def _scene(c: int = 3, side: int = 192) -> torch.Tensor:
    """A piecewise-smooth image: ramps and flat rectangles (flat windows at many intensities)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    base = 0.2 + 0.5 * xx + 0.1 * torch.sin(6 * yy)
    base[40:90, 30:120] = 0.8
    base[120:170, 100:180] = 0.15
    return torch.stack([base * (0.8 + 0.1 * k) for k in range(c)])[None].clamp(0, 1)


def test_correlated_noise_kernel_matches_the_noise_itself():
    clean = _scene()
    g = torch.Generator().manual_seed(0)
    noisy = add_correlated_noise(clean, 0.04, correlation_px=0.7, generator=g)
    cov = estimate_noise_covariance(noisy, radius=2)[0]
    truth = noise_covariance(noisy - clean, radius=2)[0]
    for ch in range(3):
        rho, rho_true = cov[ch, ch] / cov[ch, ch, 2, 2], truth[ch, ch] / truth[ch, ch, 2, 2]
        assert float((rho - rho_true).abs().max()) < 0.1, (ch, rho, rho_true)
        assert rho_true[2, 3] > 0.4  # the test noise is strongly correlated at lag 1
    # channels independent here: cross-covariance small beside the variance
    assert float(cov[0, 1].abs().max() / cov[0, 0, 2, 2]) < 0.1


def test_white_noise_has_no_off_centre_covariance_and_the_estimators_variance():
    clean = _scene(c=1)
    g = torch.Generator().manual_seed(1)
    noisy = clean + 0.03 * torch.randn(clean.shape, generator=g)
    est = estimate_real_noise(noisy)
    cov = estimate_noise_covariance(noisy, estimate=est)[0, 0, 0]
    rho = cov / cov[3, 3]
    off = rho.clone()
    off[3, 3] = 0
    assert float(off.abs().max()) < 0.1
    assert float(cov[3, 3]) == pytest.approx(float(est.variances[0, 0].mean()), rel=1e-9)
    assert abs(float(cov[3, 3]) ** 0.5 - 0.03) < 0.004


def test_cross_channel_correlation_is_measured():
    clean = _scene()
    g = torch.Generator().manual_seed(2)
    shared = add_correlated_noise(torch.zeros_like(clean[:, :1]), 0.03, correlation_px=0.7, generator=g)
    noisy = clean + shared.expand_as(clean)  # the same noise in every channel: correlation 1 across channels
    cov = estimate_noise_covariance(noisy, radius=1)[0]
    corr = cov[0, 1, 1, 1] / (cov[0, 0, 1, 1] * cov[1, 1, 1, 1]).sqrt()
    assert float(corr) > 0.9


@pytest.mark.parametrize("radius", [-1, 4, 1.5, True])
def test_bad_radius_is_a_clear_error(radius):
    with pytest.raises(DenoiselabError, match="radius"):
        estimate_noise_covariance(torch.rand(1, 1, 64, 64), radius=radius)


def test_too_small_image_is_a_clear_error():
    with pytest.raises(DenoiselabError):
        estimate_noise_covariance(torch.rand(1, 3, 10, 10))


def _mixed_noise(mix: torch.Tensor, blur_px: int = 0, side: int = 128, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = torch.randn(1, 3, side + 2 * blur_px, side + 2 * blur_px, generator=g)
    if blur_px:
        n = torch.nn.functional.avg_pool2d(n, 2 * blur_px + 1, stride=1) * (2 * blur_px + 1)
    return torch.einsum("ij,bjhw->bihw", mix, n)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_colour_whitening_makes_cross_channel_noise_white():
    from denoiselab.noise import colour_whitening

    mix = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.5, 0.3, 0.8]])
    noise = 0.04 * _mixed_noise(mix)
    w, w_inv, applied = colour_whitening(_scene(side=128) + noise)
    assert applied.tolist() == [True]
    torch.testing.assert_close(w[0] @ w_inv[0], torch.eye(3), atol=1e-5, rtol=0)
    white = noise_covariance(torch.einsum("bij,bjhw->bihw", w, noise), radius=0)[0, :, :, 0, 0]
    corr = white / torch.sqrt(torch.outer(white.diagonal(), white.diagonal()))
    before = noise_covariance(noise, radius=0)[0, :, :, 0, 0]
    assert float((before[0, 1] / torch.sqrt(before[0, 0] * before[1, 1]))) > 0.5  # strongly correlated to start with
    assert float((corr - torch.eye(3, dtype=corr.dtype)).abs().max()) < 0.15


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_colour_whitening_leaves_gray_and_blotchy_chroma_noise_alone():
    from denoiselab.noise import colour_whitening

    w, w_inv, applied = colour_whitening(_scene(c=1, side=64) + 0.02 * torch.randn(1, 1, 64, 64))
    assert applied.tolist() == [False] and torch.equal(w, torch.eye(1)[None])
    # luminance noise white, chroma noise blurred over 5×5 (JPEG-like chroma): whitening would amplify blotches
    lum = 0.04 * torch.randn(1, 1, 128, 128, generator=torch.Generator().manual_seed(1)).expand(1, 3, 128, 128)
    chroma = 0.01 * _mixed_noise(torch.tensor([[1.0, 0.0, 0.0], [-0.5, 0.8, 0.0], [-0.5, -0.8, 0.0]]), blur_px=2)
    w, _, applied = colour_whitening(_scene(side=128) + lum + chroma / 5)
    assert applied.tolist() == [False] and torch.equal(w[0], torch.eye(3))
