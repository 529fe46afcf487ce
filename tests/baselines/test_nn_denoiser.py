"""NN+denoiser on a single image: shapes, seeding, the plug-and-play step, a small run, bad input.

A Gaussian blur stands in for BM3D (it follows the ``denoiser(y, sigma)`` protocol and costs
nothing); one tiny BM3D call checks the default.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from denoiselab.baselines.nn_denoiser import nn_denoiser
from denoiselab.errors import DenoiselabError


def blur(y: torch.Tensor, sigma) -> torch.Tensor:
    """Gaussian blur (std 1.5 px) of each channel; ignores `sigma`. A protocol-conforming stand-in."""
    t = torch.arange(-4, 5, dtype=y.dtype, device=y.device)
    k = torch.exp(-t**2 / (2 * 1.5**2))
    k = k / k.sum()
    c = y.shape[1]
    y = F.pad(y, (4, 4, 4, 4), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, 9).expand(c, 1, 1, 9).contiguous(), groups=c)
    return F.conv2d(y, k.view(1, 1, 9, 1).expand(c, 1, 9, 1).contiguous(), groups=c)


FAST = dict(denoiser=blur, outer_iterations=3, inner_iterations=5, first_sigma=0.1, base=4, depth=2, device="cpu")


def noisy_image(channels: int, size: int = 40, sigma: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)
    yy, xx = np.meshgrid(t, t, indexing="ij")
    planes = [0.3 + 0.4 * xx, 0.2 + 0.5 * yy, 0.5 + 0.3 * np.sin(3 * xx + 2 * yy)]
    x = np.stack(planes, -1) if channels == 3 else sum(planes) / 3
    x = x.astype(np.float32)
    y = x + sigma * np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    return x, y


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.mark.parametrize("shape", [(40, 40), (37, 42, 3), (40, 40, 1)])
def test_shape_and_dtype(shape):
    y = np.random.default_rng(0).uniform(0.2, 0.8, shape).astype(np.float32)
    out = nn_denoiser(y, **FAST)
    assert out.shape == y.shape and out.dtype == np.float32
    assert np.isfinite(out).all()


def test_same_seed_same_output():
    _, y = noisy_image(3)
    a = nn_denoiser(y, seed=5, **FAST)
    b = nn_denoiser(y, seed=5, **FAST)
    c = nn_denoiser(y, seed=6, **FAST)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_identity_start_first_sweep_is_the_plain_denoiser():
    # identity-start networks with a negligible learning rate keep E(y) = y, so x = y at the
    # first sweep and its denoiser output is denoiser(y, first_sigma)
    _, y = noisy_image(3)
    out = nn_denoiser(y, **{**FAST, "outer_iterations": 1, "identity_start": True, "lr": 1e-12})
    expected = blur(torch.from_numpy(y).permute(2, 0, 1)[None], 0.1)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_admm_sweeps_with_frozen_identity_networks():
    # With E(y) = y frozen, a sweep is x = w·y + (1-w)(t-u), t = D(x+u), u += η(x-t), w = 1/(1 + ρ(255σ_l)²)
    _, y = noisy_image(1, size=32)
    yt = torch.from_numpy(y)[None, None]
    out = nn_denoiser(y, denoiser=blur, outer_iterations=3, inner_iterations=2, first_sigma=0.1, latent_sigma=3 / 255,
                      rho=1.0, eta=0.5, base=4, depth=2, identity_start=True, lr=1e-12, device="cpu")
    w = 1 / (1 + 9.0)
    t, u = yt.clone(), torch.zeros_like(yt)
    for _ in range(3):
        x = w * yt + (1 - w) * (t - u)
        t = blur(x + u, None)
        u = u + 0.5 * (x - t)
    np.testing.assert_allclose(out, t[0, 0].numpy(), atol=1e-5)


@pytest.mark.filterwarnings("ignore:estimate_noise_function")  # 64² is small for the estimator
def test_denoiser_levels_per_sweep():
    x, y = noisy_image(3, size=64)
    seen = []

    def spy(t, sigma):
        seen.append(float(sigma))
        return t

    nn_denoiser(y, denoiser=spy, outer_iterations=3, inner_iterations=1, base=4, depth=2, device="cpu")
    assert len(seen) == 3  # one call per sweep
    assert 0.06 < seen[0] < 0.14  # first: the estimated level (true std 0.1)
    assert seen[1:] == [pytest.approx(5 / 255)] * 2  # then the authors' 5/255 for colour

    seen.clear()
    _, g = noisy_image(1, size=64, sigma=0.05)
    nn_denoiser(g, denoiser=spy, outer_iterations=2, inner_iterations=1, base=4, depth=2, device="cpu")
    assert seen[0] == seen[1] and 0.08 < seen[0] < 0.12  # gray: twice the wavelet-MAD estimate, every sweep


@pytest.mark.parametrize("identity_start", [False, True])
def test_reduces_error_on_smooth_image(identity_start):
    # Measured (seed 0, one CPU thread): noisy 20.00 dB, blur alone 33.84 dB; NN+blur from a random
    # start 28.97 dB (its networks are still far from y after 60 steps), from the identity 36.24 dB.
    x, y = noisy_image(3)
    out = nn_denoiser(y, denoiser=blur, outer_iterations=3, inner_iterations=20, first_sigma=0.1, base=8, depth=2,
                      identity_start=identity_start, device="cpu", seed=0)
    assert psnr(y, x) == pytest.approx(20.00, abs=0.01)
    assert psnr(out, x) > psnr(y, x) + 5.0


def test_default_denoiser_is_bm3d():
    # one tiny BM3D call: the first sweep of identity-start networks is BM3D on y at first_sigma
    from denoiselab.denoisers.classic import bm3d_denoiser

    x, y = noisy_image(1, size=32)
    out = nn_denoiser(y, outer_iterations=1, inner_iterations=1, first_sigma=0.1, base=4, depth=2,
                      identity_start=True, lr=1e-12, device="cpu")
    expected = bm3d_denoiser()(torch.from_numpy(y)[None, None], 0.1)[0, 0].numpy()
    np.testing.assert_allclose(out, expected, atol=5e-4)  # bm3d's run-to-run spread is ~4e-5
    assert psnr(out, x) > psnr(y, x) + 3.0  # measured: 20.06 dB -> 35.39 dB


@pytest.mark.parametrize(
    "bad, kwargs, match",
    [
        (np.zeros((40, 40, 3, 1), np.float32), {}, "shape"),
        (np.zeros((40, 40, 4), np.float32), {}, "C = 1 or 3"),
        (np.zeros((40, 40), np.int32), {}, "dtype"),
        (np.full((40, 40), np.inf, np.float32), {}, "NaN or infinite"),
        (np.zeros((7, 40), np.float32), {}, "too small"),
        (np.zeros((40, 40), np.float32), {"outer_iterations": 0}, "outer_iterations"),
        (np.zeros((40, 40), np.float32), {"inner_iterations": 0}, "inner_iterations"),
        (np.zeros((40, 40), np.float32), {"first_sigma": 25.0}, "first_sigma"),
        (np.zeros((40, 40), np.float32), {"latent_sigma": 0.0}, "latent_sigma"),
        (np.zeros((40, 40), np.float32), {"rho": -1.0}, "rho"),
        (np.zeros((40, 40), np.float32), {"denoiser": lambda t, s: t[..., :-1]}, "denoiser returned"),
    ],
)
def test_bad_input_raises(bad, kwargs, match):
    with pytest.raises(DenoiselabError, match=match):
        nn_denoiser(bad, **{**FAST, **kwargs})
