"""denoiselab.denoise: shapes and dtypes in and out, every method, stacks plane by plane, budgets, one-line errors."""

import re

import numpy as np
import pytest
import torch

import denoiselab
from denoiselab import DenoiseResult, denoise
from denoiselab.api import DEFAULT_MEMORY_MB, plan_tile
from denoiselab.errors import DenoiselabError

SIGMA = 0.1


def _pair(shape, seed=0):
    """A smooth clean image of `shape` (channel-last) in [0.2, 0.8] and a noisy copy (σ = 0.1)."""
    h, w = shape[1:3] if len(shape) == 4 else shape[:2]
    ramp = np.add.outer(np.linspace(0.2, 0.5, h), np.linspace(0, 0.3, w)).astype(np.float32)
    ramp = {2: ramp, 3: ramp[:, :, None], 4: ramp[None, :, :, None]}[len(shape)]
    clean = np.ascontiguousarray(np.broadcast_to(ramp, shape))
    noisy = clean + np.random.default_rng(seed).normal(0, SIGMA, shape).astype(np.float32)
    return clean, noisy


def _mse(a, b):
    return float(np.mean((a - b) ** 2))


@pytest.mark.parametrize("shape", [(40, 36), (40, 36, 1), (40, 36, 3), (2, 40, 36, 3), (3, 40, 36, 1)])
def test_output_has_the_input_shape_and_float32(shape):
    clean, noisy = _pair(shape)
    out = denoise(noisy, "bfdncnn-color", device="cpu")
    assert out.shape == shape and out.dtype == np.float32
    assert _mse(out, clean) < _mse(noisy, clean) / 2


@pytest.mark.parametrize("method", denoiselab.list_denoisers())
def test_every_registered_method_denoises(method):
    channels = 1 if "gray" in method else 3
    clean, noisy = _pair((32, 32, channels))
    res = denoise(noisy, method, sigma=SIGMA, device="cpu", return_details=True)
    assert isinstance(res, DenoiseResult) and res.uncertainty is None
    blind = denoiselab.denoisers.is_blind(denoiselab.denoisers.load_denoiser(method))
    assert res.image.shape == noisy.shape and res.noise == ({} if blind else {"sigma": [SIGMA]})  # what was used
    assert _mse(res.image, clean) < _mse(noisy, clean)


def test_blind_networks_estimate_no_sigma(monkeypatch):
    import denoiselab.noise

    def refuse(*args, **kwargs):
        raise AssertionError("a blind network's noise level was estimated")

    monkeypatch.setattr(denoiselab.noise, "estimate_real_noise", refuse)
    _, noisy = _pair((64, 64, 3))
    res = denoise(noisy, "bfdncnn-color", device="cpu", return_details=True)
    assert res.noise == {}


def test_sigma_auto_is_the_real_noise_estimate():
    from denoiselab.noise import estimate_real_noise

    _, noisy = _pair((64, 64, 3))
    res = denoise(noisy, "tv", return_details=True)
    expected = float(estimate_real_noise(torch.from_numpy(noisy).permute(2, 0, 1)[None]).sigma[0])
    assert res.noise["sigma"] == [pytest.approx(expected, rel=1e-6)]


def test_float64_and_float16_are_accepted():
    _, noisy = _pair((24, 24, 3))
    a = denoise(noisy.astype(np.float64), "tv", sigma=SIGMA)
    b = denoise(noisy.astype(np.float16), "tv", sigma=SIGMA)
    assert a.dtype == b.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=2e-3)


def test_color_prior_on_gray_image_uses_the_gray_prior():
    _, noisy = _pair((32, 32))
    res = denoise(noisy, "bfdncnn-color", device="cpu", return_details=True)
    assert res.method == "bfdncnn-gray"


def test_sigma_is_estimated_per_plane_when_not_given():
    _, noisy = _pair((2, 64, 64, 1))
    noisy[1] = 0.5 + (noisy[1] - 0.5) * 0.5  # second plane: half the noise
    res = denoise(noisy, "wavelet", return_details=True)
    s0, s1 = res.noise["sigma"]
    assert s0 == pytest.approx(SIGMA, rel=0.15) and s1 == pytest.approx(SIGMA / 2, rel=0.15)


def test_stack_planes_are_denoised_like_single_images(capsys):
    _, noisy = _pair((3, 32, 40, 3))
    stack = denoise(noisy, "tv", sigma=SIGMA, progress=True)
    assert "tv" in capsys.readouterr().err  # one progress bar over the planes
    for p in range(3):
        np.testing.assert_array_equal(stack[p], denoise(noisy[p], "tv", sigma=SIGMA))


def test_scoredvi_details():
    _, noisy = _pair((2, 32, 32, 3))
    res = denoise(noisy, iterations=2, device="cpu", return_details=True)
    assert res.method == "scoredvi" and res.image.shape == noisy.shape
    assert res.uncertainty.shape == noisy.shape and (res.uncertainty >= 0).all()
    assert set(res.noise) == {"delta255", "lam", "beta"} and len(res.noise["lam"]) == 2
    assert res.settings["iterations"] == 2 and res.settings["preset"] == "fast"
    assert res.seconds > 0


def test_same_seed_same_scoredvi_output():
    _, noisy = _pair((24, 24, 3))
    a = denoise(noisy, iterations=2, seed=3, device="cpu")
    b = denoise(noisy, iterations=2, seed=3, device="cpu")
    np.testing.assert_array_equal(a, b)


def test_a_small_budget_tiles_the_image_and_keeps_the_result():
    clean, noisy = _pair((300, 260, 3))
    whole = denoise(noisy, "bfdncnn-color", device="cpu", return_details=True)
    tiled = denoise(noisy, "bfdncnn-color", device="cpu", max_memory_mb=12, return_details=True)
    assert whole.settings["tile"] is None and tiled.settings["tile"] is not None and tiled.settings["n_tiles"] > 1
    assert abs(_mse(tiled.image, clean) - _mse(whole.image, clean)) < 0.01 * _mse(whole.image, clean)


def test_plan_tile_fits_the_budget_and_grows_with_it():
    shape, per_px = (1, 4000, 6000, 3), 500.0
    fixed = 2 * 4000 * 6000 * 3 * 4
    sides = [plan_tile(shape, bytes_per_pixel=per_px, plane_copies=1, max_memory_mb=mb) for mb in (700, 1024, 2048)]
    assert sides == sorted(sides) and all(s % 32 == 0 for s in sides)
    for mb, side in zip((700, 1024, 2048), sides):
        assert fixed + side * side * per_px <= mb * 2**20
    assert plan_tile((1, 100, 100, 3), bytes_per_pixel=per_px, plane_copies=1) is None
    assert DEFAULT_MEMORY_MB == 2048


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"image": np.zeros((8, 8), dtype=np.uint8)}, "dtype uint8"),
        ({"image": np.zeros((8, 8, 4), dtype=np.float32)}, "not (H, W)"),
        ({"image": np.zeros((1, 2, 8, 8, 3), dtype=np.float32)}, "not (H, W)"),
        ({"image": [[0.5, 0.5]]}, "numpy array"),
        ({"image": np.full((8, 8), np.nan, dtype=np.float32)}, "NaN"),
        ({"image": np.full((8, 8), 200.0, dtype=np.float32)}, "divide 8-bit"),
        ({"image": np.zeros((0, 8), dtype=np.float32)}, "empty"),
        ({"sigma": 25}, "0-255 scale"),
        ({"sigma": -0.1}, "negative"),
        ({"sigma": "auto"}, "sigma="),
        ({"method": "magic"}, "unknown denoiser"),
        ({"method": "bfdncnn-gray"}, "gray images, the image is RGB"),
        ({"method": "scoredvi", "preset": "slow"}, "preset"),
        ({"method": "scoredvi", "iterations": 0}, "iterations"),
        ({"method": "scoredvi", "beta": -1.0, "iterations": 1}, "beta"),
        ({"max_memory_mb": 0}, "max_memory_mb"),
        ({"max_memory_mb": 0.1}, "too small"),
        ({"tile": 16, "overlap": 16}, "overlap"),
        ({"device": "tpu"}, "device"),
        ({"samples": 2}, "samples is for method='svnr'"),
        ({"read_noise": 0.1, "shot_noise": 0.01}, "read_noise, shot_noise are for method='svnr'; tv does not take them"),
        ({"method": "svnr", "read_noise": -0.1, "shot_noise": 0.01}, "read_noise=-0.1 is negative"),
        ({"method": "svnr", "samples": 0}, "samples=0"),
        ({"method": "svnr", "svnr_weights": "missing.safetensors"}, "not found"),
    ],
)
def test_user_errors_raise_one_line(kwargs, match):
    args = {"image": _pair((64, 64, 3))[1], "method": "tv", **kwargs}
    with pytest.raises(DenoiselabError, match=re.escape(match)) as err:
        denoise(args.pop("image"), args.pop("method"), **args)
    assert "\n" not in str(err.value)


def test_exported_at_the_top_level():
    assert denoiselab.denoise is denoise and "denoise" in denoiselab.__all__ and "DenoiseResult" in denoiselab.__all__


def test_noise_estimate_warnings_point_at_the_caller():
    _, noisy = _pair((32, 32, 3))  # small: too few patches for an unbiased estimate
    with pytest.warns(UserWarning, match="patches") as record:
        denoise(noisy, "tv")
    assert record[0].filename == __file__


def test_tune_cpu_allocator_is_accepted_and_changes_no_result():
    import sys

    y = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    net = denoiselab.load_denoiser("bfdncnn-color-s-bsd", device="cpu")
    before = net(y, 0.1)
    ok = denoiselab.tune_cpu_allocator()
    assert ok is (sys.platform.startswith("linux"))  # glibc here; a no-op elsewhere
    assert torch.equal(net(y, 0.1), before)
