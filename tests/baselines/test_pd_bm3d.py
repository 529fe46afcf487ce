"""PD-denoising and BM3D with an estimated σ: they denoise, keep shapes, and refuse bad input."""

import numpy as np
import pytest

from denoiselab.baselines.bm3d_est import bm3d_estimated, estimate_real_sigma
from denoiselab.baselines.pd_denoising import pd_denoising
from denoiselab.errors import DenoiselabError
from denoiselab.metrics import psnr


def _smooth(size=64, channels=3):
    t = np.linspace(0.15, 0.85, size, dtype=np.float32)
    base = np.add.outer(t, t[::-1]) / 2
    img = np.stack([base, 0.3 + 0.4 * (np.add.outer(t, t) > 1.0), base[::-1]][:channels], -1).astype(np.float32)
    return img[..., 0] if channels == 1 else img


def _noisy(clean, sigma=0.1, seed=0):
    return clean + sigma * np.random.default_rng(seed).standard_normal(clean.shape).astype(np.float32)


@pytest.mark.parametrize("channels", [1, 3])
def test_pd_denoising_improves_and_keeps_shape(channels):
    clean = _smooth(channels=channels)
    noisy = _noisy(clean)
    out = pd_denoising(noisy, device="cpu")
    assert out.shape == noisy.shape and out.dtype == np.float32
    gain = psnr(out, clean)[0] - psnr(noisy, clean)[0]
    assert gain > 4, gain  # measured with the shipped priors: 17.0 dB gray, 5.4 dB colour


def test_pd_refinement_and_odd_sizes():
    clean = _smooth(size=63)
    noisy = _noisy(clean)
    plain = pd_denoising(noisy, refine=False, device="cpu")
    refined = pd_denoising(noisy, refine=True, device="cpu")
    assert plain.shape == refined.shape == noisy.shape
    assert psnr(refined, clean)[0] > psnr(plain, clean)[0]  # refinement removes the PD grid artefacts


def test_pd_with_a_custom_denoiser_is_exact_for_identity():
    noisy = _noisy(_smooth(size=32))
    np.testing.assert_allclose(pd_denoising(noisy, denoiser=lambda x, s: x, device="cpu"), noisy, atol=1e-6)


def test_bm3d_with_estimated_sigma():
    clean = _smooth(size=96, channels=1)
    noisy = _noisy(clean, sigma=0.05)
    assert estimate_real_sigma(noisy) == pytest.approx(0.05, rel=0.35)
    assert estimate_real_sigma(noisy, "pca") == pytest.approx(0.05, rel=0.2)
    out = bm3d_estimated(noisy)
    assert out.shape == noisy.shape and psnr(out, clean)[0] > psnr(noisy, clean)[0] + 5


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.float32), np.zeros((16, 16, 2), np.float32),
                                 np.full((16, 16), np.nan, np.float32), np.zeros((16, 16), np.uint8)])
def test_bad_input(bad):
    with pytest.raises(DenoiselabError):
        pd_denoising(bad, device="cpu")
    with pytest.raises(DenoiselabError):
        bm3d_estimated(bad, sigma=0.1)


def test_bad_options():
    with pytest.raises(DenoiselabError):
        pd_denoising(_smooth(size=32), stride=0)
    with pytest.raises(DenoiselabError):
        bm3d_estimated(_smooth(size=32), sigma="magic")
