"""Telling a blind denoiser its level by noise injection (``denoiselab.denoisers.noise_level``)."""

from pathlib import Path

import torch

from denoiselab.denoisers import InjectedNoiseLevel, is_blind, load_denoiser, with_noise_level
from denoiselab.io import read_image, to_tensor
from denoiselab.metrics import psnr
from denoiselab.optim import solve_pnp_hqs
from denoiselab.physics import Blur

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sidd_18_1_clean.png"


def test_blind_networks_are_wrapped_and_level_aware_denoisers_are_not():
    net, tv = load_denoiser("bfdncnn-gray"), load_denoiser("tv")
    assert is_blind(net) and not is_blind(tv)
    assert isinstance(with_noise_level(net), InjectedNoiseLevel)
    assert with_noise_level(tv) is tv


def test_injected_noise_has_the_asked_std_per_pixel_and_is_reproducible():
    x = torch.zeros(2, 1, 128, 128)
    sigma = torch.cat([torch.full((1, 1, 128, 64), 0.05), torch.full((1, 1, 128, 64), 0.2)], dim=-1)
    out = InjectedNoiseLevel(lambda v, s: v, seed=3)(x, sigma)   # the identity shows what was added
    assert abs(float(out[..., :64].std()) - 0.05) < 0.002 and abs(float(out[..., 64:].std()) - 0.2) < 0.008
    again = InjectedNoiseLevel(lambda v, s: v, seed=3)
    assert torch.equal(again(x, sigma), out)                      # same seed, same call sequence
    assert not torch.equal(again(x, sigma), out)                  # the next call draws fresh noise


def test_the_wrapped_call_passes_sigma_on_and_keeps_shape_and_dtype():
    seen = []
    d = InjectedNoiseLevel(lambda v, s: seen.append(s) or v, seed=0)
    out = d(torch.zeros(1, 3, 8, 8, dtype=torch.float64), 0.1)
    assert seen == [0.1] and out.shape == (1, 3, 8, 8) and out.dtype == torch.float64


def test_injection_rescues_pnp_hqs_where_the_blind_prior_as_is_makes_deblurring_worse():
    # The bundled clean SIDD photo is smooth: the blind colour prior, given DPIR's amplified,
    # coloured noise after the first data steps, removes too little (measured on its 256² corner:
    # 34.92 dB blurred -> 31.47 dB as is, 36.65 dB with injection).
    x = to_tensor(read_image(EXAMPLE).array)[..., :96, :96]
    op, sigma = Blur.gaussian(1.6), 2**0.5 / 255
    y = op.A(x) + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    net = load_denoiser("bfdncnn-color")
    blind = float(psnr(solve_pnp_hqs(y, op, net, sigma=sigma).clamp(0, 1), x).mean())
    told = float(psnr(solve_pnp_hqs(y, op, with_noise_level(net), sigma=sigma).clamp(0, 1), x).mean())
    start = float(psnr(y, x).mean())
    assert blind < start < told, (blind, start, told)
