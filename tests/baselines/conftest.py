"""Shared check of the baselines' per-iteration ``callback``."""

from __future__ import annotations

import numpy as np
import pytest


def _check_callback(method, noisy: np.ndarray, iterations: int, **settings) -> None:
    """`method` with a callback that previews the output at every iteration ends exactly as without
    one; the callback sees t = 1..iterations with growing seconds, and the preview at t is the output
    of a run of t iterations."""
    seen = []
    out = method(noisy, iterations=iterations, callback=lambda info: seen.append(
        (info["t"], info["seconds"], info["estimate"]())), **settings)
    assert [t for t, _, _ in seen] == list(range(1, iterations + 1))
    seconds = [s for _, s, _ in seen]
    assert seconds[0] >= 0 and seconds == sorted(seconds)
    np.testing.assert_array_equal(out, method(noisy, iterations=iterations, **settings))
    np.testing.assert_array_equal(seen[-1][2], out)
    preview = seen[iterations // 2 - 1][2]
    assert preview.shape == out.shape and preview.dtype == out.dtype
    np.testing.assert_array_equal(preview, method(noisy, iterations=iterations // 2, **settings))


@pytest.fixture
def check_callback():
    return _check_callback
