"""Deep image prior (DIP) for denoising one image, on ScoreDVI's X-net UNet.

DIP (Ulyanov, Vedaldi & Lempitsky) fits a randomly initialised CNN f_θ that maps a fixed random
code z to the noisy image y, by Adam on ||f_θ(z + ε_t) − y||² (ε_t a fresh small perturbation of z
every iteration). The network reproduces image structure long before it reproduces the noise, so
stopping early (or averaging the iterates) gives the denoised image.

As in the ScoreDVI paper (§4.2, "we choose the same Unet architecture as our X-net"), the network
is ScoreDVI's X-net (:class:`denoiselab.scoredvi.nets.UNet`, 64 base channels and 4 down-steps in
its ``paper`` preset, 13.4 M parameters) instead of DIP's own encoder-decoder ("skip" network).
ScoreDVI reports DIP at its best iteration chosen with the ground truth ("due to its problem of
overfitting, we choose the optimal denoising results with the reference to GT images"):
:func:`dip_oracle` (or :func:`dip` with ``reference=``) does that; without a reference,
:func:`dip` returns the output after a fixed number of iterations.

Settings from DIP's paper and code (denoising notebook): z ~ U(0, 0.1) with 32 channels,
perturbation std 1/30, Adam with lr 0.01, MSE to y, 1800 iterations for denoising, sigmoid
output, and the exponential moving average (weight 0.99) of the outputs as the result.

Deviations (all deliberate, see the docstring of :func:`dip`): the network (ScoreDVI's X-net, as
ScoreDVI did); no "backtracking" (DIP's notebook reloads the previous weights when the fit to y
suddenly drops by 5 dB; not part of the paper); sizes not divisible by 2^depth are padded inside
the UNet (replicate) and cropped, where DIP's code crops the image to a multiple of 32.

References
----------
D. Ulyanov, A. Vedaldi, V. Lempitsky, "Deep image prior", CVPR 2018, doi:10.1109/CVPR.2018.00984;
and IJCV 128:1867-1888, 2020, doi:10.1007/s11263-020-01303-4.
J. Cheng, T. Liu, S. Tan, "Score priors guided deep variational inference for unsupervised
real-world single image denoising", ICCV 2023, arXiv:2308.04682 (§4.2: DIP on the X-net, oracle).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .._utils import make_generator, resolve_device
from ..errors import DenoiselabError
from ..scoredvi.nets import NetConfig, UNet
from ._common import IterationHook, check_float, check_int, check_noisy, from_batch, to_batch

__all__ = ["dip", "dip_oracle"]

# ---------------------------------------------------------------- DIP
def dip(
    noisy: np.ndarray,
    *,
    iterations: int = 1800,
    lr: float = 0.01,
    input_channels: int = 32,
    input_noise_std: float = 1 / 30,
    ema: float = 0.99,
    base: int = NetConfig.x_base,
    depth: int = NetConfig.x_depth,
    output_sigmoid: bool = True,
    reference: np.ndarray | None = None,
    eval_every: int = 1,
    seed: int | None = 0,
    device: str | torch.device = "auto",
    progress: bool = False,
    callback: Callable[[dict], None] | None = None,
) -> np.ndarray:
    """Denoise one image with the deep image prior (network: ScoreDVI's X-net UNet).

    Parameters
    ----------
    noisy : ndarray, shape (H, W) or (H, W, C) with C in {1, 3}
        Noisy image, float, values nominally in [0, 1] (real noise may overshoot a little);
        at least 8×8 pixels.
    iterations : int, optional
        Adam iterations (≥ 1). DIP's paper: 1800 for denoising. Without `reference` the result is
        the moving average at this iteration: DIP overfits the noise if run much longer.
    lr : float, optional
        Adam learning rate, > 0 (DIP: 0.01).
    input_channels : int, optional
        Channels of the fixed random code z ~ U(0, 0.1), ≥ 1 (DIP: 32).
    input_noise_std : float, optional
        Std of the Gaussian perturbation added to z at every iteration, ≥ 0, on the scale of z
        (DIP: 1/30; 0 switches it off).
    ema : float, optional
        Weight of the past in the exponential moving average of the outputs, in [0, 1)
        (DIP: 0.99; 0 returns the last output itself).
    base : int, optional
        Channels of the UNet's first level, ≥ 1; level i has base·2^min(i, depth-1)
        (ScoreDVI's paper X-net: 64).
    depth : int, optional
        Number of 2×2 max-pool down-steps of the UNet, ≥ 1 (ScoreDVI's paper X-net: 4).
    output_sigmoid : bool, optional
        Pass the network output through a sigmoid, as DIP's networks do (the X-net itself has a
        linear head; ScoreDVI does not say which it used for DIP).
    reference : ndarray, same shape as `noisy`, optional
        The clean image. If given, the result is the moving-average output with the highest PSNR
        against it (data range 1, output clipped to [0, 1]) over the iterations checked - the
        "oracle" DIP that ScoreDVI reports; it uses the ground truth, so it is a reference point,
        not a blind denoiser. Use :func:`dip_oracle` to also get the iteration.
    eval_every : int, optional
        With `reference`: check the PSNR every this many iterations (≥ 1) and at the last one.
    seed : int or None, optional
        Seeds the weights, z and the perturbations (None: not reproducible). The same seed gives
        the same output on the CPU; on CUDA up to nondeterministic kernels.
    device : {"auto", "cpu", "cuda"} or torch.device, optional
        Where to run; "auto" picks CUDA when available.
    progress : bool, optional
        Show a tqdm bar over the iterations.
    callback : callable (dict) -> None, optional
        Called after iteration t (1-based) with ``{"t": t, "seconds": s, "estimate": f}``: `s`
        the wall seconds since the fit started, less the time spent in earlier callbacks; ``f()``
        the moving-average output so far (what ``iterations=t`` would return without
        `reference`), shaped and typed like the result. The training does not depend on it. An
        exception raised by the callback stops the fit and propagates.

    Returns
    -------
    denoised : ndarray, same shape as `noisy`, float32
        The estimate, not clipped.

    Raises
    ------
    DenoiselabError
        On a bad image (ndim, channels, non-float dtype, NaN, values far outside [0, 1], smaller
        than 8×8), a `reference` of another shape, or a setting out of range.

    Notes
    -----
    Iteration t (1-based) computes f_θ(z + ε_t) with the weights after t − 1 Adam steps, updates the
    moving average with it, then takes step t (DIP's loop). Cost: `iterations` forward and backward
    passes of a 13.4 M-parameter UNet; ScoreDVI (Table 5) reports 146 s for 256×256×3 on a GPU.

    Deviations from DIP's paper: the network (ScoreDVI's X-net, as ScoreDVI ran it, instead of
    DIP's "skip" encoder-decoder with reflection padding and LeakyReLU); no backtracking (DIP's
    notebook reloads the previous weights when the fit to y drops by 5 dB); sizes that are not a
    multiple of 2^depth are padded by the UNet and cropped, not cropped away as in DIP's code.

    References
    ----------
    .. [1] D. Ulyanov, A. Vedaldi, V. Lempitsky, "Deep image prior", CVPR 2018,
       doi:10.1109/CVPR.2018.00984; IJCV 128:1867-1888, 2020, doi:10.1007/s11263-020-01303-4.
    .. [2] J. Cheng, T. Liu, S. Tan, "Score priors guided deep variational inference for
       unsupervised real-world single image denoising", ICCV 2023, arXiv:2308.04682, §4.2.

    Examples
    --------
    >>> y = np.full((16, 16), 0.5, np.float32)
    >>> dip(y, iterations=2, base=4, depth=2, device="cpu").shape
    (16, 16)
    """
    return _fit_dip(noisy, iterations=iterations, lr=lr, input_channels=input_channels,
                    input_noise_std=input_noise_std, ema=ema, base=base, depth=depth,
                    output_sigmoid=output_sigmoid, reference=reference, eval_every=eval_every,
                    seed=seed, device=device, progress=progress, callback=callback)[0]


def dip_oracle(noisy: np.ndarray, reference: np.ndarray, **settings) -> tuple[np.ndarray, int]:
    """DIP's best iterate against the clean image, and its iteration: ScoreDVI's "oracle" DIP.

    Parameters
    ----------
    noisy : ndarray, shape (H, W) or (H, W, C) with C in {1, 3}
        Noisy image, float, nominally in [0, 1].
    reference : ndarray, same shape as `noisy`
        Clean image in [0, 1], used only to pick the iteration.
    **settings
        Any other keyword of :func:`dip` (`iterations`, `lr`, `eval_every`, `seed`, ...).

    Returns
    -------
    denoised : ndarray, same shape as `noisy`, float32
        Moving-average output with the highest PSNR against `reference`.
    iteration : int
        Its iteration, in [1, iterations].

    Examples
    --------
    >>> x = np.tile(np.linspace(0.2, 0.8, 16, dtype=np.float32), (16, 1))
    >>> _, t = dip_oracle(x, x, iterations=3, base=4, depth=2, device="cpu")
    >>> 1 <= t <= 3
    True
    """
    if "reference" in settings:
        raise DenoiselabError("pass the clean image once, as the second argument of dip_oracle")
    return _fit_dip(noisy, reference=reference, **settings)


def _fit_dip(noisy, *, iterations=1800, lr=0.01, input_channels=32, input_noise_std=1 / 30, ema=0.99,
             base=NetConfig.x_base, depth=NetConfig.x_depth, output_sigmoid=True, reference=None,
             eval_every=1, seed=0, device="auto", progress=False, callback=None) -> tuple[np.ndarray, int]:
    """The DIP loop; returns (image, iteration of the returned image)."""
    from tqdm.auto import tqdm

    y_np = check_noisy(noisy)
    iterations = check_int("iterations", iterations, 1)
    lr = check_float("lr", lr, 0.0, math.inf, lo_open=True, hi_open=True)
    input_channels = check_int("input_channels", input_channels, 1)
    input_noise_std = check_float("input_noise_std", input_noise_std, 0.0, math.inf, hi_open=True)
    ema = check_float("ema", ema, 0.0, 1.0, hi_open=True)
    base, depth = check_int("base", base, 1), check_int("depth", depth, 1)
    eval_every = check_int("eval_every", eval_every, 1)
    dev = resolve_device(device)
    x_ref = None
    if reference is not None:
        ref_np = check_noisy(reference, what="reference")
        if np.shape(reference) != np.shape(noisy):
            raise DenoiselabError(f"reference has shape {np.shape(reference)}, noisy has {np.shape(noisy)}; they must match")
        x_ref = to_batch(ref_np, dev)

    hook = IterationHook(callback, dev)
    h, w, c = y_np.shape
    y = to_batch(y_np, dev)
    g = make_generator(seed)  # CPU: weights and z, identical on every device
    net = UNet(1, input_channels, c, base, depth, g).to(dev)
    z = (0.1 * torch.rand(1, input_channels, h, w, generator=g)).to(dev)  # DIP: U(0, 1) scaled by 1/10
    g_run = g if dev.type == "cpu" else make_generator(seed, dev)  # perturbations, drawn where z lives
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    avg = best = None
    best_mse = torch.full((), math.inf, device=dev)
    best_t = torch.zeros((), dtype=torch.long, device=dev)
    for t in tqdm(range(1, iterations + 1), desc="DIP", disable=not progress, leave=False):
        z_t = z + input_noise_std * torch.randn(z.shape, generator=g_run, device=dev) if input_noise_std > 0 else z
        out = net(z_t)
        if output_sigmoid:
            out = torch.sigmoid(out)
        loss = F.mse_loss(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            avg = out.detach() if avg is None else ema * avg + (1 - ema) * out.detach()
            if x_ref is not None and (t % eval_every == 0 or t == iterations):
                # kept on the device (no host sync): min MSE of the clipped output = max PSNR
                mse = (avg.clamp(0, 1) - x_ref).square().mean()
                better = mse < best_mse
                best = avg.clone() if best is None else torch.where(better, avg, best)
                best_t = torch.where(better, torch.full_like(best_t, t), best_t)
                best_mse = torch.minimum(mse, best_mse)
        hook(t, lambda: from_batch(avg, noisy))
    if x_ref is None:
        return from_batch(avg, noisy), iterations
    return from_batch(best, noisy), int(best_t)
