"""Self2Self: self-supervised denoising of one image with Bernoulli sampling and dropout.

Self2Self (Quan, Chen, Pang & Ji) trains a network on the noisy image y alone. Each step draws a
Bernoulli mask b (each pixel and channel kept with probability 1 − p), feeds the "Bernoulli-sampled
instance" b ⊙ y to a UNet whose encoder uses partial convolutions (so dropped pixels count as
missing, not as zeros) and whose decoder uses dropout, and minimises the squared error to y on the
dropped pixels only, ||(1 − b) ⊙ (f(b ⊙ y) − y)||² / Σ(1 − b). A dropped pixel never reaches the
network, so the network cannot learn the identity (and with it the noise). At test time the outputs
of many (mask, dropout) draws are averaged, an ensemble that removes most of the remaining variance.

Network (paper, §3.3 and Fig. 2; authors' code): encoder PConv(48)-PConv(48)-pool, then four times
PConv(48)-pool, then PConv(48), all 3×3 with LeakyReLU 0.1 and 2×2 max-pooling (the mask is
pooled alongside); decoder five times nearest ×2 up-sampling + concatenation with the encoder map
of that scale (the last with the masked input itself), then two 3×3 convs of 96 channels (the
last level: 64, 32 and C with a sigmoid), each conv preceded by dropout and followed by LeakyReLU
0.1. Random left-right / up-down flips of every instance, at training and at test time (authors'
code).

References
----------
Y. Quan, M. Chen, T. Pang, H. Ji, "Self2Self with dropout: learning self-supervised denoising from
single image", CVPR 2020, doi:10.1109/CVPR42600.2020.00196.
G. Liu, F. A. Reda, K. J. Shih, T.-C. Wang, A. Tao, B. Catanzaro, "Image inpainting for irregular
holes using partial convolutions", ECCV 2018, doi:10.1007/978-3-030-01252-6_6.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._utils import make_generator, resolve_device
from ._common import IterationHook, check_float, check_int, check_noisy, from_batch, rng_unchanged, to_batch

__all__ = ["self2self"]

N_POOL = 5  # 2×2 max-pool steps of the encoder: sizes are padded to a multiple of 2^5 = 32


def _conv(cin: int, cout: int, g: torch.Generator, *, init: str = "he", padding_mode: str = "zeros") -> nn.Conv2d:
    """3×3 conv with zero bias and weights drawn from `g`, as in the authors' code: "he" (He-normal,
    LeakyReLU gain: decoder), "linear" (He-normal, gain 1: last conv), "glorot" (Glorot-uniform,
    Keras' default: partial convs). The Glorot encoder matters: with He-normal everywhere the
    dropout's 1/(1-p) rescaling compounds over 13 decoder convs and the sigmoid starts saturated."""
    conv = nn.utils.skip_init(nn.Conv2d, cin, cout, 3, padding=1, padding_mode=padding_mode)  # no global-RNG init
    if init == "glorot":
        nn.init.xavier_uniform_(conv.weight, generator=g)
    else:
        gain = "leaky_relu" if init == "he" else "linear"
        nn.init.kaiming_normal_(conv.weight, a=0.1, nonlinearity=gain, generator=g)
    nn.init.zeros_(conv.bias)
    return conv


class _PConv(nn.Module):
    """3×3 partial convolution (Liu et al. 2018) + LeakyReLU 0.1.

    out = W·(x ⊙ m) · |window| / Σm + b where the window holds some valid input, 0 elsewhere; the new
    mask is 1 wherever the window held a valid input. Outside the image counts as missing (zero
    padding of x and m), so borders are renormalised too.
    """

    def __init__(self, cin: int, cout: int, g: torch.Generator):
        super().__init__()
        self.conv = _conv(cin, cout, g, init="glorot")

    def forward(self, x: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
        cin = x.shape[1]
        with torch.no_grad():  # Σm over the 3×3×cin window; m may have 1 channel (shared) or cin
            count = F.conv2d(m, m.new_ones(1, m.shape[1], 3, 3), padding=1) * (cin / m.shape[1])
            valid = (count > 0).to(x.dtype)
            scale = 9 * cin / count.clamp(min=1) * valid
        out = F.conv2d(x * m, self.conv.weight, None, padding=1) * scale + self.conv.bias.view(1, -1, 1, 1) * valid
        return F.leaky_relu(out, 0.1), valid


class _Self2SelfNet(nn.Module):
    """Partial-conv encoder (6 blocks, `width` channels) and dropout decoder (5 blocks), see module docstring."""

    def __init__(self, channels: int, width: int, g: torch.Generator):
        super().__init__()
        dec, last_a, last_b = 2 * width, max(1, 4 * width // 3), max(1, 2 * width // 3)  # 96, 64, 32 for width 48
        self.enc = nn.ModuleList([_PConv(channels, width, g)] + [_PConv(width, width, g) for _ in range(N_POOL + 1)])
        ups = []
        for level in range(N_POOL - 1):  # decoder blocks at 1/16 ... 1/2 of the size
            cin = (width if level == 0 else dec) + width
            ups.append(nn.ModuleList([_conv(cin, dec, g, padding_mode="reflect"),
                                      _conv(dec, dec, g, padding_mode="reflect")]))
        self.ups = nn.ModuleList(ups)
        self.last = nn.ModuleList([_conv(dec + channels, last_a, g, padding_mode="reflect"),
                                   _conv(last_a, last_b, g, padding_mode="reflect"),
                                   _conv(last_b, channels, g, init="linear", padding_mode="reflect")])

    def forward(self, x: Tensor, m: Tensor, p: float, g: torch.Generator | None) -> Tensor:
        def drop(t: Tensor) -> Tensor:  # element-wise dropout with our generator (F.dropout takes none)
            return t * (torch.rand(t.shape, generator=g, device=t.device) >= p) / (1 - p) if p > 0 else t

        skips = [x]
        h, m = self.enc[0](x, m)
        for i, pconv in enumerate(self.enc[1:]):
            h, m = pconv(h, m)
            if i < N_POOL:  # the last encoder block has no pooling
                h, m = F.max_pool2d(h, 2), F.max_pool2d(m, 2)
                if i < N_POOL - 1:
                    skips.append(h)
        for block in self.ups:
            h = torch.cat([F.interpolate(h, scale_factor=2, mode="nearest"), skips.pop()], 1)
            for conv in block:
                h = F.leaky_relu(conv(drop(h)), 0.1)
        h = torch.cat([F.interpolate(h, scale_factor=2, mode="nearest"), skips.pop()], 1)
        h = F.leaky_relu(self.last[0](drop(h)), 0.1)
        h = F.leaky_relu(self.last[1](drop(h)), 0.1)
        return torch.sigmoid(self.last[2](drop(h)))


def self2self(
    noisy: np.ndarray,
    *,
    iterations: int = 150_000,
    lr: float = 1e-5,
    p: float = 0.3,
    n_predictions: int = 50,
    width: int = 48,
    seed: int | None = 0,
    device: str | torch.device = "auto",
    progress: bool = False,
    callback: Callable[[dict], None] | None = None,
) -> np.ndarray:
    """Denoise one image with Self2Self (Bernoulli-sampled instances, partial convs, dropout ensemble).

    Parameters
    ----------
    noisy : ndarray, shape (H, W) or (H, W, C) with C in {1, 3}
        Noisy image, float, values nominally in [0, 1] (real noise may overshoot a little);
        at least 8×8 pixels.
    iterations : int, optional
        Adam steps (≥ 1), one Bernoulli instance each (paper and code: 150 000).
    lr : float, optional
        Adam learning rate, > 0 (paper: 1e-5; the authors' code uses 1e-4).
    p : float, optional
        Probability in (0, 1) of dropping a pixel in the Bernoulli sampling (each pixel and channel
        independently) and the dropout rate of the decoder (paper: 0.3 for both).
    n_predictions : int, optional
        Number of (mask, dropout, flip) draws averaged at test time, ≥ 1 (paper: 50; the authors'
        code uses 100).
    width : int, optional
        Channels of the encoder's partial convs, ≥ 1 (paper: 48). The decoder's convs have
        2·width (96), and the last level ⌊4·width/3⌋ and ⌊2·width/3⌋ (64, 32) channels.
    seed : int or None, optional
        Seeds the weights, the masks, the dropout and the flips (None: not reproducible). The same
        seed gives the same output on the CPU; on CUDA up to nondeterministic kernels.
    device : {"auto", "cpu", "cuda"} or torch.device, optional
        Where to run; "auto" picks CUDA when available.
    progress : bool, optional
        Show a tqdm bar over the training iterations.
    callback : callable (dict) -> None, optional
        Called after training iteration t (1-based) with ``{"t": t, "seconds": s, "estimate":
        f}``: `s` the wall seconds since the fit started, less the time spent in earlier
        callbacks; ``f()`` runs the test-time ensemble now and returns exactly what
        ``iterations=t`` would return. It costs `n_predictions` forward passes, so it runs only
        when called; it leaves the random streams as they were, so the training (and the final
        result) does not depend on it. An exception raised by the callback stops the fit and
        propagates.

    Returns
    -------
    denoised : ndarray, same shape as `noisy`, float32
        Mean of the `n_predictions` outputs, in (0, 1) (sigmoid output).

    Raises
    ------
    DenoiselabError
        On a bad image (ndim, channels, non-float dtype, NaN, values far outside [0, 1], smaller
        than 8×8) or a setting out of range.

    Notes
    -----
    Cost: `iterations` forward and backward passes of a 1.0 M-parameter UNet plus `n_predictions`
    forward passes; ScoreDVI (Table 5) reports 3546 s for 256×256×3 on a GPU.

    Where this differs from the paper or the authors' code, or where we were unsure:

    - sizes that are not a multiple of 32 (five 2×2 poolings) are padded by reflection at the
      bottom and right and the output cropped; the mask is drawn on the image and reflected with
      it, so a dropped pixel is dropped in its mirror image too (no leak through the padding),
      and the loss covers the image only. The authors' code instead pools with "SAME" padding
      and crops every skip concatenation to the smaller map;
    - partial convs follow Liu et al. (renormalisation by 9·C_in / Σm, zero padding counted as
      missing); the authors' Keras layer renormalises by 9 / Σm and pads symmetrically with the
      padding counted as valid;
    - the decoder's convs pad by reflection (the code pads symmetrically, edge included);
    - initialisation as in the authors' code (not stated in the paper): partial convs
      Glorot-uniform, decoder convs He-normal (LeakyReLU gain; gain 1 for the last), biases 0;
    - the random left-right / up-down flips are from the authors' code, not the paper;
    - not included: the code's optional Poisson re-noising of the input for real noise
      (``is_realnoisy``), and its moving average of training outputs;
    - the dropout masks are element-wise (as ``tf.nn.dropout``), also at test time.

    References
    ----------
    .. [1] Y. Quan, M. Chen, T. Pang, H. Ji, "Self2Self with dropout: learning self-supervised
       denoising from single image", CVPR 2020, doi:10.1109/CVPR42600.2020.00196.
    .. [2] G. Liu et al., "Image inpainting for irregular holes using partial convolutions",
       ECCV 2018, doi:10.1007/978-3-030-01252-6_6.

    Examples
    --------
    >>> y = np.full((16, 16, 3), 0.5, np.float32)
    >>> self2self(y, iterations=2, n_predictions=2, width=4, device="cpu").shape
    (16, 16, 3)
    """
    from tqdm.auto import tqdm

    y_np = check_noisy(noisy)
    iterations = check_int("iterations", iterations, 1)
    lr = check_float("lr", lr, 0.0, math.inf, lo_open=True, hi_open=True)
    p = check_float("p", p, 0.0, 1.0, lo_open=True, hi_open=True)
    n_predictions = check_int("n_predictions", n_predictions, 1)
    width = check_int("width", width, 1)
    dev = resolve_device(device)
    hook = IterationHook(callback, dev)

    h, w, c = y_np.shape
    m = 2 ** N_POOL
    # reflection index maps (numpy reflects repeatedly, so pads larger than the image work too)
    rows = torch.from_numpy(np.pad(np.arange(h), (0, (-h) % m), mode="reflect")).to(dev)
    cols = torch.from_numpy(np.pad(np.arange(w), (0, (-w) % m), mode="reflect")).to(dev)

    def pad(t: Tensor) -> Tensor:
        return t[:, :, rows][:, :, :, cols]

    y = to_batch(y_np, dev)
    g = make_generator(seed)  # CPU: weights, identical on every device
    net = _Self2SelfNet(c, width, g).to(dev)
    g_run = g if dev.type == "cpu" else make_generator(seed, dev)  # masks and dropout, drawn on the device
    flips = np.random.default_rng(seed)  # host-side, so choosing a flip needs no device sync
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def run_instance() -> tuple[Tensor, Tensor, tuple[int, ...]]:
        """One Bernoulli instance of a randomly flipped y -> (output on the image, mask, flip dims)."""
        dims = tuple(d for d, f in zip((2, 3), flips.integers(0, 2, size=2)) if f)  # ud, lr
        y_f = y.flip(dims) if dims else y
        b = (torch.rand(y.shape, generator=g_run, device=dev) >= p).to(y.dtype)  # keep with prob. 1 − p
        out = net(pad(b * y_f), pad(b), p, g_run)[:, :, :h, :w]
        return out, b, dims

    def predict() -> np.ndarray:
        """Test-time ensemble: fresh masks and dropout, flips undone."""
        with torch.no_grad():
            total = torch.zeros_like(y)
            for _ in range(n_predictions):
                out, _, dims = run_instance()
                total += out.flip(dims) if dims else out
        return from_batch(total / n_predictions, noisy)

    def estimate() -> np.ndarray:
        with rng_unchanged(g_run, flips, device=dev):  # the ensemble's draws must not shift the training's
            return predict()

    for t in tqdm(range(1, iterations + 1), desc="Self2Self", disable=not progress, leave=False):
        out, b, dims = run_instance()
        y_f = y.flip(dims) if dims else y
        dropped = 1 - b
        loss = ((out - y_f).square() * dropped).sum() / dropped.sum().clamp(min=1)  # only pixels the net did not see
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        hook(t, estimate)
    return predict()
