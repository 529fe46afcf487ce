"""denoiselab: real-world single-image denoising (ScoreDVI) on our own trained MMSE denoisers.

The most used entry points, importable from the top level::

    import denoiselab
    x_hat = denoiselab.denoise(noisy)                       # numpy (H, W[, C]) in [0, 1], any method
    denoiser = denoiselab.load_denoiser("bfdncnn-color")   # denoiser(y, sigma) -> x_hat
    result = denoiselab.scoredvi(noisy)                     # .image, .variance, .record
    denoiselab.tune_cpu_allocator()                         # once, early: ~1.5x faster on the CPU (glibc)

Everything else lives in the subpackages: ``io``, ``noise``, ``metrics``, ``denoisers``,
``training``, ``scoredvi``, ``physics``, ``optim``, ``sampling``, ``svnr``, ``bench``, ``tiling``,
``interop``.
"""

import types

from . import scoredvi
from ._utils import tune_cpu_allocator
from .api import DenoiseResult, denoise
from .denoisers import describe_denoiser, list_denoisers, load_denoiser
from .errors import DenoiselabError
from .scoredvi import ScoreDVIResult

__version__ = "0.1.0"
__all__ = ["DenoiseResult", "DenoiselabError", "ScoreDVIResult", "denoise", "describe_denoiser", "list_denoisers",
           "load_denoiser", "scoredvi", "tune_cpu_allocator"]


class _CallableModule(types.ModuleType):
    """``denoiselab.scoredvi(image, ...)`` calls the function; ``denoiselab.scoredvi.core`` stays a module."""

    def __call__(self, *args, **kwargs):
        return self.scoredvi(*args, **kwargs)


scoredvi.__class__ = _CallableModule
