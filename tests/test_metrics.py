import numpy as np
import pytest
import torch

from denoiselab.errors import DenoiselabError
from denoiselab.metrics import psnr, ssim


def test_psnr_matches_the_definition_and_the_0_255_scale():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 16, 3)).astype(np.float64) / 255
    x_hat = np.clip(x + rng.normal(0, 5 / 255, x.shape), 0, 1)
    mse255 = np.mean((x_hat * 255 - x * 255) ** 2)
    assert psnr(x_hat, x)[0] == pytest.approx(10 * np.log10(255**2 / mse255))


def test_metrics_take_batches_of_tensors_and_clip():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert psnr(x + 2.0, x).shape == (2,)
    assert np.all(psnr(x, x) == np.inf)
    assert np.allclose(ssim(x, x), 1.0)
    assert psnr(x + 2.0, x)[0] == pytest.approx(psnr(torch.ones_like(x), x)[0])


def test_shape_mismatch_is_an_error():
    with pytest.raises(DenoiselabError):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
