"""Correlated noise under ``--sigma auto``: BM3D is told the noise's covariance; NLM, TV and wavelet
run on pixel-shuffled sub-images. Either removes what the white-noise method leaves."""

import numpy as np
import pytest
import torch

from denoiselab import denoise
from denoiselab.baselines.bm3d_est import bm3d_estimated
from denoiselab.denoisers.classic import BM3DDenoiser, bm3d_denoiser, nlm_denoiser, tv_denoiser, wavelet_denoiser
from denoiselab.errors import DenoiselabError
from denoiselab.metrics import psnr
from denoiselab.noise import add_correlated_noise, estimate_noise_covariance, estimate_real_noise
from denoiselab.pixel_shuffle import PixelShuffleDenoiser


def _pair(correlated: bool, side: int = 128, seed: int = 0):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    base = 0.25 + 0.4 * xx + 0.1 * torch.cos(5 * yy)
    base[20:60, 20:100] = 0.75
    base[80:115, 50:120] = 0.1
    clean = torch.stack([base, 0.9 * base, 0.8 * base + 0.1])[None]
    g = torch.Generator().manual_seed(seed)
    if correlated:
        noisy = add_correlated_noise(clean, 0.05, correlation_px=0.8, generator=g)
    else:
        noisy = clean + 0.05 * torch.randn(clean.shape, generator=g)
    return noisy, clean


def _score(out: torch.Tensor, clean: torch.Tensor) -> float:
    return float(psnr(out.clamp(0, 1)[0].permute(1, 2, 0).numpy(), clean[0].permute(1, 2, 0).numpy())[0])


def test_estimated_covariance_beats_white_bm3d_on_correlated_noise():
    noisy, clean = _pair(correlated=True)
    est = estimate_real_noise(noisy)
    assert bool(est.correlated[0])
    white = _score(bm3d_denoiser()(noisy, est.sigma), clean)
    adapted = bm3d_denoiser().for_noise(noisy, est)
    assert adapted.noise_shape is not None
    told = _score(adapted(noisy, est.sigma), clean)
    assert told > white + 1.0, (told, white)


def test_white_noise_keeps_the_white_bm3d():
    noisy, _ = _pair(correlated=False)
    est = estimate_real_noise(noisy)
    assert bm3d_denoiser().for_noise(noisy, est).noise_shape is None


def test_covariance_shape_scales_with_sigma():
    """σ²·shape is the covariance: the shape measured at one σ denoises the same noise given that σ."""
    noisy, clean = _pair(correlated=True, seed=3)
    est = estimate_real_noise(noisy)
    shape = estimate_noise_covariance(noisy, estimate=est)[0] / est.sigma[0].double() ** 2
    assert float(shape[0, 0, 3, 3] + shape[1, 1, 3, 3] + shape[2, 2, 3, 3]) / 3 == pytest.approx(1.0, rel=1e-6)
    good = _score(BM3DDenoiser(shape)(noisy, est.sigma), clean)
    tiny = _score(BM3DDenoiser(shape)(noisy, est.sigma * 0.1), clean)  # told almost no noise: removes little
    assert good > tiny + 3.0


@pytest.mark.parametrize("shape", [np.ones((3, 3, 7)), np.ones((3, 2, 7, 7)), np.ones((1, 1, 6, 6))])
def test_bad_noise_shape_is_a_clear_error(shape):
    with pytest.raises(DenoiselabError, match="noise_shape"):
        BM3DDenoiser(shape)


def test_api_and_bench_use_the_same_correlated_bm3d():
    noisy, clean = _pair(correlated=True, seed=5)
    image = noisy[0].permute(1, 2, 0).numpy().astype(np.float32)
    result = denoise(image, method="bm3d", return_details=True)
    assert result.noise["correlated"] == [True]
    bench = bm3d_estimated(image)
    np.testing.assert_allclose(result.image, bench, atol=1e-5)
    white = bm3d_estimated(image, sigma="white")
    c = clean[0].permute(1, 2, 0).numpy()
    assert psnr(np.clip(bench, 0, 1), c)[0] > psnr(np.clip(white, 0, 1), c)[0] + 1.0


@pytest.mark.parametrize("correlated", [False, True])
def test_gray_image_stored_as_rgb_is_denoised_not_nan(correlated):
    """CBM3D's colour transform divides by the chroma range, which is 0 for R = G = B."""
    noisy, clean = _pair(correlated=correlated, seed=7)
    gray = noisy[:, :1].expand(-1, 3, -1, -1).contiguous()
    est = estimate_real_noise(gray)
    out = bm3d_denoiser().for_noise(gray, est)(gray, est.sigma)
    assert bool(torch.isfinite(out).all())
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])
    assert _score(out[:, :1], clean[:, :1]) > _score(gray[:, :1], clean[:, :1]) + 3.0


@pytest.mark.parametrize("make", [tv_denoiser, wavelet_denoiser, nlm_denoiser])
def test_white_noise_methods_pixel_shuffle_correlated_noise(make):
    noisy, clean = _pair(correlated=True, seed=11)
    est = estimate_real_noise(noisy)
    adapted = make().for_noise(noisy, est)
    assert isinstance(adapted, PixelShuffleDenoiser) and adapted.correlated_noise
    white = _score(make()(noisy, est.sigma), clean)
    assert _score(adapted(noisy, est.sigma), clean) > white + 0.5, white


@pytest.mark.parametrize("make", [tv_denoiser, wavelet_denoiser, nlm_denoiser])
def test_white_noise_methods_stay_as_they_are_on_white_noise(make):
    noisy, _ = _pair(correlated=False, seed=13)
    denoiser = make()
    assert denoiser.for_noise(noisy, estimate_real_noise(noisy)) is denoiser


def test_api_records_how_correlated_noise_was_met():
    noisy, _ = _pair(correlated=True, seed=17)
    image = noisy[0].permute(1, 2, 0).numpy().astype(np.float32)
    tv = denoise(image, method="tv", return_details=True)
    assert tv.noise["correlated"] == [True] and "pixel-shuffled" in tv.noise["correlated_noise"]
    assert "covariance" in denoise(image, method="bm3d", return_details=True).noise["correlated_noise"]
    given = denoise(image, method="tv", sigma=0.05, return_details=True)  # a given σ means white noise
    assert "correlated_noise" not in given.noise
