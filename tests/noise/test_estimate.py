"""Tests for denoiselab.noise.estimate on synthetic images (seeded, no downloads)."""

import math

import pytest
import torch

from denoiselab.errors import DenoiselabError
from denoiselab.noise import (
    NoiseEstimate,
    estimate_noise_function,
    estimate_noise_level_pd,
    estimate_real_noise,
    estimate_sigma,
)

from ..conftest import DATA, needs_data

torch.set_num_threads(1)


def make_clean(c: int, size: int, seed: int = 0) -> torch.Tensor:
    """(1, c, size, size) in [0.1, 0.9]: smooth ramps, two step edges and a low-frequency texture."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0.0, 1.0, size)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    out = []
    for k in range(c):
        phase = float(torch.rand(1, generator=g)) * 2 * math.pi
        img = 0.3 + 0.3 * xx + 0.1 * yy * (k + 1) / c
        img = img + 0.15 * (xx > 0.55) - 0.1 * (yy > 0.7)  # edges
        texture = 0.05 * torch.sin(2 * math.pi * 6 * xx + phase) * torch.sin(2 * math.pi * 5 * yy)
        img = img + texture * (yy < 0.35)  # textured band
        out.append(img.clamp(0.1, 0.9))
    return torch.stack(out)[None]


def add_awgn(x: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return x + sigma * torch.randn(x.shape, generator=g)


# ---------------------------------------------------------------- AWGN: estimate_sigma


@pytest.mark.parametrize("method", ["pca", "mad"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1])
def test_estimate_sigma_recovers_awgn_within_10_percent(method, channels, sigma):
    y = add_awgn(make_clean(channels, 256), sigma, seed=int(sigma * 1000) + channels)
    est = estimate_sigma(y, method=method)
    assert est.shape == (1,) and est.dtype == y.dtype
    assert abs(est.item() - sigma) / sigma < 0.10


@pytest.mark.parametrize("sigma", [0.02, 0.1])
def test_signal_dependent_estimator_recovers_awgn(sigma):
    y = add_awgn(make_clean(3, 256, seed=3), sigma, seed=5)
    for stride in (1, 4):
        est = estimate_noise_function(y, stride=stride)
        assert abs(est.sigma.item() - sigma) / sigma < 0.10
        # δ is floor(255 · √(mean variance)): within one level below the std estimate, give or take 10 %
        assert est.delta255.dtype == torch.int64
        assert abs(est.delta255.item() - 255 * sigma) <= 0.1 * 255 * sigma + 1


def test_estimate_noise_level_pd_is_delta_over_255():
    y = add_awgn(make_clean(3, 128), 0.1, seed=7)
    est = estimate_noise_function(y, stride=4)
    lvl = estimate_noise_level_pd(y)
    assert lvl.shape == (1,)
    assert torch.equal(lvl, est.delta255.to(lvl.dtype) / 255.0)


# ---------------------------------------------------------------- signal-dependent model

A_TRUE, B_TRUE = 0.01, 0.0004  # σ²(x) = a·x + b: σ = 0.02 at x = 0, ≈ 0.10 at x = 1


def make_poisson_gaussian(seed: int = 0, size: int = 256, *, blocks: bool = False):
    """Clean image and Poisson–Gaussian noisy image (Gaussian approximation, no clipping).

    ``blocks=False``: horizontal ramp 0 -> 1. ``blocks=True``: 4×4 flat tiles at 16 levels in
    [0.05, 0.95] (on a ramp every patch has the same intensity slope, so the noise axis tilts
    towards the darker side of patches; flat tiles avoid that synthetic artefact).
    """
    if blocks:
        levels = torch.linspace(0.05, 0.95, 16)[torch.randperm(16, generator=torch.Generator().manual_seed(seed))]
        tile = size // 4
        x = levels.reshape(4, 4).repeat_interleave(tile, 0).repeat_interleave(tile, 1)[None, None]
    else:
        x = torch.linspace(0.0, 1.0, size).repeat(1, 1, size, 1)
    g = torch.Generator().manual_seed(seed)
    y = x + (A_TRUE * x + B_TRUE).sqrt() * torch.randn(x.shape, generator=g)
    return x, y


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("blocks", [False, True])
def test_noise_function_recovers_poisson_gaussian_parameters(seed, blocks):
    # stated tolerance: a within 10 %, b within 50 % (b, the small intercept, is the hard one:
    # it is under 10 % of the noise variance above x = 0.5)
    _, y = make_poisson_gaussian(seed, blocks=blocks)
    est = estimate_noise_function(y, stride=1)
    a, b = est.params[0, 0].tolist()
    assert abs(a - A_TRUE) / A_TRUE < 0.10
    assert abs(b - B_TRUE) / B_TRUE < 0.50


@pytest.mark.parametrize("seed", [0, 1])
def test_noise_function_std_curve_with_pixel_shuffle(seed):
    # stride 4 (ScoreDVI): 64×64 sub-images; the std curve σ(x) within 10 % over [0.05, 0.95]
    _, y = make_poisson_gaussian(seed, blocks=True)
    est = estimate_noise_function(y, stride=4)
    grid = torch.linspace(0.05, 0.95, 10).reshape(1, 1, 1, 10)
    true_std = (A_TRUE * grid + B_TRUE).sqrt()
    assert torch.all((est.variance(grid).sqrt() / true_std - 1).abs() < 0.10)


def test_variance_map_is_consistent():
    x, y = make_poisson_gaussian(3)
    est = estimate_noise_function(y, stride=1)
    assert isinstance(est, NoiseEstimate)
    var = est.variance(x)
    assert var.shape == x.shape and var.dtype == x.dtype
    a, b = est.params[0, 0]
    assert torch.allclose(var, (a * x + b).to(var.dtype))
    # it matches the empirical variance of the noise, binned by intensity
    noise = (y - x).flatten()
    for lo in (0.1, 0.4, 0.7):
        sel = (x.flatten() >= lo) & (x.flatten() < lo + 0.2)
        assert abs(var.flatten()[sel].mean() / noise[sel].var() - 1) < 0.15
    # sigma is the mean model std over the kept patches: inside the range of the std map
    std = var.sqrt()
    assert std.min() <= est.sigma.item() <= std.max()
    assert est.n_patches.item() > 0
    with pytest.raises(DenoiselabError, match="expected"):
        est.variance(torch.rand(2, 1, 4, 4))


# ---------------------------------------------------------------- batches, edge cases


def test_batch_of_two_equals_two_single_calls():
    y1 = add_awgn(make_clean(3, 96, seed=1), 0.03, seed=1)
    y2 = add_awgn(make_clean(3, 96, seed=2), 0.08, seed=2)
    y = torch.cat([y1, y2])
    for method in ("pca", "mad"):
        both = estimate_sigma(y, method=method)
        single = torch.cat([estimate_sigma(y1, method=method), estimate_sigma(y2, method=method)])
        assert torch.allclose(both, single, rtol=1e-6, atol=0)
    both = estimate_noise_function(y)
    one, two = estimate_noise_function(y1), estimate_noise_function(y2)
    assert torch.allclose(both.params, torch.cat([one.params, two.params]), rtol=1e-6, atol=1e-12)
    assert torch.allclose(both.sigma, torch.cat([one.sigma, two.sigma]), rtol=1e-6, atol=0)
    assert torch.equal(both.delta255, torch.cat([one.delta255, two.delta255]))
    assert torch.equal(both.n_patches, torch.cat([one.n_patches, two.n_patches]))


@pytest.mark.filterwarnings("ignore:.*biased low:UserWarning")
@pytest.mark.parametrize("shape", [(1, 1, 64, 64), (2, 3, 32, 48)])
def test_constant_image_gives_zero(shape):
    y = torch.full(shape, 0.37)
    for method in ("pca", "mad"):
        s = estimate_sigma(y, method=method)
        assert torch.equal(s, torch.zeros(shape[0]))
    est = estimate_noise_function(y)
    assert torch.equal(est.sigma, torch.zeros(shape[0]))
    assert torch.equal(est.delta255, torch.zeros(shape[0], dtype=torch.int64))
    assert torch.equal(est.params, torch.zeros(shape[0], shape[1], 2, dtype=torch.float64))
    assert torch.equal(estimate_noise_level_pd(y), torch.zeros(shape[0]))


def test_small_images_degrade_gracefully():
    # 32×32: finite, non-negative, not above the truth by much, and a warning that the
    # estimate is biased low (few patches for a 49×49 covariance)
    sigma = 0.05
    y = add_awgn(make_clean(3, 32), sigma, seed=4)
    with pytest.warns(UserWarning, match="biased low") as record:
        values = [estimate_sigma(y), estimate_noise_function(y).sigma, estimate_noise_function(y, stride=1).sigma]
    assert all(w.filename == __file__ for w in record)  # stacklevel points at the caller
    values.append(estimate_sigma(y, method="mad"))
    for value in values:
        assert torch.isfinite(value).all()
        assert 0.0 < value.item() < 1.5 * sigma


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: estimate_sigma(torch.rand(1, 1, 6, 6)), "too small"),
        (lambda: estimate_sigma(torch.rand(1, 1, 20, 20), patch_size=21), "too small"),
        (lambda: estimate_noise_function(torch.rand(1, 3, 24, 24)), "too small"),
        (lambda: estimate_noise_level_pd(torch.rand(1, 1, 16, 64)), "too small"),
        (lambda: estimate_sigma(torch.rand(64, 64)), "4-D"),
        (lambda: estimate_sigma(torch.randint(0, 255, (1, 1, 64, 64))), "dtype"),
        (lambda: estimate_sigma(torch.rand(1, 1, 64, 64), method="svd"), "pca, mad"),
        (lambda: estimate_sigma(torch.rand(1, 1, 64, 64), patch_size=2), "patch_size"),
        (lambda: estimate_noise_function(torch.rand(1, 1, 64, 64), stride=0), "stride"),
        (lambda: estimate_noise_function(torch.rand(1, 1, 64, 64), n_iter=-1), "n_iter"),
        (lambda: estimate_sigma(torch.rand(0, 1, 64, 64)), "no pixels"),
    ],
)
def test_user_errors_raise_one_line_denoiselab_error(call, match):
    with pytest.raises(DenoiselabError, match=match) as err:
        call()
    assert "\n" not in str(err.value)


def test_half_and_double_inputs():
    y = add_awgn(make_clean(1, 128), 0.05, seed=9)
    ref = estimate_sigma(y)
    assert estimate_sigma(y.double()).dtype == torch.float64
    assert torch.allclose(estimate_sigma(y.double()).float(), ref, rtol=1e-3)
    assert abs(estimate_sigma(y.half()).item() - ref.item()) < 0.05 * ref.item()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    y = add_awgn(make_clean(3, 128), 0.05, seed=10)
    for method in ("pca", "mad"):
        cpu = estimate_sigma(y, method=method)
        gpu = estimate_sigma(y.cuda(), method=method)
        assert gpu.device.type == "cuda"
        assert torch.allclose(gpu.cpu(), cpu, rtol=1e-3)
    cpu_est, gpu_est = estimate_noise_function(y), estimate_noise_function(y.cuda())
    assert torch.allclose(gpu_est.sigma.cpu(), cpu_est.sigma, rtol=1e-3)
    assert gpu_est.variance(y.cuda()).device.type == "cuda"


def test_declip_recovers_the_gaussian_behind_clipped_values():
    """Mean and variance of max(μ + σZ, 0) (and of min(·, 1)) are mapped back to μ and σ²."""
    from denoiselab.noise.estimate import _declip

    g = torch.Generator().manual_seed(0)
    z = torch.randn(1_000_000, generator=g, dtype=torch.float64)
    cases = [(0.04, 0.1), (-0.03, 0.08), (0.97, 0.05), (0.5, 0.01)]  # clipped at 0, at 0, at 1, not at all
    for mu, sd in cases:
        y = (mu + sd * z).clamp(0, 1)
        m, v = _declip(y.mean()[None], y.var()[None])
        assert abs(float(m) - mu) < 2e-3 and abs(float(v) ** 0.5 / sd - 1) < 0.01, (mu, sd, float(m), float(v) ** 0.5)


def test_shot_read_pooled_over_channels_on_a_dark_clipped_image():
    """Read noise 0.1 on a dark linear image: the clipped classes no longer fake a shot-noise slope."""
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(0.02, 0.6, 256, dtype=torch.float64).repeat(1, 3, 256, 1).float()
    x[:, 1:] *= 0.2  # two dark channels, almost all of them within 2σ of 0
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    est = estimate_real_noise(y, stride=1)
    a, b = (float(v) for v in est.shot_read(per_channel=False)[0, 0])
    assert est.shot_read().shape == (1, 3, 2) and est.shot_read(per_channel=False).shape == (1, 1, 2)
    assert abs(b ** 0.5 - 0.1) < 0.01 and a < 0.1 * 0.1 * 0.2, (a, b)  # shot² well below read²


def test_demosaicked_noise_is_measured_per_colour_filter_site():
    """Shot + read noise on a real photo's linear RGB, then an RGGB mosaic and bilinear demosaic.

    The interpolated sites carry 1/2-1/4 of the sampled sites' variance; measured per site, the
    estimate stays within 10 % of std(noisy - clean) (pooled it read 17 % low on CBSD68 crops).
    """
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from denoiselab.noise import bayer_demosaic

    path = Path(__file__).resolve().parents[2] / "examples" / "sidd_18_1_clean.png"
    srgb = torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    lin = srgb ** 2.2
    g = torch.Generator().manual_seed(0)
    noisy_lin = lin + torch.sqrt(0.01 * lin + 4e-4) * torch.randn(lin.shape, generator=g)
    clean, noisy = bayer_demosaic(lin), bayer_demosaic(noisy_lin)
    truth = float((noisy - clean).std())
    est = estimate_real_noise(noisy)
    assert bool(est.correlated[0]) and int(est.stride[0]) == 4
    assert float(est.shuffle_gain[0]) > 2.0  # the correlation hides part of the noise at stride 1
    assert abs(float(est.sigma[0]) / truth - 1) < 0.10, (float(est.sigma[0]), truth)



@needs_data("test", "synthetic", "Kodak24", "kodim01.png")
def test_little_white_noise_on_texture_is_not_taken_for_correlated_noise():
    """SVNR's lowest level (read 0.01, shot 0.02, linear) on a textured 128² crop is white: stride 1.

    The old rule (noise std at stride 1 against stride 4) read it as correlated (0.78): the
    stride-4 sub-images' aliased texture looked like noise. The same noise demosaicked is correlated.
    """
    from denoiselab.datasets import center_crop
    from denoiselab.io import read_image
    from denoiselab.noise import bayer_demosaic
    from denoiselab.svnr import add_svnr_noise, to_linear, to_srgb

    clean = center_crop(read_image(DATA / "test" / "synthetic" / "Kodak24" / "kodim01.png").array, 128)
    x_lin = to_linear(torch.from_numpy(clean).permute(2, 0, 1)[None])
    y, _ = add_svnr_noise(x_lin, 0.01, 0.02, generator=torch.Generator().manual_seed(0))
    white = estimate_real_noise(to_linear(to_srgb(y.clamp(0, 1))))
    demosaicked = estimate_real_noise(bayer_demosaic(y))
    assert not bool(white.correlated[0]) and int(white.stride[0]) == 1, float(white.correlation[0])
    assert bool(demosaicked.correlated[0]) and int(demosaicked.stride[0]) == 4, float(demosaicked.correlation[0])


def test_shuffle_gain_is_measured_only_where_the_spectrum_says_correlated():
    """White noise on a smooth image: the spectrum alone settles it, the gain is not measured (NaN);
    forced to stride 4 the same image is still reported as white."""
    y = add_awgn(make_clean(3, 128), 0.05)
    for stride in ("auto", 4):
        est = estimate_real_noise(y, stride=stride)
        assert float(est.correlation[0]) <= 0.15
        assert math.isnan(float(est.shuffle_gain[0])) and not bool(est.correlated[0])
    assert int(estimate_real_noise(y).stride[0]) == 1


@needs_data("test", "synthetic", "Kodak24", "kodim01.png")
def test_shot_read_fit_ignores_levels_measured_on_texture_only():
    """kodim01 (128², read 0.01, shot 0.02): the busy intensities have no flat patch and read about
    2x the noise; flagged unreliable, they no longer pull the shot term up (0.048 before, true 0.02)."""
    from denoiselab.datasets import center_crop
    from denoiselab.io import read_image
    from denoiselab.svnr import add_svnr_noise, to_linear, to_srgb

    clean = center_crop(read_image(DATA / "test" / "synthetic" / "Kodak24" / "kodim01.png").array, 128)
    y, _ = add_svnr_noise(to_linear(torch.from_numpy(clean).permute(2, 0, 1)[None]), 0.01, 0.02,
                          generator=torch.Generator().manual_seed(0))
    est = estimate_real_noise(to_linear(to_srgb(y.clamp(0, 1))))
    assert est.reliable.shape == est.levels.shape and 0 < float(est.reliable.mean()) < 1
    a, b = (float(v) for v in est.shot_read(per_channel=False)[0, 0])
    assert abs(b ** 0.5 - 0.01) < 0.002 and a ** 0.5 < 0.035, (b ** 0.5, a ** 0.5)


def test_levels_of_a_flat_noisy_image_are_all_reliable():
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(0.2, 0.8, 128).repeat(1, 3, 128, 1)
    est = estimate_real_noise(x + 0.03 * torch.randn(x.shape, generator=g))
    assert bool((est.reliable == 1).all())


def make_fluorescence(seed: int = 0, size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(clean, noisy), (1, 1, size, size): a dark background (0.02) with smooth bright cells
    (Gaussian blobs up to 0.85) covering about a tenth of the image, white shot + read noise
    σ²(x) = 0.004·x + 1e-5 (fluorescence microscopy: most pixels dark, the noise in the few
    bright ones)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    clean = torch.full((size, size), 0.02)
    for _ in range(12):
        cy, cx = (torch.rand(2, generator=g) * size).tolist()
        r = 6.0 + 8.0 * float(torch.rand(1, generator=g))
        clean = clean + 0.83 * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    clean = clean.clamp(0.0, 0.85)[None, None]
    noisy = clean + (0.004 * clean + 1e-5).sqrt() * torch.randn(clean.shape, generator=g)
    return clean, noisy


@pytest.mark.parametrize("seed", [0, 1])
def test_white_shot_noise_of_a_dark_image_counts_its_bright_pixels(seed):
    """The brightest intensity class spans the bright cells (0.15-0.85); held at its level,
    σ²(x) misses part of their noise (std -9 % / -21 % for seeds 0 / 1); continued along its
    rise (shot noise) -3 % / -17 %, the rest being the class's own variance, measured low."""
    clean, noisy = make_fluorescence(seed)
    truth = float((noisy - clean).std())
    est = estimate_real_noise(noisy)
    assert int(est.stride[0]) == 1
    held = float(est.variances[0].mean().sqrt())  # the mean over the classes, nothing added above
    assert abs(float(est.sigma[0]) / truth - 1) < 0.20, (float(est.sigma[0]), truth)
    assert truth - float(est.sigma[0]) < 0.9 * (truth - held)
    # σ²(x) rises linearly above the brightest level, with the slope of its last segment
    top, var = est.levels[0, 0], est.variances[0, 0]
    slope = float((var[-1] - var[-2]) / (top[-1] - top[-2]))
    above = torch.tensor([float(top[-1]) + 0.1, float(top[-1]) + 0.2]).reshape(1, 1, 1, 2).double()
    v = est.variance(above).flatten()
    assert slope > 0 and math.isclose(float(v[1] - v[0]), 0.1 * slope, rel_tol=1e-6)
    # the mean of σ²(x) over the clean image is about σ² (measured on the noisy patch means)
    assert abs(float(est.variance(clean.double()).mean().sqrt()) / float(est.sigma[0]) - 1) < 0.05


def test_correlated_noise_level_function_is_held_above_the_brightest_level():
    x = make_clean(3, 128)
    g = torch.Generator().manual_seed(0)
    noise = torch.nn.functional.avg_pool2d(torch.randn(1, 3, 130, 130, generator=g), 3, stride=1) * 0.1
    est = estimate_real_noise(x + noise)
    assert bool(est.correlated[0]) and int(est.stride[0]) == 4
    top = est.levels[0, :, -1].reshape(1, 3, 1, 1).double()
    assert torch.allclose(est.variance(top + 0.05), est.variance(top + 0.2))


@needs_data("train", "color", "41025.jpg")
def test_white_noise_whose_spectrum_looks_correlated_is_kept_white_by_the_shuffle_gain():
    """SVNR's lowest level on a whole textured training photo: its flattest patches still hold
    texture, so the spectrum alone reads camera noise (correlation above 0.3, the old rule's
    threshold), but pixel-shuffling barely raises the measured std (gain below 2): white, stride 1."""
    from denoiselab.io import read_image
    from denoiselab.svnr import add_svnr_noise, to_linear, to_srgb

    clean = torch.from_numpy(read_image(DATA / "train" / "color" / "41025.jpg").array).permute(2, 0, 1)[None]
    y, _ = add_svnr_noise(to_linear(clean), 0.01, 0.02, generator=torch.Generator().manual_seed(0))
    est = estimate_real_noise(to_srgb(y.clamp(0, 1)))
    assert float(est.correlation[0]) > 0.3 and float(est.shuffle_gain[0]) < 2.0
    assert not bool(est.correlated[0]) and int(est.stride[0]) == 1


@needs_data("real", "sidd_val", "noisy", "15_17.png")
def test_camera_noise_on_a_small_crop_with_a_weak_spectrum_signature_is_still_correlated():
    """A 128² SIDD crop whose spectrum statistic is low (0.18: below the old rule's 0.3, which
    called it white) but whose std rises 2.7× when pixel-shuffled: camera noise, stride 4."""
    import numpy as np

    from denoiselab.datasets import center_crop
    from denoiselab.io import read_image

    crop = np.ascontiguousarray(center_crop(read_image(DATA / "real" / "sidd_val" / "noisy" / "15_17.png").array, 128))
    est = estimate_real_noise(torch.from_numpy(crop).permute(2, 0, 1)[None])
    assert 0.15 < float(est.correlation[0]) <= 0.3 and float(est.shuffle_gain[0]) > 2.0
    assert bool(est.correlated[0]) and int(est.stride[0]) == 4
