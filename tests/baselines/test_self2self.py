"""Tests of denoiselab.baselines.self2self: contract, seeding, partial conv, denoising. CPU, seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from denoiselab.baselines.self2self import _PConv, self2self
from denoiselab.errors import DenoiselabError
from denoiselab.metrics import psnr

torch.set_num_threads(1)

TINY = dict(width=4, n_predictions=2, device="cpu")


def _image(channels: int, h: int = 32, w: int = 32, seed: int = 0, sigma: float = 0.1):
    """Ramps and an edge (clean, in [0.25, 0.95]) and the same plus Gaussian noise of std `sigma`."""
    r, c = np.linspace(0, 1, h, dtype=np.float32), np.linspace(0, 1, w, dtype=np.float32)
    x = 0.25 + 0.5 * r[:, None] * c[None, :] + 0.2 * (r[:, None] > 0.3) * (c[None, :] > 0.5)
    if channels == 3:
        x = np.stack([x, x[::-1], 1 - x], -1)
    y = x + sigma * np.random.default_rng(seed).standard_normal(x.shape)
    return x.astype(np.float32), y.astype(np.float32)


@pytest.mark.parametrize("shape", [(32, 32), (32, 32, 1), (27, 30, 3), (9, 40)])
def test_shape_and_dtype(shape):
    _, y = _image(shape[2] if len(shape) == 3 else 1, *shape[:2])
    out = self2self(y.reshape(shape), iterations=2, **TINY)
    assert out.shape == shape and out.dtype == np.float32
    assert np.isfinite(out).all() and 0 < out.min() and out.max() < 1  # sigmoid output


def test_seeded_runs_are_identical():
    _, y = _image(3)
    a = self2self(y, iterations=3, seed=5, **TINY)
    b = self2self(y, iterations=3, seed=5, **TINY)
    c = self2self(y, iterations=3, seed=6, **TINY)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_denoises_smooth_gray_image():
    x, y = _image(1)
    # a small net and a large step size, so that 60 steps suffice (paper: width 48, lr 1e-5, 150 000 steps)
    out = self2self(y, iterations=60, lr=5e-3, width=8, n_predictions=8, device="cpu")
    assert psnr(out, x)[0] > psnr(y, x)[0] + 3.0  # measured: 20.3 -> 26.0 dB (seeds 1, 2: 27.8, 24.4 dB)


def test_partial_conv_with_full_mask_is_a_plain_conv_inside():
    g = torch.Generator().manual_seed(0)
    pconv = _PConv(3, 5, g)
    torch.nn.init.uniform_(pconv.conv.bias, -1, 1, generator=g)
    x = torch.rand(1, 3, 8, 8, generator=g)
    out, mask = pconv(x, torch.ones_like(x))
    plain = F.leaky_relu(F.conv2d(x, pconv.conv.weight, pconv.conv.bias, padding=1), 0.1)
    torch.testing.assert_close(out[..., 1:-1, 1:-1], plain[..., 1:-1, 1:-1])
    assert bool((mask == 1).all())


def test_partial_conv_ignores_masked_values_and_marks_holes():
    g = torch.Generator().manual_seed(1)
    pconv = _PConv(1, 4, g)
    x = torch.rand(1, 1, 8, 8, generator=g)
    m = torch.ones_like(x)
    m[..., 2:7, 2:7] = 0  # a 5×5 hole: its 3×3 centre sees no valid pixel
    out, new_mask = pconv(x, m)
    out2, _ = pconv(torch.where(m > 0, x, torch.full_like(x, 100.0)), m)
    torch.testing.assert_close(out, out2)  # values under the mask never reach the output
    assert bool((new_mask[..., 3:6, 3:6] == 0).all()) and bool((out[..., 3:6, 3:6] == 0).all())
    assert bool((new_mask[..., 2, 2] == 1).all())


_, _Y = _image(1)


@pytest.mark.parametrize("noisy, settings", [
    (np.zeros((2, 32, 32, 3), np.float32), {}),  # 4-D
    (np.zeros((32, 32, 4), np.float32), {}),  # four channels
    (np.where(np.eye(32) > 0, np.nan, _Y).astype(np.float32), {}),  # NaN
    ((_Y * 255).astype(np.uint8), {}),  # 8-bit integers
    (_Y[:7], {}),  # too small
    (_Y, {"iterations": 0}),
    (_Y, {"p": 0.0}),
    (_Y, {"p": 1.0}),
    (_Y, {"n_predictions": 0}),
    (_Y, {"width": 0}),
    (_Y, {"lr": -1e-3}),
])
def test_bad_input_raises(noisy, settings):
    with pytest.raises(DenoiselabError):
        self2self(noisy, **{"iterations": 1, **TINY, **settings})


def test_callback_leaves_the_fit_unchanged(check_callback):
    _, y = _image(3, 24, 24)
    check_callback(self2self, y, 4, **TINY)
