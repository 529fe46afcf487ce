"""Property tests of denoiselab.io: random stacks, float TIFFs and tensor conversions round-trip exactly."""

import tempfile
from pathlib import Path

import numpy as np
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from denoiselab.io import from_tensor, read_image, to_tensor, write_image

_STACKS = st.tuples(st.integers(2, 4), st.integers(1, 7), st.integers(1, 7), st.sampled_from([1, 3]))


@settings(max_examples=25, deadline=None)
@given(samples=st.one_of(_STACKS.flatmap(lambda s: hnp.arrays(np.uint8, s)),
                         _STACKS.flatmap(lambda s: hnp.arrays(np.uint16, s))))
def test_property_integer_stacks_round_trip_exactly(samples):
    bit_depth, top = (8, 255) if samples.dtype == np.uint8 else (16, 65535)
    with tempfile.TemporaryDirectory() as folder:
        path = write_image(Path(folder) / "stack.tif", samples.astype(np.float32) / top, bit_depth=bit_depth)
        with tifffile.TiffFile(path) as tif:
            pages = len(tif.pages)
        image = read_image(path)
    assert pages == samples.shape[0] and image.is_stack and image.bit_depth == bit_depth
    assert image.array.shape == samples.shape and image.array.dtype == np.float32
    np.testing.assert_array_equal(np.rint(image.array.astype(np.float64) * top).astype(samples.dtype), samples)


@settings(max_examples=25, deadline=None)
@given(data=st.tuples(st.integers(1, 7), st.integers(1, 7), st.sampled_from([1, 3])).flatmap(
    lambda s: hnp.arrays(np.float32, s, elements=st.floats(-4, 4, width=32))))
def test_property_float_tiffs_round_trip_bit_for_bit(data):
    with tempfile.TemporaryDirectory() as folder:
        image = read_image(write_image(Path(folder) / "f.tif", data, bit_depth=32))
    assert image.bit_depth == 32 and image.array.shape == data.shape
    np.testing.assert_array_equal(image.array, data)


@settings(max_examples=40, deadline=None)
@given(data=st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.sampled_from([1, 3])).flatmap(
    lambda s: hnp.arrays(np.float32, s, elements=st.floats(0, 1, width=32))))
def test_property_to_tensor_and_from_tensor_are_inverse(data):
    t = to_tensor(data)
    assert tuple(t.shape) == (data.shape[0], data.shape[3], data.shape[1], data.shape[2])
    back = from_tensor(t)
    np.testing.assert_array_equal(back, data[0] if data.shape[0] == 1 else data)
