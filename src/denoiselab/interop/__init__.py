"""Adapters that let other libraries call denoiselab's denoisers (deepinv: :mod:`.deepinv`).

Nothing here is imported by ``import denoiselab``; each adapter imports its library lazily
and works without it.
"""

from .deepinv import DeepinvDenoiser

__all__ = ["DeepinvDenoiser"]
