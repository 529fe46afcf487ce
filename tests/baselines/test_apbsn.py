"""AP-BSN on a single image: blind spot, shapes, seeding, R³, a small denoising run, bad input.

All runs use tiny networks and budgets (seconds on one CPU thread); the paper-size defaults are
for a GPU.
"""

import numpy as np
import pytest
import torch
from torch import nn

from denoiselab.baselines.apbsn import BlindSpotNet, apbsn
from denoiselab.errors import DenoiselabError

TINY = dict(iterations=3, width=8, blocks=1, patch=20, batch=2, refine_T=2, device="cpu")


def smooth_image(channels: int, size: int = 40) -> np.ndarray:
    """(size, size, C) low-contrast ramps and a slow sinusoid in [0.3, 0.7]."""
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)
    yy, xx = np.meshgrid(t, t, indexing="ij")
    planes = [0.3 + 0.4 * xx, 0.2 + 0.5 * yy, 0.5 + 0.3 * np.sin(3 * xx + 2 * yy)]
    img = np.stack(planes, -1) if channels == 3 else (sum(planes) / 3)[:, :, None]
    return img.astype(np.float32)


def noisy_image(channels: int, size: int = 40, sigma: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    x = smooth_image(channels, size)
    y = x + sigma * np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    if channels == 1:
        x, y = x[:, :, 0], y[:, :, 0]
    return x, y


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.mark.parametrize("channels", [1, 3])
def test_blind_spot_output_ignores_own_pixel(channels):
    torch.manual_seed(0)
    net = BlindSpotNet(channels, width=8, blocks=2).eval()
    y = torch.rand(1, channels, 23, 23)
    y2 = y.clone()
    y2[0, :, 11, 11] += 5.0  # a large change of the centre pixel, all channels
    with torch.no_grad():
        out, out2 = net(y), net(y2)
    assert torch.allclose(out[0, :, 11, 11], out2[0, :, 11, 11], atol=1e-5)
    assert not torch.allclose(out, out2)  # the neighbours do see the change


def test_blind_spot_gradient_is_zero_at_own_pixel():
    torch.manual_seed(0)
    net = BlindSpotNet(3, width=8, blocks=2)
    y = torch.rand(1, 3, 21, 21, requires_grad=True)
    net(y)[0, :, 10, 10].sum().backward()
    assert float(y.grad[0, :, 10, 10].abs().max()) == 0.0
    assert float(y.grad.abs().sum()) > 0.0


def test_blind_spot_holds_with_an_offset():
    # apbsn sets the offset to the image mean; the blind spot must not depend on it
    torch.manual_seed(0)
    net = BlindSpotNet(3, width=8, blocks=2)
    net.offset.fill_(0.6)
    y = torch.rand(1, 3, 21, 21, requires_grad=True)
    net(y)[0, :, 10, 10].sum().backward()
    assert float(y.grad[0, :, 10, 10].abs().max()) == 0.0


def test_fresh_network_starts_at_the_image_mean():
    # With its last layer zeroed the network returns exactly its offset, which apbsn sets to the
    # noisy image's channel means: training starts at the intensity level instead of near 0.
    torch.manual_seed(0)
    net = BlindSpotNet(3, width=8, blocks=1)
    nn.init.zeros_(net.tail[-1].weight)
    nn.init.zeros_(net.tail[-1].bias)
    net.offset.copy_(torch.tensor([0.2, 0.5, 0.7]).view(1, 3, 1, 1))
    out = net(torch.rand(1, 3, 16, 16))
    torch.testing.assert_close(out, torch.tensor([0.2, 0.5, 0.7]).view(1, 3, 1, 1).expand(1, 3, 16, 16))


def test_brightness_shift_shifts_the_output():
    # The network works around the noisy image's channel means, so training and test see the
    # same data after a constant shift of the image: the output moves by exactly that shift.
    _, y = noisy_image(3, size=24)
    shift = np.array([0.05, -0.1, 0.08], np.float32)
    settings = {**TINY, "iterations": 3}
    np.testing.assert_allclose(apbsn(y + shift, **settings), apbsn(y, **settings) + shift, atol=1e-4)


@pytest.mark.parametrize("shape", [(40, 40), (41, 43, 3), (40, 40, 1)])
def test_shape_and_dtype(shape):
    y = np.random.default_rng(0).uniform(0.2, 0.8, shape).astype(np.float32)
    out = apbsn(y, **TINY)
    assert out.shape == y.shape and out.dtype == np.float32
    assert np.isfinite(out).all()


def test_same_seed_same_output():
    _, y = noisy_image(3)
    a = apbsn(y, seed=3, **TINY)
    b = apbsn(y, seed=3, **TINY)
    c = apbsn(y, seed=4, **TINY)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_refinement_with_all_pixels_replaced_is_bsn_without_pd():
    # refine_p=1 puts every noisy pixel back, so each R³ pass is the BSN on the noisy image
    _, y = noisy_image(1)
    settings = {**TINY, "refine_T": 0}
    plain = apbsn(y, **{**settings, "pd_test": 1})
    refined = apbsn(y, **{**settings, "refine_T": 2, "refine_p": 1.0})
    np.testing.assert_allclose(refined, plain, atol=1e-6)


def test_reduces_error_on_smooth_image():
    # White noise and a 40x40 image: PD stride 2 (stride 5 would leave 8x8 sub-images).
    # Measured (seed 0, one CPU thread): noisy 19.90 dB -> 26.76 dB (seeds 1, 2: 24.98, 24.77).
    x, y = noisy_image(1)
    out = apbsn(y, iterations=120, width=16, blocks=1, patch=20, batch=2, lr=2e-3,
                pd_train=2, pd_test=2, refine_T=2, device="cpu", seed=0)
    assert psnr(y, x) == pytest.approx(19.90, abs=0.01)
    assert psnr(out, x) > psnr(y, x) + 3.0


@pytest.mark.parametrize(
    "bad, kwargs, match",
    [
        (np.zeros((40, 40, 3, 1), np.float32), {}, "shape"),
        (np.zeros((40, 40, 2), np.float32), {}, "C = 1 or 3"),
        (np.zeros((40, 40), np.uint8), {}, "dtype"),
        (np.full((40, 40), np.nan, np.float32), {}, "NaN"),
        (np.zeros((19, 40), np.float32), {}, "too small"),
        (np.zeros((40, 40), np.float32), {"iterations": 0}, "iterations"),
        (np.zeros((40, 40), np.float32), {"refine_p": 1.5}, "refine_p"),
        (np.zeros((40, 40), np.float32), {"width": 7}, "odd"),
        (np.full((40, 40), 255.0, np.float32), {}, r"\[0, 1\]"),
        ([[0.5] * 40] * 40, {}, "numpy array"),
    ],
)
def test_bad_input_raises(bad, kwargs, match):
    with pytest.raises(DenoiselabError, match=match):
        apbsn(bad, **{**TINY, **kwargs})


def test_callback_leaves_the_fit_unchanged(check_callback):
    _, y = noisy_image(3, size=24)
    settings = {k: v for k, v in TINY.items() if k != "iterations"}
    check_callback(apbsn, y, 4, **settings)
