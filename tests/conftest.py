"""Shared fixtures: seeded generators and small synthetic images (no downloads)."""

from pathlib import Path

import pytest
import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def make_tiny_image(channels: int = 3, size: int = 32) -> torch.Tensor:
    """A (1, C, size, size) mix of ramps, an edge and a disc in [0.1, 0.9]."""
    t = torch.linspace(0, 1, size)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    planes = [0.2 + 0.6 * xx, 0.2 + 0.3 * (yy > 0.5) + 0.3 * yy, 0.1 + 0.8 * (((xx - 0.5) ** 2 + (yy - 0.5) ** 2) < 0.1)]
    return torch.stack(planes[:channels] if channels == 3 else [sum(planes) / 3])[None].float()


@pytest.fixture
def tiny_image() -> torch.Tensor:
    return make_tiny_image(3)


@pytest.fixture
def tiny_gray() -> torch.Tensor:
    return make_tiny_image(1)


def needs_data(*parts: str):
    """Skip a test when the shared benchmark data is not beside the checkout."""
    return pytest.mark.skipif(not DATA.joinpath(*parts).exists(), reason=f"{DATA.joinpath(*parts)} not present")
