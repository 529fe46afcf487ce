"""The weights we ship: load, are exactly scale-equivariant, and denoise as their cards say."""

import json

import pytest
import torch

from denoiselab.denoisers import load_denoiser
from denoiselab.denoisers.weights import WEIGHTS_DIR

SHIPPED = sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def test_weights_are_shipped():
    assert any("color" in n for n in SHIPPED) and any("gray" in n for n in SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_card_is_complete(name):
    """Our own networks say how they were trained; imported ones where they come from and their licence."""
    card = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    if "imported_from" in card:
        for key in ["source", "paper", "licence", "licence_text", "training_data", "noise", "architecture", "channels"]:
            assert card.get(key), key
        assert len(card["imported_from"]["sha256"]) == 64
        assert "Permission is hereby granted" in card["licence_text"], "the MIT notice travels with the weights"
    else:
        for key in ["training_data", "noise", "steps", "seed", "device", "wall_time_minutes", "test_psnr_db", "depth", "width"]:
            assert key in card, key
        assert card["test_psnr_db"], "the card must carry the test PSNR reached"


@pytest.mark.parametrize("name", SHIPPED)
def test_trained_weights_scale_equivariant(name, generator):
    d = load_denoiser(name, precision="fp32")  # exact equivariance is a float32 property
    c = d.channels
    y = torch.rand(1, c, 32, 32, generator=generator)
    with torch.no_grad():
        for a in (0.25, 4.0):
            assert torch.allclose(d(a * y, None), a * d(y, None), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", SHIPPED)
def test_trained_weights_denoise(name, generator):
    """On a smooth synthetic image at σ = 25/255 the prior gains at least 6 dB."""
    d = load_denoiser(name)
    t = torch.linspace(0.1, 0.9, 64)
    x = (0.5 * t[None, :] + 0.5 * t[:, None]).expand(1, d.channels, 64, 64)
    y = x + 25 / 255 * torch.randn(x.shape, generator=generator)
    with torch.no_grad():
        gain = 10 * torch.log10(((y - x) ** 2).mean() / ((d(y, None) - x) ** 2).mean())
    assert gain > 6
