"""Tests of denoiselab.baselines.dip: contract, seeding, denoising, the oracle iteration. CPU, seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from denoiselab.baselines.dip import dip, dip_oracle
from denoiselab.errors import DenoiselabError
from denoiselab.metrics import psnr

torch.set_num_threads(1)

TINY = dict(base=8, depth=2, device="cpu")  # 32×32 images: a small X-net keeps each run to seconds
N_ITER, EMA = 60, 0.8  # short runs, short average: gray 20.26 dB noisy -> 29.79 dB fixed, 29.89 dB oracle (t = 49)


def _image(channels: int, h: int = 32, w: int = 32, seed: int = 0, sigma: float = 0.1):
    """Ramps and an edge (clean, in [0.25, 0.95]) and the same plus Gaussian noise of std `sigma`."""
    r, c = np.linspace(0, 1, h, dtype=np.float32), np.linspace(0, 1, w, dtype=np.float32)
    x = 0.25 + 0.5 * r[:, None] * c[None, :] + 0.2 * (r[:, None] > 0.3) * (c[None, :] > 0.5)
    if channels == 3:
        x = np.stack([x, x[::-1], 1 - x], -1)
    y = x + sigma * np.random.default_rng(seed).standard_normal(x.shape)
    return x.astype(np.float32), y.astype(np.float32)


@pytest.fixture(scope="module")
def gray_runs():
    x, y = _image(1)
    fixed = dip(y, iterations=N_ITER, ema=EMA, **TINY)
    oracle, t = dip_oracle(y, x, iterations=N_ITER, ema=EMA, **TINY)
    return x, y, fixed, oracle, t


@pytest.mark.parametrize("shape", [(32, 32), (32, 32, 1), (27, 30, 3)])
def test_shape_and_dtype(shape):
    _, y = _image(shape[2] if len(shape) == 3 else 1, *shape[:2])
    y = y.reshape(shape)
    out = dip(y, iterations=3, **TINY)
    assert out.shape == shape and out.dtype == np.float32
    assert np.isfinite(out).all() and 0 < out.min() and out.max() < 1  # sigmoid output


def test_seeded_runs_are_identical():
    _, y = _image(3)
    a = dip(y, iterations=4, seed=3, **TINY)
    b = dip(y, iterations=4, seed=3, **TINY)
    c = dip(y, iterations=4, seed=4, **TINY)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_denoises_gray(gray_runs):
    x, y, fixed, _, _ = gray_runs
    assert psnr(fixed, x)[0] > psnr(y, x)[0] + 5.0  # measured: 20.26 -> 29.79 dB (seeds 1, 2: 30.63, 29.47)


def test_denoises_rgb():
    x, y = _image(3)
    out = dip(y, iterations=N_ITER, ema=EMA, **TINY)
    assert psnr(out, x)[0] > psnr(y, x)[0] + 5.0  # measured: 20.07 -> 30.04 dB


def test_oracle_is_at_least_the_fixed_iteration(gray_runs):
    x, _, fixed, oracle, t = gray_runs
    assert 1 <= t <= N_ITER
    assert psnr(oracle, x)[0] >= psnr(fixed, x)[0]  # the last iteration is among those checked


def test_oracle_checks_every_eval_every_and_the_last():
    x, y = _image(1)
    _, t = dip_oracle(y, x, iterations=7, eval_every=3, **TINY)
    assert t in (3, 6, 7)
    # checking only the last iteration returns exactly the fixed-iteration result
    last, t = dip_oracle(y, x, iterations=5, eval_every=100, **TINY)
    assert t == 5
    np.testing.assert_array_equal(last, dip(y, iterations=5, **TINY))
    np.testing.assert_array_equal(last, dip(y, reference=x, iterations=5, eval_every=100, **TINY))


_, _Y = _image(1)


@pytest.mark.parametrize("noisy, settings", [
    (np.zeros((2, 32, 32, 3), np.float32), {}),  # 4-D
    (np.zeros((32, 32, 2), np.float32), {}),  # two channels
    (np.where(np.eye(32) > 0, np.nan, _Y).astype(np.float32), {}),  # NaN
    ((_Y * 255).astype(np.uint8), {}),  # 8-bit integers
    (_Y * 255, {}),  # 0-255 scale as floats
    (_Y[:5, :5], {}),  # too small
    (_Y, {"iterations": 0}),
    (_Y, {"ema": 1.0}),
    (_Y, {"lr": 0.0}),
    (_Y, {"reference": _Y[:16]}),  # reference of another shape
    (_Y, {"device": "tpu"}),
])
def test_bad_input_raises(noisy, settings):
    with pytest.raises(DenoiselabError):
        dip(noisy, **{"iterations": 1, **TINY, **settings})


def test_callback_leaves_the_fit_unchanged(check_callback):
    _, y = _image(3, 24, 24)
    check_callback(dip, y, 4, **TINY)
