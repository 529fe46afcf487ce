import numpy as np
import pytest
import torch

from denoiselab.errors import DenoiselabError
from denoiselab.svnr import (add_svnr_noise, draw_noise_params, estimate_variance, linear_to_srgb, make_noisy_batch,
                             srgb_to_linear, svnr_variance, to_linear, to_srgb)


def test_srgb_transfer_functions_are_the_standard_ones_and_invert():
    x = torch.tensor([0.0, 0.02, 0.04045, 0.2, 0.5, 0.9, 1.0], dtype=torch.float64)
    expected = np.where(x.numpy() <= 0.04045, x.numpy() / 12.92, ((x.numpy() + 0.055) / 1.055) ** 2.4)
    np.testing.assert_allclose(srgb_to_linear(x).numpy(), expected, rtol=1e-12)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-12)
    assert float(linear_to_srgb(torch.tensor(-0.5))) == 0.0  # negative sampler output: clipped, not NaN


def test_white_level_scales_linear_values_and_comes_back():
    x = torch.rand(3, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    w = torch.tensor([0.1, 0.5, 1.0])
    lin = to_linear(x, w)
    assert torch.allclose(lin * w.view(-1, 1, 1, 1), srgb_to_linear(x), atol=1e-6)
    assert float(lin[0].max()) > 5  # w = 0.1 brightens up to 10
    assert torch.allclose(to_srgb(lin, w), x, atol=1e-5)


def test_noise_has_the_stated_per_pixel_variance():
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([0.0, 0.5, 2.0]).view(1, 3, 1, 1).expand(20000, 3, 1, 1).contiguous()
    y, s2 = add_svnr_noise(x, 0.05, 0.1, generator=g)
    expected = 0.05**2 + 0.1**2 * torch.tensor([0.0, 0.5, 2.0])
    assert torch.allclose(s2[0].flatten(), expected, rtol=1e-5)
    # x = 0 is clipped from below, so only the brighter channels keep the Gaussian variance
    assert torch.allclose((y - x)[:, 1:].var(0).flatten(), expected[1:], rtol=0.05)
    assert float(y.min()) == 0.0 and float(y[:, 0].mean()) > 0
    assert float(y.max()) > 2.0  # no clipping from above


def test_sigma_floor_and_per_image_parameters():
    x = torch.zeros(2, 1, 2, 2)
    s2 = svnr_variance(x, torch.tensor([0.0, 0.1]), torch.tensor([0.0, 0.0]))
    assert s2[0].flatten().tolist() == pytest.approx([1e-6] * 4) and s2[1].flatten().tolist() == pytest.approx([0.01] * 4)


def test_test_time_estimate_clips_y_to_the_white_range():
    y = torch.tensor([-0.2, 0.3, 1.5, 4.0]).view(1, 1, 1, 4)
    est = estimate_variance(y, 0.1, 0.2)
    assert est.flatten().tolist() == pytest.approx([0.01, 0.01 + 0.04 * 0.3, 0.05, 0.05])
    est_w = estimate_variance(y, 0.1, 0.2, white_level=0.5)  # clean values reach 1/w = 2
    assert est_w.flatten().tolist() == pytest.approx([0.01, 0.022, 0.07, 0.09])


def test_training_draws_stay_in_their_ranges_and_are_seeded():
    r, s, w = draw_noise_params(1000, generator=torch.Generator().manual_seed(0))
    assert 1e-3 <= float(r.min()) and float(r.max()) <= 0.2 and float(r.max()) > 0.19
    assert 1e-4 <= float(s.min()) and float(s.max()) <= 0.05 and 0.1 <= float(w.min()) and float(w.max()) <= 1
    r2, _, _ = draw_noise_params(3, read_range=(0.3, 0.5), generator=torch.Generator().manual_seed(0))
    assert ((r2 >= 0.3) & (r2 <= 0.5)).all()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    a = make_noisy_batch(x, generator=torch.Generator().manual_seed(5))
    b = make_noisy_batch(x, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_estimated_training_variance_is_the_test_time_one_from_the_same_draw():
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    x0, y, true = make_noisy_batch(x, generator=torch.Generator().manual_seed(5))
    x0e, ye, est = make_noisy_batch(x, variance="estimated", generator=torch.Generator().manual_seed(5))
    assert torch.equal(x0, x0e) and torch.equal(y, ye)  # the same draw, only the variance differs
    r, s, w = draw_noise_params(3, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(est, estimate_variance(y, r, s, white_level=w))
    assert torch.allclose(true, svnr_variance(x0, r, s))
    assert not torch.allclose(est, true)  # the estimate carries y's noise, the truth x0's content


@pytest.mark.parametrize("call, message", [
    (lambda: make_noisy_batch(torch.zeros(1, 1, 2, 2), variance="clean"), "variance='clean' must be one of"),
    (lambda: add_svnr_noise(torch.zeros(1, 1, 2, 2), -0.1, 0.0), "must be >= 0"),
    (lambda: add_svnr_noise(torch.zeros(1, 1, 2, 2), torch.tensor([0.1, 0.2]), 0.0), "one value per image"),
    (lambda: add_svnr_noise(torch.zeros(2, 2), 0.1, 0.1), r"\(B, C, H, W\)"),
    (lambda: to_linear(torch.zeros(1, 1, 2, 2), 0.0), "white_level must be > 0"),
    (lambda: draw_noise_params(2, read_range=(0.2, 0.1)), "read_range"),
    (lambda: draw_noise_params(2, white_range=(0.0, 1.0)), "white_range"),
    (lambda: draw_noise_params(0), "batch"),
])
def test_bad_noise_arguments(call, message):
    with pytest.raises(DenoiselabError, match=message):
        call()
