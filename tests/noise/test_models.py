import pytest
import torch

from denoiselab.errors import DenoiselabError
from denoiselab.noise import add_correlated_noise, add_gaussian_noise, add_poisson_gaussian_noise, poisson_gaussian_sigma


def test_gaussian_same_seed_same_noise_and_std():
    x = torch.full((2, 3, 64, 64), 0.5)
    a = add_gaussian_noise(x, 0.1, generator=torch.Generator().manual_seed(3))
    b = add_gaussian_noise(x, 0.1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert abs(float((a - x).std()) - 0.1) < 0.005


def test_gaussian_per_image_and_per_pixel_sigma():
    x = torch.zeros(2, 1, 64, 64)
    y = add_gaussian_noise(x, torch.tensor([0.05, 0.2]), generator=torch.Generator().manual_seed(0))
    assert abs(float(y[0].std()) - 0.05) < 0.005 and abs(float(y[1].std()) - 0.2) < 0.02
    sigma_map = torch.zeros(1, 1, 64, 64)
    sigma_map[..., 32:] = 0.3
    z = add_gaussian_noise(x[:1], sigma_map, generator=torch.Generator().manual_seed(0))
    assert torch.count_nonzero(z[..., :32]) == 0 and abs(float(z[..., 32:].std()) - 0.3) < 0.02


@pytest.mark.parametrize("exact", [False, True])
def test_poisson_gaussian_variance_follows_the_model(exact):
    x = torch.tensor([0.1, 0.5, 0.9]).view(3, 1, 1, 1).expand(3, 1, 128, 128)
    y = add_poisson_gaussian_noise(x, 0.02, 0.1, exact=exact, generator=torch.Generator().manual_seed(0))
    var = (y - x).var(dim=(1, 2, 3))
    expected = 0.02**2 + 0.1**2 * torch.tensor([0.1, 0.5, 0.9])
    assert torch.allclose(var, expected, rtol=0.06)
    assert torch.allclose(poisson_gaussian_sigma(x, 0.02, 0.1)[:, 0, 0, 0] ** 2, expected)


def test_correlated_noise_has_the_marginal_std_and_is_correlated():
    x = torch.zeros(1, 3, 96, 96)
    y = add_correlated_noise(x, 0.1, correlation_px=1.0, generator=torch.Generator().manual_seed(0))
    assert abs(float(y.std()) - 0.1) < 0.01
    a, b = y[..., :, :-1].flatten(), y[..., :, 1:].flatten()
    assert float(torch.corrcoef(torch.stack([a, b]))[0, 1]) > 0.5
    with pytest.raises(DenoiselabError):
        add_correlated_noise(x, 0.1, correlation_px=0)


def test_negative_sigma_rejected():
    with pytest.raises(DenoiselabError):
        add_gaussian_noise(torch.zeros(1, 1, 4, 4), -0.1)
    with pytest.raises(DenoiselabError):
        poisson_gaussian_sigma(torch.zeros(1, 1, 4, 4), -0.1, 0.1)
