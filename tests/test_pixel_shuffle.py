"""Tests for denoiselab.pixel_shuffle: pd_down / pd_up (Zhou et al. 2020)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from denoiselab.errors import DenoiselabError
from denoiselab.pixel_shuffle import pd_down, pd_up


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
def test_pd_up_inverts_pd_down_on_multiples(stride):
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 3, 8 * stride, 5 * stride, generator=g)
    sub = pd_down(y, stride)
    assert sub.shape == (2 * stride * stride, 3, 8, 5)
    assert torch.equal(pd_up(sub, stride, 2), y)


def test_pd_down_order_is_image_then_row_offset_then_column_offset():
    y = torch.rand(2, 3, 12, 8, generator=torch.Generator().manual_seed(1))
    s = 4
    sub = pd_down(y, s)
    for b in range(2):
        for i in range(s):
            for j in range(s):
                assert torch.equal(sub[b * s * s + i * s + j], y[b, :, i::s, j::s])


def test_pd_down_crops_to_multiples_of_stride():
    y = torch.rand(1, 1, 10, 7, generator=torch.Generator().manual_seed(2))
    sub = pd_down(y, 4)
    assert sub.shape == (16, 1, 2, 1)
    assert torch.equal(pd_up(sub, 4, 1), y[:, :, :8, :4])


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 3),
    c=st.integers(1, 3),
    s=st.integers(1, 5),
    hs=st.integers(1, 6),
    ws=st.integers(1, 6),
    extra_h=st.integers(0, 4),
    extra_w=st.integers(0, 4),
)
def test_round_trip_property(b, c, s, hs, ws, extra_h, extra_w):
    h, w = hs * s + min(extra_h, s - 1), ws * s + min(extra_w, s - 1)
    y = torch.arange(b * c * h * w, dtype=torch.float32).reshape(b, c, h, w)
    sub = pd_down(y, s)
    assert sub.shape == (b * s * s, c, hs, ws)
    assert torch.equal(pd_up(sub, s, b), y[:, :, : hs * s, : ws * s])
    # every pixel of the cropped image appears exactly once
    assert torch.equal(sub.flatten().sort().values, y[:, :, : hs * s, : ws * s].flatten().sort().values)


def test_stride_one_is_identity():
    y = torch.rand(2, 1, 5, 6)
    assert torch.equal(pd_down(y, 1), y)
    assert torch.equal(pd_up(y, 1, 2), y)


@pytest.mark.parametrize("stride", [0, -1, 2.0, True])
def test_bad_stride_raises(stride):
    with pytest.raises(DenoiselabError, match="stride"):
        pd_down(torch.rand(1, 1, 8, 8), stride)


def test_bad_shapes_raise_one_line_errors():
    with pytest.raises(DenoiselabError, match="4-D") as err:
        pd_down(torch.rand(8, 8), 2)
    assert "\n" not in str(err.value)
    with pytest.raises(DenoiselabError, match="smaller than stride"):
        pd_down(torch.rand(1, 1, 3, 8), 4)
    with pytest.raises(DenoiselabError, match="batch"):
        pd_up(torch.rand(8, 1, 2, 2), 2, 3)


def test_pd_refine_identity_and_batch_independence():
    from denoiselab.pixel_shuffle import pd_apply, pd_refine

    y = torch.rand(2, 3, 9, 10, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(pd_refine(lambda v, s: v, y, 2), y)
    blur = lambda v, s: torch.nn.functional.avg_pool2d(v, 3, stride=1, padding=1, count_include_pad=False)  # noqa: E731
    both = pd_refine(blur, y, 2)
    torch.testing.assert_close(both[1:], pd_refine(blur, y[1:], 2))  # no image sees another
    first = pd_apply(lambda sub: blur(sub, 0), y, 2)
    torch.testing.assert_close(pd_refine(blur, y, 2, refine=False), first)
    # the refinement: mean over the 4 copies of `first` with one noisy sub-grid put back, denoised
    copies = []
    for i in range(2):
        for j in range(2):
            m = first.clone()
            m[..., i::2, j::2] = y[..., i::2, j::2]
            copies.append(blur(m, 0))
    torch.testing.assert_close(both, torch.stack(copies).mean(0))
    torch.testing.assert_close(pd_refine(blur, y, 1), blur(y, 0))
