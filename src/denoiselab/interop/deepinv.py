"""Use any denoiselab denoiser as a deepinv denoiser (``deepinv.models.Denoiser``).

deepinv (Tachella et al., https://deepinv.github.io) calls denoisers as
``denoiser(x, sigma)``: ``x`` a (B, C, H, W) tensor, ``sigma`` the noise standard deviation as a
float or a per-batch tensor, both on the [0, 1] scale - the same convention as denoiselab's
protocol, so the adapter only normalises the forms of `sigma` and checks the input. When deepinv
is importable the adapter subclasses ``deepinv.models.Denoiser`` (so ``isinstance`` checks and
deepinv's PnP / RED / diffusion solvers accept it); otherwise it is a plain ``torch.nn.Module``
with the same call. deepinv is not a dependency of denoiselab (it needs torchvision, which has
no CPU build for the torch pinned here): install it yourself to use the two together.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..denoisers import check_image_batch, load_denoiser
from ..errors import DenoiselabError

try:  # deepinv is optional: subclass its base when it is there
    from deepinv.models import Denoiser as _Base
except ImportError:
    _Base = torch.nn.Module

__all__ = ["DeepinvDenoiser"]


class DeepinvDenoiser(_Base):
    """A denoiselab denoiser behind deepinv's ``Denoiser`` interface.

    Parameters
    ----------
    denoiser : str or callable
        A name of :func:`denoiselab.list_denoisers` (loaded with
        :func:`denoiselab.load_denoiser`) or any ``denoiser(y, sigma)`` callable of the
        denoiselab protocol (an ``nn.Module`` is registered as a submodule, so ``.to(device)``
        moves it).
    device : str or torch.device, optional
        Where a named network is loaded ("cpu", "cuda", "auto"). Classical methods compute on the
        CPU and return tensors on the input's device.

    Notes
    -----
    Gradients flow through the networks (e.g. for diffusion posterior sampling), not through
    the classical methods (BM3D, NLM, TV, wavelet compute in numpy). A gray image given to an
    RGB network, or the reverse, raises :class:`~denoiselab.errors.DenoiselabError`.

    Examples
    --------
    >>> den = DeepinvDenoiser("bfdncnn-color")
    >>> x = torch.full((2, 3, 32, 32), 0.5)
    >>> den(x, torch.tensor([0.05, 0.1])).shape
    torch.Size([2, 3, 32, 32])
    """

    def __init__(self, denoiser: str | Callable[[Tensor, float | Tensor], Tensor], *,
                 device: str | torch.device = "cpu"):
        super().__init__()
        if isinstance(denoiser, str):
            self.name = denoiser
            denoiser = load_denoiser(denoiser, device=device)
        elif callable(denoiser):
            self.name = getattr(denoiser, "name", type(denoiser).__name__)
        else:
            raise DenoiselabError(f"denoiser={denoiser!r} is neither a denoiser name nor a callable denoiser(y, sigma)")
        self.denoiser = denoiser  # an nn.Module becomes a registered submodule

    def forward(self, x: Tensor, sigma: float | Tensor, **kwargs) -> Tensor:  # noqa: ARG002 - deepinv passes extras
        """Denoise `x`.

        Parameters
        ----------
        x : Tensor, shape (B, C, H, W)
            Noisy images, float, values nominally in [0, 1]; C = 1 or 3 to match the denoiser.
        sigma : float or Tensor
            Noise std on the [0, 1] scale, >= 0: a number, a 0-d or one-element tensor, a (B,)
            tensor or any tensor with B elements (e.g. (B, 1, 1, 1)), or a (B, 1, H, W) map.
            Blind networks ignore it.
        **kwargs
            Accepted for deepinv's interface and ignored.

        Returns
        -------
        Tensor
            Same shape, dtype and device as `x`, not clamped.
        """
        check_image_batch(x)
        channels = getattr(self.denoiser, "channels", x.shape[1])
        if channels != x.shape[1]:
            raise DenoiselabError(f"{self.name} takes {channels}-channel images, x has {x.shape[1]}; "
                                  f"use a {x.shape[1]}-channel denoiser (bfdncnn-gray for gray, bfdncnn-color for RGB)")
        return self.denoiser(x, _protocol_sigma(sigma, x))


def _protocol_sigma(sigma: float | Tensor, x: Tensor) -> float | Tensor:
    """deepinv's forms of sigma -> denoiselab's: a float, a (B,) tensor or a (B, 1, H, W) map."""
    if not isinstance(sigma, Tensor):
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
            raise DenoiselabError(f"sigma={sigma!r} must be a float or a tensor (noise std on the [0, 1] scale)")
        sigma = torch.tensor(float(sigma))
    if bool((sigma < 0).any()):
        raise DenoiselabError("sigma must be >= 0 (the noise std on the [0, 1] scale)")
    if sigma.numel() == 1:
        return float(sigma)
    if sigma.numel() == x.shape[0]:
        return sigma.reshape(-1).to(x.device, x.dtype)
    if sigma.ndim == 4:
        return sigma.to(x.device, x.dtype)
    raise DenoiselabError(f"sigma of shape {tuple(sigma.shape)} does not fit a batch of {x.shape[0]} images; "
                          "give a float, one value per image, or a (B, 1, H, W) map")
