"""An independent numpy version of SVNR's schedule (γ table, interpolation, inverse) for the tests."""

from types import SimpleNamespace

import numpy as np
import pytest

T = 1000
_GAMMA = np.concatenate([[0.0], 5.0 * (1.0 - np.cumprod(1.0 - np.linspace(1e-4, 0.02, T)))])
_STEPS = np.arange(T + 1, dtype=np.float64)


@pytest.fixture(scope="session")
def ref():
    """``ref.gamma(t)``, ``ref.time(sigma2)`` and ``ref.table``, written from the notes with numpy only."""
    return SimpleNamespace(
        T=T,
        table=_GAMMA,
        gamma=lambda t: np.interp(np.asarray(t, dtype=np.float64), _STEPS, _GAMMA),
        time=lambda s2: np.interp(np.asarray(s2, dtype=np.float64), _GAMMA, _STEPS),
    )
