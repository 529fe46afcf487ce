"""denoiselab.tiling: tiles cover every pixel, blending an identity gives the input back, no visible seams."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from denoiselab import denoise
from denoiselab.errors import DenoiselabError
from denoiselab.metrics import psnr
from denoiselab.tiling import count_tiles, denoise_tiled, tile_starts


@st.composite
def _layouts(draw):
    """(size, tile, overlap) with 1 <= size <= 300, 2 <= tile <= 160, 0 <= overlap < tile."""
    size = draw(st.integers(1, 300))
    tile = draw(st.integers(2, 160))
    overlap = draw(st.integers(0, tile - 1))
    return size, tile, overlap


@settings(max_examples=200, deadline=None)
@given(_layouts())
def test_property_tiles_cover_every_pixel_with_the_promised_overlap(layout):
    size, tile, overlap = layout
    starts = tile_starts(size, tile, overlap)
    length = min(tile, size)
    covered = np.zeros(size, dtype=int)
    for s in starts:
        covered[s:s + length] += 1
    assert (covered >= 1).all()
    assert starts[0] == 0 and starts[-1] + length == size
    steps = np.diff(starts)
    assert (steps > 0).all() and (steps <= tile - overlap).all()  # neighbours share >= overlap pixels


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 90), w=st.integers(1, 90), layout=_layouts(), batch=st.integers(1, 2),
    channels=st.sampled_from([1, 3]), seed=st.integers(0, 2**16),
)
def test_property_blending_an_identity_returns_the_input(h, w, layout, batch, channels, seed):
    _, tile, overlap = layout
    y = torch.rand(batch, channels, h, w, generator=torch.Generator().manual_seed(seed))
    calls = []

    def identity(t):
        calls.append(tuple(t.shape[-2:]))
        return t, torch.ones_like(t[:, :1])

    out, ones = denoise_tiled(identity, y, tile, overlap)
    torch.testing.assert_close(out, y, rtol=1e-6, atol=1e-6)  # float32 round-off of the weights only
    torch.testing.assert_close(ones, torch.ones(batch, 1, h, w), rtol=1e-6, atol=1e-6)  # every pixel weighted
    assert len(calls) == count_tiles(h, w, tile, overlap)
    assert all(th <= tile and tw <= tile for th, tw in calls)


def test_accumulates_into_a_channel_last_numpy_view():
    arr = np.random.default_rng(0).random((70, 45, 3), dtype=np.float32)
    y = torch.from_numpy(arr).permute(2, 0, 1)[None]
    out = np.zeros_like(arr)
    res = denoise_tiled(lambda t: 2 * t, y, 32, 8, out=torch.from_numpy(out).permute(2, 0, 1)[None])
    assert np.shares_memory(res.numpy(), out)
    np.testing.assert_allclose(out, 2 * arr, rtol=1e-6, atol=1e-6)


def test_one_tile_passes_the_output_through():
    y = torch.rand(1, 3, 20, 30)
    sentinel = torch.zeros(1, 3, 20, 30)
    assert denoise_tiled(lambda t: sentinel, y, 64, 8) is sentinel


@pytest.mark.parametrize("tile,overlap", [(32, 32), (32, -1), (0, 0), (32.0, 8), (32, True)])
def test_bad_tile_settings_raise_one_line(tile, overlap):
    with pytest.raises(DenoiselabError) as err:
        denoise_tiled(lambda t: t, torch.rand(1, 1, 8, 8), tile, overlap)
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def astronaut_pair():
    """A 512×512 RGB photo (scikit-image's bundled astronaut) and a noisy copy, σ = 25/255, seed 0."""
    from skimage.data import astronaut

    clean = astronaut().astype(np.float32) / 255
    noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape).astype(np.float32)
    return clean, noisy


def _psnr(x: np.ndarray, clean: np.ndarray) -> float:
    return float(psnr(x, clean)[0])  # clips x to [0, 1]


@pytest.mark.parametrize("method", ["bfdncnn-color", "nlm"])
def test_tiled_and_whole_image_differ_by_less_than_0_05_db(astronaut_pair, method):
    clean, noisy = astronaut_pair
    whole = denoise(noisy, method, sigma=25 / 255, device="cpu", max_memory_mb=1e6, return_details=True)
    tiled = denoise(noisy, method, sigma=25 / 255, device="cpu", tile=256, overlap=32, return_details=True)
    assert whole.settings["n_tiles"] == 1 and tiled.settings["n_tiles"] == 9  # 3 × 3 tiles
    gain = _psnr(whole.image, clean) - _psnr(noisy, clean)
    assert gain > 3  # the method does denoise
    assert abs(_psnr(tiled.image, clean) - _psnr(whole.image, clean)) < 0.05
