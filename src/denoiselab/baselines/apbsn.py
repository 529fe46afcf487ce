"""AP-BSN trained on the single noisy image ("APBSN-single" of the ScoreDVI paper).

AP-BSN (Lee, Son and Lee, CVPR 2022) denoises real, spatially correlated noise with a blind-spot
network (BSN) and two different pixel-shuffle down-samplings (PD): a large stride while training
(sub-images of stride 5 carry nearly white noise, which a BSN needs) and a small stride at test
(stride 2 keeps more image detail), followed by random-replacing refinement (R³), which runs the
BSN without PD on copies of the output with some pixels put back to their noisy values.
ScoreDVI (Cheng et al., ICCV 2023, Sec. 4.2) trains it on the one noisy test image only, with
stride 5 in training and 2 at test; this module does the same.

Deviations from the AP-BSN paper (deliberate)
---------------------------------------------
- One image instead of SIDD-Medium: random crops of the noisy image itself, for `iterations`
  Adam steps at a constant learning rate (no step decay: the paper's schedule is defined in
  epochs over a data set and has no single-image equivalent).
- ``iterations=1000`` is our choice (the paper trains for epochs over SIDD-Medium): see the
  docstring of :func:`apbsn`. It was not tuned against ground truth.
- The PD sub-images go through the network as a batch, each with the convolutions' zero
  padding, rather than tiled into one mosaic image separated by a few zero pixels; the two
  differ only next to sub-image borders.
- At test the image is padded to a multiple of the stride by *replicating* its last row and
  column (a reflected copy of a pixel could fall into its own sub-image, next to it, and leak
  through the blind spot); R³ runs on the image as it is (the convolutions pad with zeros).
- Pixels stay on [0, 1], and the network works around the noisy image's mean per channel
  (subtracted from its input, added to its output; a constant, so the blind spot holds). (As
  far as we recall, the authors' code feeds 0-255 values with the same learning rate; not
  rechecked.) A fresh network's output sits at an arbitrary level (0.06-0.33 off per channel
  on a test image) and must otherwise first learn the image's intensity level, at Adam's pace
  of about `lr` per step and parameter, which matters when training on one image only: on a
  128² SIDD crop (width 32, 200 steps of 4 crops of 60²) the output scored 8.6 dB without the
  offset and 12.9 with it at ``lr=1e-4``, 17.4 and 21.8 at ``lr=1e-3`` (noisy 18.6; the
  offset run at 1e-3 reached 29.7 dB at 400 steps).
- The crops are flipped and rotated by multiples of 90° at random (augmentation, our choice;
  whether the paper's training augments was not rechecked).

References
----------
.. [1] W. Lee, S. Son, K. M. Lee, "AP-BSN: Self-supervised denoising for real-world images via
   asymmetric PD and blind-spot network", CVPR 2022, arXiv:2203.11799.
.. [2] J. Cheng, T. Liu, S. Tan, "Score priors guided deep variational inference for
   unsupervised real-world single image denoising", ICCV 2023, arXiv:2308.04682.
.. [3] X. Wu, M. Liu, Y. Cao, D. Ren, W. Zuo, "Unpaired learning of deep image denoising",
   ECCV 2020 (D-BSN, the dilated blind-spot network AP-BSN builds on).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._utils import resolve_device
from ..errors import DenoiselabError
from ._common import IterationHook, check_int, check_noisy, from_batch, rng_unchanged
from ..pixel_shuffle import pd_apply, pd_down, pd_up

__all__ = ["apbsn", "BlindSpotNet"]

_MIN_SUB = 4  # smallest side of a PD sub-image the network is trained or run on, in pixels


# --------------------------------------------------------------------------- network


class _CentralMaskedConv2d(nn.Conv2d):
    """A k×k convolution whose centre tap is always zero: the output never sees its own pixel."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__(channels, channels, kernel_size, padding=kernel_size // 2)
        mask = torch.ones_like(self.weight)
        mask[:, :, kernel_size // 2, kernel_size // 2] = 0.0
        self.register_buffer("mask", mask)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class _DilatedBlock(nn.Module):
    """Residual block: dilated 3×3 conv, ReLU, 1×1 conv (D-BSN's DCl)."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _branch(channels: int, dilation: int, blocks: int) -> nn.Sequential:
    # A (2d-1)×(2d-1) masked conv, then convs dilated by d: every path from a pixel back to itself
    # would need the masked conv's offset (|offset| < d per axis, not 0) to be a multiple of d,
    # which it never is, so the blind spot survives any depth.
    layers: list[nn.Module] = [_CentralMaskedConv2d(channels, 2 * dilation - 1), nn.ReLU(inplace=True)]
    for _ in range(2):
        layers += [nn.Conv2d(channels, channels, 1), nn.ReLU(inplace=True)]
    layers += [_DilatedBlock(channels, dilation) for _ in range(blocks)]
    layers += [nn.Conv2d(channels, channels, 1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class BlindSpotNet(nn.Module):
    """The DBSNl blind-spot network of AP-BSN [1]_: output at a pixel ignores that pixel's input.

    A 1×1 head, two branches (3×3 masked conv + blocks dilated by 2; 5×5 masked conv + blocks
    dilated by 3) and a 1×1 fusion tail. Only 1×1 convolutions touch a pixel's own position after
    the masked convolutions, so the receptive field of every output pixel excludes that pixel.

    Parameters
    ----------
    channels : int
        Image channels in and out (1 or 3).
    width : int, optional
        Feature channels (even, >= 2; 128 in [1]).
    blocks : int, optional
        Dilated residual blocks per branch (>= 0; 9 in [1]).

    Notes
    -----
    With the defaults the network has 3.66 M parameters (the count ScoreDVI's Table 5 gives) and
    costs about 3.65 M multiply-adds per pixel (about 240 G for a 256×256 image).
    """

    def __init__(self, channels: int = 3, width: int = 128, blocks: int = 9):
        super().__init__()
        # Intensity the network works around: its input has it subtracted and its output added
        # back (see `apbsn`, which sets it to the noisy image's channel means). A constant, so
        # the blind spot is untouched.
        self.register_buffer("offset", torch.zeros(1, channels, 1, 1))
        self.head = nn.Sequential(nn.Conv2d(channels, width, 1), nn.ReLU(inplace=True))
        self.branch3 = _branch(width, 2, blocks)
        self.branch5 = _branch(width, 3, blocks)
        half = width // 2
        self.tail = nn.Sequential(
            nn.Conv2d(2 * width, width, 1), nn.ReLU(inplace=True),
            nn.Conv2d(width, half, 1), nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 1), nn.ReLU(inplace=True),
            nn.Conv2d(half, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W); zero padding, so any H, W >= 1 works."""
        f = self.head(x - self.offset)
        return self.tail(torch.cat([self.branch3(f), self.branch5(f)], dim=1)) + self.offset


# --------------------------------------------------------------------------- helpers


def _augment(crop: Tensor, k: int) -> Tensor:
    """One of the 8 flips/rotations of a (C, H, W) crop."""
    crop = torch.rot90(crop, k % 4, dims=(1, 2))
    return crop.flip(2) if k >= 4 else crop


def _denoise_pd(net: BlindSpotNet, y: Tensor, stride: int) -> Tensor:
    """BSN on the PD sub-images of `y` (1, C, H, W), put back together; same shape as `y`."""
    return pd_apply(net, y, stride)


def _test(net: BlindSpotNet, y: Tensor, pd_test: int, refine_T: int, refine_p: float, gen: torch.Generator) -> Tensor:
    """AP-BSN's inference on `y` (1, C, H, W): PD with stride `pd_test`, then R³ (masks drawn from `gen`).

    Leaves `net` in eval mode.
    """
    net.eval()
    with torch.no_grad():
        x_hat = _denoise_pd(net, y, pd_test)  # [1]: test with the smaller stride 2
        if refine_T > 0:  # [1]: random-replacing refinement R³
            acc = torch.zeros_like(x_hat)
            for _ in range(refine_T):
                mask = (torch.rand(y.shape, generator=gen) < refine_p).to(y.device)
                acc += net(torch.where(mask, y, x_hat))  # the BSN without PD
            x_hat = acc / refine_T
    return x_hat


# --------------------------------------------------------------------------- public


def apbsn(
    noisy: np.ndarray,
    *,
    iterations: int = 1000,
    pd_train: int = 5,
    pd_test: int = 2,
    width: int = 128,
    blocks: int = 9,
    patch: int = 120,
    batch: int = 8,
    lr: float = 1e-4,
    refine_T: int = 8,
    refine_p: float = 0.16,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
    callback: Callable[[dict], None] | None = None,
) -> np.ndarray:
    """Denoise one image with AP-BSN trained on that image alone (APBSN-single).

    A fresh blind-spot network is trained on random crops of `noisy`: each crop is split into
    ``pd_train**2`` pixel-shuffled sub-images (nearly white noise), the network denoises them,
    the result is shuffled back and compared with the noisy crop by an L1 loss [1]_. At test the
    image is split with the smaller stride `pd_test`, denoised and reassembled; then random-
    replacing refinement (R³) [1]_ repeats `refine_T` times: put a random fraction `refine_p` of
    the pixels back to their noisy values, denoise the whole image with the network *without*
    PD, and average the `refine_T` results.

    Parameters
    ----------
    noisy : ndarray, shape (H, W) or (H, W, C), C in {1, 3}
        Noisy image, float, values nominally in [0, 1] (not clipped). Each side must be at least
        ``4 * max(pd_train, pd_test)`` pixels.
    iterations : int, optional
        Adam steps of training (>= 1). Default 1000, our choice: the paper trains for 20 epochs
        over SIDD-Medium, which has no single-image equivalent. With 8 crops of 120×120 per step
        every pixel of a 256×256 image is seen about 1800 times, and the run is of the order of
        the 121 s per 256×256 image that ScoreDVI's Table 5 reports for its APBSN-single on an
        RTX 2080. Not tuned on ground truth.
    pd_train : int, optional
        PD stride while training, in pixels (>= 1; 5 as in [1]_ and [2]_).
    pd_test : int, optional
        PD stride at test, in pixels (>= 1; 2 as in [1]_ and [2]_; 1 = no PD).
    width : int, optional
        Feature channels of the network (even, >= 2; 128 as in [1]_).
    blocks : int, optional
        Dilated residual blocks per branch (>= 0; 9 as in [1]_).
    patch : int, optional
        Side of the square training crops, in pixels (120 as in [1]_). Rounded down to a
        multiple of `pd_train` and clipped to the image size.
    batch : int, optional
        Crops per step (>= 1; 8 as in [1]_).
    lr : float, optional
        Adam learning rate (> 0; 1e-4 as in [1]_), constant.
    refine_T : int, optional
        R³ repetitions (>= 0; 8 as in [1]_). 0 returns the PD output without refinement.
    refine_p : float, optional
        Fraction of pixels put back to their noisy values per R³ repetition, in [0, 1]
        (0.16 as in [1]_). Drawn independently per pixel and channel.
    seed : int, optional
        Seeds the network weights, the crops and the R³ masks. The same seed gives the same
        output on the CPU (not bit-exactly on CUDA, whose convolutions are not deterministic).
    device : {"auto", "cpu", "cuda"}, optional
        Where to train; ``"auto"`` takes CUDA when available.
    progress : bool, optional
        Show a tqdm bar over the training steps.
    callback : callable (dict) -> None, optional
        Called after training step t (1-based) with ``{"t": t, "seconds": s, "estimate": f}``:
        `s` the wall seconds since the fit started, less the time spent in earlier callbacks;
        ``f()`` runs the test (PD with `pd_test`, then R³) with the current network and returns
        exactly what ``iterations=t`` would return. It costs a full test, so it runs only when
        called; it leaves the random stream and the network's mode as they were, so the training
        (and the final result) does not depend on it. An exception raised by the callback stops
        the fit and propagates.

    Returns
    -------
    denoised : ndarray, float32, same shape as `noisy`
        Not clipped.

    Raises
    ------
    DenoiselabError
        If `noisy` is not a finite float (H, W) or (H, W, C) image with C in {1, 3} and values
        in about [0, 1], if it is smaller than ``4 * max(pd_train, pd_test)`` on a side, or if a
        setting is out of range (e.g. ``iterations < 1``).

    Notes
    -----
    Cost: the network costs about 3.65 M multiply-adds per pixel, so a training step (8 crops
    of 120×120, forward and backward) is about 1.3 T multiply-adds and the test (PD output plus
    8 R³ passes on a 256×256 image) about 2.2 T. One CPU core here does about 13 G per second:
    about 100 s per training step and 3 min for the test, so the defaults are for a GPU, where
    they take minutes per image. On a CPU use a much smaller `iterations`, `width` and
    `blocks` for a quick look. Memory at test grows with the image
    (several ``width``-channel feature maps of the full image at once).

    The deviations from [1]_ are listed in the module docstring: single image, constant
    learning rate, [0, 1] pixel scale, sub-images as a batch, replicate padding, flips and
    rotations.

    References
    ----------
    .. [1] W. Lee, S. Son, K. M. Lee, "AP-BSN: Self-supervised denoising for real-world images
       via asymmetric PD and blind-spot network", CVPR 2022, arXiv:2203.11799.
    .. [2] J. Cheng, T. Liu, S. Tan, "Score priors guided deep variational inference for
       unsupervised real-world single image denoising", ICCV 2023, Sec. 4.2.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = (0.5 + 0.1 * rng.standard_normal((20, 20))).astype(np.float32)
    >>> x_hat = apbsn(y, iterations=2, width=8, blocks=1, batch=1, refine_T=1, device="cpu")
    >>> x_hat.shape, x_hat.dtype
    ((20, 20), dtype('float32'))
    """
    from tqdm.auto import tqdm

    img = check_noisy(noisy, what="apbsn")
    iterations = check_int("iterations", iterations, 1, "the default is 1000")
    pd_train = check_int("pd_train", pd_train, 1, "AP-BSN trains with stride 5")
    pd_test = check_int("pd_test", pd_test, 1, "AP-BSN tests with stride 2")
    width = check_int("width", width, 2, "AP-BSN uses 128")
    if width % 2:
        raise DenoiselabError(f"width={width} is odd; pass an even number of channels, AP-BSN uses 128")
    blocks = check_int("blocks", blocks, 0, "AP-BSN uses 9")
    batch = check_int("batch", batch, 1, "AP-BSN uses 8")
    refine_T = check_int("refine_T", refine_T, 0, "AP-BSN uses 8 (0 turns R3 off)")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise DenoiselabError(f"lr={lr!r} is not a positive number; AP-BSN uses 1e-4")
    if not (isinstance(refine_p, (int, float)) and 0.0 <= refine_p <= 1.0):
        raise DenoiselabError(f"refine_p={refine_p!r} is not in [0, 1]; AP-BSN uses 0.16")
    h, w, c = img.shape
    need = _MIN_SUB * max(pd_train, pd_test)
    if min(h, w) < need:
        raise DenoiselabError(
            f"image of size {h}x{w} is too small for PD strides {pd_train}/{pd_test}; "
            f"need at least {need}x{need} pixels or smaller strides"
        )
    patch = check_int("patch", patch, need, f"the crop must hold sub-images of at least {_MIN_SUB} pixels")
    patch = min(patch, h, w) // pd_train * pd_train
    dev = resolve_device(device)
    hook = IterationHook(callback, dev)

    y = torch.from_numpy(img).permute(2, 0, 1)[None].to(dev)  # (1, C, H, W), [0, 1]: see module docstring
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):  # seeded weights without touching the global RNG
        torch.manual_seed(int(seed))
        net = BlindSpotNet(c, width, blocks)
    net.offset.copy_(torch.from_numpy(img).mean(dim=(0, 1)).view(1, c, 1, 1))  # see the module docstring
    net = net.to(dev).train()
    opt = torch.optim.Adam(net.parameters(), lr=float(lr))  # constant lr: see the module docstring

    def estimate() -> np.ndarray:
        with rng_unchanged(gen):  # the R³ masks come from the crops' generator: put it back
            x_hat = _test(net, y, pd_test, refine_T, refine_p, gen)
        net.train()
        return from_batch(x_hat, noisy)

    for t in tqdm(range(1, iterations + 1), desc="AP-BSN", disable=not progress, leave=False):
        top = torch.randint(0, h - patch + 1, (batch,), generator=gen).tolist()
        left = torch.randint(0, w - patch + 1, (batch,), generator=gen).tolist()
        flips = torch.randint(0, 8, (batch,), generator=gen).tolist()  # 8 flips/rotations: augmentation
        crops = torch.stack(
            [_augment(y[0, :, t:t + patch, l:l + patch], k) for t, l, k in zip(top, left, flips)]
        )
        out = pd_up(net(pd_down(crops, pd_train)), pd_train, batch)  # [1]: train on PD with stride 5
        loss = (out - crops).abs().mean()  # [1]: L1 against the noisy crop itself
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        hook(t, estimate)

    return from_batch(_test(net, y, pd_test, refine_T, refine_p, gen), noisy)
