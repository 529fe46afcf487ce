"""NN+denoiser (Zheng et al., ICLR 2021) in its NN+BM3D form, for one image.

Zheng et al. map the noisy image y with an encoder into a latent image in which the noise is
additive white Gaussian (AWGN), so that a Gaussian denoiser applies there; a decoder maps the
latent back to y, and the pair (a variational auto-encoder trained on y alone) stands for the
likelihood of the real noise [1]_. ScoreDVI compares with the best version, NN+BM3D, re-run from
the authors' code without ground-truth early stopping [2]_.

The algorithm (as in the authors' published scripts)
----------------------------------------------------
Three variables: the latent clean image ``x`` (their ``i0``), its denoised copy ``t``
(``i0_til``) and a scaled dual variable ``u`` (``Y``); ``t = y``, ``u = 0`` at the start. Each
outer iteration is one ADMM sweep:

1. ``inner_iterations`` Adam steps on the encoder E and decoder D with the loss
   ``‖D(E(y) + s·n) - y‖² / (2 s²) + ‖E(y) - x‖² / (2 σ_l²)`` (per-pixel means, n ~ N(0, I),
   s = 1/255: reconstruction through a noisy latent, and the latent pulled towards x), each step
   followed by the closed-form x-update ``x = (E(y)/σ_l² + ρ (t - u)) / (1/σ_l² + ρ)``;
2. ``t = denoiser(x + u, σ_k)`` (the plug-and-play prior step; BM3D by default);
3. ``u ← u + η (x - t)``.

The output is the last ``t``. Settings of the authors' scripts: Adam with learning rate 1e-2,
500 steps per sweep, ρ = 1 and s = 1 on the 0-255 scale, η = 0.5; both networks are the
13.4 M-parameter UNet of DIP (64 base channels, 4 down-steps, batch normalisation). Colour
(PolyU, CC): σ_l = 3/255, 30 sweeps, σ_1 set by hand per data set (5/255 PolyU, 15/255 CC),
σ_k = 5/255 after the first sweep. Gray (FMDD): σ_l = 5/255, 50 sweeps, σ_k = twice the
wavelet-MAD noise estimate of y at every sweep.

Where this implementation deviates, and why
-------------------------------------------
- σ_1 for colour images is estimated from the image (the estimator of our BM3D baseline,
  :func:`denoiselab.baselines.bm3d_est.estimate_real_sigma`), not set by hand per data set, so
  the method is blind like every other method of the table.
- Networks: ScoreDVI's X-net UNet (:class:`denoiselab.scoredvi.nets.UNet`, the same layout with
  per-image normalisation in place of batch normalisation, which is the same thing for a batch
  of one image).
- The authors' scripts stop as soon as the PSNR against the ground truth falls (an oracle);
  here, as in ScoreDVI's re-run, all ``outer_iterations`` sweeps run.
- The CPU benchmark (``nn-bm3d`` in :mod:`denoiselab.bench.methods`) runs a much smaller budget
  (narrower UNets and fewer steps, stated there); the defaults here are the authors'.

References
----------
.. [1] D. Zheng, S. H. Tan, X. Zhang, Z. Shi, K. Ma, C. Bao, "An unsupervised deep learning
   approach for real-world image denoising", ICLR 2021. https://openreview.net/forum?id=tIjRAiFmU3y
.. [2] J. Cheng, T. Liu, S. Tan, "Score priors guided deep variational inference for
   unsupervised real-world single image denoising", ICCV 2023, arXiv:2308.04682, Sec. 4.2.
.. [3] K. Dabov, A. Foi, V. Katkovnik, K. Egiazarian, "Image denoising by sparse 3-D
   transform-domain collaborative filtering", IEEE TIP 16(8), 2007. doi:10.1109/TIP.2007.901238
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from .._utils import make_generator, resolve_device
from ..errors import DenoiselabError
from ..noise.estimate import estimate_sigma
from ..scoredvi.nets import UNet
from ._common import check_float, check_int, check_noisy, from_batch, to_batch
from .bm3d_est import estimate_real_sigma

__all__ = ["nn_denoiser"]

_LATENT_SAMPLE_STD = 1.0 / 255  # s: std of the latent sample and of the decoder's likelihood (1 on 0-255)
_SIGMA_FLOOR = 1.0 / 255  # a denoiser level below this would not denoise at all


class _Residual(nn.Module):
    """``x + net(x)`` with `net`'s last layer zeroed: starts as the identity."""

    def __init__(self, net: UNet):
        super().__init__()
        self.net = net
        with torch.no_grad():
            net.head.weight.zero_()
            net.head.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


def _network(channels: int, base: int, depth: int, g: torch.Generator, identity_start: bool) -> nn.Module:
    net = UNet(1, channels, channels, base, depth, g)
    return _Residual(net) if identity_start else net


def nn_denoiser(
    noisy: np.ndarray,
    *,
    denoiser: Callable[[Tensor, float | Tensor], Tensor] | None = None,
    outer_iterations: int | None = None,
    inner_iterations: int = 500,
    latent_sigma: float | None = None,
    first_sigma: float | None = None,
    later_sigma: float | None = None,
    rho: float = 1.0,
    eta: float = 0.5,
    lr: float = 1e-2,
    base: int = 64,
    depth: int = 4,
    identity_start: bool = False,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
) -> np.ndarray:
    """Denoise one image with NN+denoiser (NN+BM3D by default), following Zheng et al. [1]_.

    ADMM over a variational auto-encoder trained on the noisy image itself (the likelihood of
    the real noise) and a Gaussian `denoiser` (the prior); the module docstring gives the
    iteration and the authors' settings, which are the defaults here.

    Parameters
    ----------
    noisy : ndarray, shape (H, W) or (H, W, C), C in {1, 3}
        Noisy image, float, values nominally in [0, 1] (not clipped); at least 8×8 pixels.
    denoiser : callable, optional
        Gaussian denoiser ``denoiser(y, sigma) -> x_hat`` on (1, C, H, W) tensors with `sigma`
        the noise std on [0, 1] (denoiselab's protocol). Default: BM3D / CBM3D
        (:func:`denoiselab.denoisers.classic.bm3d_denoiser`), i.e. NN+BM3D.
    outer_iterations : int, optional
        ADMM sweeps, i.e. denoiser calls (>= 1). Default: 30 for colour, 50 for gray images.
    inner_iterations : int, optional
        Adam steps on the two networks per sweep (>= 1; default 500).
    latent_sigma : float, optional
        σ_l, std of the AWGN assumed in the latent space, on [0, 1] (> 0). Default: 3/255 for
        colour, 5/255 for gray images.
    first_sigma : float, optional
        Noise level given to `denoiser` at the first sweep, on [0, 1] (> 0). Default: colour,
        the estimate of :func:`~denoiselab.baselines.bm3d_est.estimate_real_sigma` (PD-4
        noise-level function); gray, twice the wavelet-MAD estimate; floored at 1/255.
    later_sigma : float, optional
        Noise level given to `denoiser` from the second sweep on, on [0, 1] (> 0). Default:
        5/255 for colour, `first_sigma` for gray images.
    rho : float, optional
        ADMM penalty on the 0-255 scale of the authors' code (> 0; default 1). With σ_l = 3/255
        the x-update weighs the encoder's latent by 1/(1 + ρ·9) = 0.1.
    eta : float, optional
        Step of the dual update (> 0; default 0.5).
    lr : float, optional
        Adam learning rate (> 0; default 1e-2).
    base, depth : int, optional
        Channels of the UNets' first level (>= 1; default 64) and number of 2×2 down-steps
        (>= 1; default 4): the 13.4 M-parameter UNet of the paper.
    identity_start : bool, optional
        False (default, the paper): plain UNets from a random start, which need many steps
        before the encoder's latent resembles y. True: each network is ``input + UNet(input)``
        with the UNet's last layer at zero, so both start as the identity and a short CPU budget
        is not spent learning it (the first sweep is then the plain denoiser on y).
    seed : int, optional
        Seeds the network weights and the latent samples: the same seed gives the same output on
        the CPU for a deterministic `denoiser` (not bit-exactly on CUDA).
    device : {"auto", "cpu", "cuda"}, optional
        Where the networks run; ``"auto"`` takes CUDA when available. BM3D runs on the CPU.
    progress : bool, optional
        Show a tqdm bar over the sweeps.

    Returns
    -------
    denoised : ndarray, float32, same shape as `noisy`
        The last denoiser output ``t``, not clipped.

    Raises
    ------
    DenoiselabError
        If `noisy` is not a finite float (H, W) or (H, W, C) image with C in {1, 3}, values in
        about [0, 1] and sides of at least 8 pixels, if a setting is out of range, or if
        `denoiser` returns a wrong shape.

    Notes
    -----
    Cost: ``outer_iterations`` denoiser calls and ``outer_iterations * inner_iterations`` Adam
    steps of two UNets on the whole image. With the defaults (15 000 steps of two 13.4 M
    UNets) a 256×256 colour image takes ScoreDVI's GPU about 900 s (its Table 5); on a CPU it
    takes many hours, so CPU runs need a far smaller budget (see ``nn-bm3d`` in
    :mod:`denoiselab.bench.methods`).

    References
    ----------
    .. [1] D. Zheng, S. H. Tan, X. Zhang, Z. Shi, K. Ma, C. Bao, "An unsupervised deep learning
       approach for real-world image denoising", ICLR 2021.
       https://openreview.net/forum?id=tIjRAiFmU3y

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = (0.5 + 0.1 * rng.standard_normal((16, 16))).astype(np.float32)
    >>> blur = lambda t, s: torch.nn.functional.avg_pool2d(t, 3, 1, 1, count_include_pad=False)
    >>> x_hat = nn_denoiser(y, denoiser=blur, outer_iterations=2, inner_iterations=2,
    ...                     first_sigma=0.1, base=4, depth=1, device="cpu")
    >>> x_hat.shape, x_hat.dtype
    ((16, 16), dtype('float32'))
    """
    from tqdm.auto import tqdm

    img = check_noisy(noisy, what="nn_denoiser")
    gray = img.shape[2] == 1
    if outer_iterations is None:
        outer_iterations = 50 if gray else 30
    outer_iterations = check_int("outer_iterations", outer_iterations, 1, "the authors use 30 (colour) and 50 (gray)")
    inner_iterations = check_int("inner_iterations", inner_iterations, 1, "the authors use 500")
    base, depth = check_int("base", base, 1), check_int("depth", depth, 1)
    rho = check_float("rho", rho, 0.0, math.inf, lo_open=True, hi_open=True)
    eta = check_float("eta", eta, 0.0, math.inf, lo_open=True, hi_open=True)
    lr = check_float("lr", lr, 0.0, math.inf, lo_open=True, hi_open=True)
    for name, value in (("latent_sigma", latent_sigma), ("first_sigma", first_sigma), ("later_sigma", later_sigma)):
        if value is not None:
            check_float(name, value, 0.0, 1.0, lo_open=True, hi_open=True)
    if latent_sigma is None:
        latent_sigma = (5.0 if gray else 3.0) / 255
    if first_sigma is None:
        first_sigma = 2 * float(estimate_sigma(to_batch(img), method="mad")[0]) if gray else estimate_real_sigma(img, "pd")
    first_sigma = max(float(first_sigma), _SIGMA_FLOOR)
    if later_sigma is None:
        later_sigma = first_sigma if gray else 5.0 / 255
    if denoiser is None:
        from ..denoisers.classic import bm3d_denoiser

        denoiser = bm3d_denoiser()
    dev = resolve_device(device)

    y = to_batch(img, dev)
    c = y.shape[1]
    g = make_generator(seed)  # CPU: the same weights on every device
    encoder = _network(c, base, depth, g, identity_start).to(dev)  # E: y -> latent mean, where the noise is AWGN
    decoder = _network(c, base, depth, g, identity_start).to(dev)  # D: latent -> y, the learned noise model
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=lr)
    g_run = g if dev.type == "cpu" else make_generator(seed, dev)

    # x-update weights: x = w·E(y) + (1 - w)(t - u), w = (1/σ_l²) / (1/σ_l² + ρ) with both on 0-255
    w_latent = 1.0 / (1.0 + rho * (latent_sigma * 255) ** 2)
    x, t, u = y.clone(), y.clone(), torch.zeros_like(y)
    for k in tqdm(range(outer_iterations), desc="NN+denoiser", disable=not progress, leave=False):
        for _ in range(inner_iterations):
            mean = encoder(y)
            z = mean + _LATENT_SAMPLE_STD * torch.randn(mean.shape, generator=g_run, device=dev)
            rec = (decoder(z) - y).square().mean() / (2 * _LATENT_SAMPLE_STD**2)  # -log p(y | z)
            prior = (mean - x).square().mean() / (2 * latent_sigma**2)  # latent = x + AWGN(σ_l)
            opt.zero_grad(set_to_none=True)
            (rec + prior).backward()
            opt.step()
            with torch.no_grad():
                x = w_latent * mean.detach() + (1 - w_latent) * (t - u)
        with torch.no_grad():
            t = denoiser(x + u, first_sigma if k == 0 else later_sigma)
            if not isinstance(t, Tensor) or t.shape != y.shape:
                got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise DenoiselabError(f"denoiser returned {got}; expected a tensor of shape {tuple(y.shape)}")
            t = t.to(dev, torch.float32)
            u = u + eta * (x - t)
    return from_batch(t, noisy)
