"""denoiselab.interop.deepinv: deepinv's Denoiser contract, checked without deepinv installed."""

import re

import pytest
import torch

from denoiselab.denoisers import load_denoiser
from denoiselab.errors import DenoiselabError
from denoiselab.interop import DeepinvDenoiser


@pytest.fixture
def noisy(generator):
    return (0.5 + 0.1 * torch.randn(2, 3, 24, 24, generator=generator)).float()


def test_is_a_module_with_deepinvs_call_and_matches_the_wrapped_network(noisy):
    den = DeepinvDenoiser("bfdncnn-color")
    assert isinstance(den, torch.nn.Module) and "denoiser" in dict(den.named_children())
    out = den(noisy, 0.1)
    assert out.shape == noisy.shape and out.dtype == noisy.dtype and out.device == noisy.device
    torch.testing.assert_close(out, load_denoiser("bfdncnn-color")(noisy, 0.1))


@pytest.mark.parametrize("form", ["float", "0-d", "(1,)", "(B,)", "(B,1,1,1)"])
def test_every_form_of_sigma_means_the_same(noisy, form):
    den = DeepinvDenoiser("tv")
    reference = torch.cat([den(noisy[i:i + 1], 0.08) for i in range(2)])
    sigma = {"float": 0.08, "0-d": torch.tensor(0.08), "(1,)": torch.tensor([0.08]),
             "(B,)": torch.full((2,), 0.08), "(B,1,1,1)": torch.full((2, 1, 1, 1), 0.08)}[form]
    torch.testing.assert_close(den(noisy, sigma), reference)


def test_per_batch_sigma_equals_one_image_calls(noisy):
    den = DeepinvDenoiser("tv")
    both = den(noisy, torch.tensor([0.02, 0.2]))
    torch.testing.assert_close(both[0:1], den(noisy[0:1], 0.02))
    torch.testing.assert_close(both[1:2], den(noisy[1:2], 0.2))
    assert not torch.allclose(both[0], both[1])


def test_gradient_flows_through_a_network(noisy):
    x = noisy.clone().requires_grad_(True)
    DeepinvDenoiser("bfdncnn-color")(x, 0.1).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_wraps_any_protocol_callable_and_ignores_extra_keywords(noisy):
    den = DeepinvDenoiser(lambda y, sigma: y * 0.5)
    torch.testing.assert_close(den(noisy, 0.1, physics=None), noisy * 0.5)


def test_subclasses_deepinv_denoiser_when_deepinv_is_installed():
    deepinv = pytest.importorskip("deepinv")
    assert isinstance(DeepinvDenoiser("tv"), deepinv.models.Denoiser)


@pytest.mark.parametrize(
    "make,x,sigma,match",
    [
        (lambda: DeepinvDenoiser(42), None, None, "neither a denoiser name"),
        (lambda: DeepinvDenoiser("magic"), None, None, "unknown denoiser"),
        (lambda: DeepinvDenoiser("bfdncnn-color"), torch.rand(1, 1, 8, 8), 0.1, "3-channel"),
        (lambda: DeepinvDenoiser("tv"), torch.rand(3, 8, 8), 0.1, "(B, C, H, W)"),
        (lambda: DeepinvDenoiser("tv"), torch.rand(2, 3, 8, 8), -0.1, ">= 0"),
        (lambda: DeepinvDenoiser("tv"), torch.rand(2, 3, 8, 8), torch.ones(3), "does not fit"),
        (lambda: DeepinvDenoiser("tv"), torch.rand(2, 3, 8, 8), "0.1", "must be a float"),
    ],
)
def test_bad_use_raises_one_line(make, x, sigma, match):
    with pytest.raises(DenoiselabError, match=re.escape(match)) as err:
        make()(x, sigma)
    assert "\n" not in str(err.value)
