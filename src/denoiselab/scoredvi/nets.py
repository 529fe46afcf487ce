"""The four variational-posterior networks of ScoreDVI (Cheng et al., ICCV 2023, §3.4, Fig. 1).

Every network takes the noisy image y and outputs per-pixel, per-channel parameters for K
mixture components:

- X-net (UNet with skips): µ_k and log σ²_k of q(x_k) = N(µ_k, σ²_k)      -> 2·K·C maps
- Φ-net (plain 5-layer CNN): log α̂_k and log β̂_k of q(φ_k) = Gamma(α̂, β̂)  -> 2·K·C maps
- Z-net (plain 5-layer CNN): logits of π_k = q(z_k = 1), softmax over k     -> K·C maps
- Ω-net (plain 5-layer CNN): log d̂_k of q(ω) = Dir(d̂)                      -> K·C maps

Log-parameters are clamped to [ln 1e-8, ln 1e4] before the exponential (authors' code).

**One independent network per image of a batch.** ScoreDVI fits fresh networks to every
image. To denoise B images at once without mixing them, each layer holds B copies of its
weights and runs as a *grouped* convolution on a (1, B·C, H, W) tensor (group b = image b).
Normalisation is per image and channel over (H, W) - exactly what batch normalisation in
training mode computes for a batch of one image, which is how the method runs per image.
Adam is element-wise, so the B fits stay independent, and a batch gives the same result
as B single-image runs with the same seed (every copy starts from the same seeded weights).

References
----------
J. Cheng, T. Liu, S. Tan, "Score priors guided deep variational inference for unsupervised
real-world single image denoising", ICCV 2023, arXiv:2308.04682.
O. Ronneberger, P. Fischer, T. Brox, "U-Net", MICCAI 2015, doi:10.1007/978-3-319-24574-4_28.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG_MIN = math.log(1e-8)
LOG_MAX = math.log(1e4)

__all__ = ["NetConfig", "PosteriorNets", "Theta", "UNet", "clamp_exp"]


def clamp_exp(log_value: Tensor) -> Tensor:
    """exp of a log-parameter clamped to [ln 1e-8, ln 1e4] (authors' code)."""
    return torch.exp(log_value.clamp(LOG_MIN, LOG_MAX))


@dataclass(frozen=True)
class NetConfig:
    """Sizes of the four networks.

    Attributes
    ----------
    x_base : int
        Channels of the first UNet level (paper: 64); level i has x_base·2^min(i, x_depth-1).
    x_depth : int
        Number of down-steps of the UNet (paper: 4, i.e. 64-128-256-512-512).
    aux_width, aux_depth : int
        Width and number of conv layers of the Φ-, Z- and Ω-nets (paper: 32 and 5).
    residual_mean : bool
        If True, µ_k = y + (network output), with the µ head initialised to zero, so that µ starts
        at y instead of at a random image (our addition; the paper outputs µ directly).
    init_log_var : float | None
        If set, the log σ² head starts at this constant (zero weights; e.g. ln 0.05² ≈ -6) instead
        of ≈ 0 (σ² ≈ 1); our addition for short runs.
    phi_from_hyperprior : bool
        If True, the Φ head starts at q(φ) = Gamma(1, β), the hyperprior (log α̂ = 0, log β̂ = ln β),
        so the likelihood's precision starts near α/β instead of ≈ 1; our addition for short runs.
    mean_init : {"y", "prior", "pd", "auto"}
        With `residual_mean`, what µ_k is a residual on: the noisy image y, or the k-th
        prior's denoised image computed once before the first step (a warm start): D_k(y)
        ("prior"), or D_k through PD-`pd_stride` and PD refinement ("pd",
        :func:`denoiselab.pixel_shuffle.pd_refine`), which sees spatially correlated real
        noise nearly white; "auto": "pd" where the noise estimate finds the noise correlated,
        "prior" elsewhere.
    pd_stride : int
        Pixel-shuffle stride of the "pd" warm start (Zhou et al.: 2). Stride 3 beat 2 by
        0.4-1.7 dB on the warm start of 14 SIDD 256² crops (published BF-DnCNN, 2026-12-05):
        camera noise 3 pixels apart is closer to independent.
    pd_whiten : bool
        If True, the "pd" warm start denoises on colours in which the noise is white across
        channels, where that is safe (:func:`denoiselab.noise.colour_whitening`): a prior
        trained on noise independent per channel leaves much of SIDD's colour-correlated noise.
    align_corners : bool
        Bilinear up-sampling of the UNet with corner alignment (authors' code: True) or
        without (PyTorch's default, False).
    """

    x_base: int = 64
    x_depth: int = 4
    aux_width: int = 32
    aux_depth: int = 5
    residual_mean: bool = False
    init_log_var: float | None = None
    mean_init: str = "y"
    pd_stride: int = 2
    pd_whiten: bool = False
    phi_from_hyperprior: bool = False
    align_corners: bool = False


# ---------------------------------------------------------------- grouped building blocks
class _GConv(nn.Module):
    """3×3 (or 1×1) convolution holding one weight copy per image (groups = n_images)."""

    def __init__(self, n_images: int, cin: int, cout: int, k: int, generator: torch.Generator, *, scale: float = 1.0):
        super().__init__()
        self.n_images, self.k = n_images, k
        fan_in = cin * k * k
        bound = 1.0 / math.sqrt(fan_in)  # PyTorch's default conv init (kaiming_uniform, a=√5)
        w = torch.empty(cout, cin, k, k).uniform_(-bound, bound, generator=generator) * scale
        b = torch.empty(cout).uniform_(-bound, bound, generator=generator) * scale
        self.weight = nn.Parameter(w.repeat(n_images, 1, 1, 1))
        self.bias = nn.Parameter(b.repeat(n_images))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.k // 2, groups=self.n_images)


class _GNorm(nn.Module):
    """Per-image, per-channel normalisation over (H, W) with affine: batch norm of a batch of one."""

    def __init__(self, n_images: int, ch: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_images * ch))
        self.bias = nn.Parameter(torch.zeros(n_images * ch))

    def forward(self, x: Tensor) -> Tensor:
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=1e-5)


def _cat_groups(a: Tensor, b: Tensor, n_images: int) -> Tensor:
    """Concatenate channels image by image: (1, G·ca, H, W), (1, G·cb, H, W) -> (1, G·(ca+cb), H, W)."""
    _, _, h, w = a.shape
    return torch.cat([a.view(1, n_images, -1, h, w), b.view(1, n_images, -1, h, w)], dim=2).view(1, -1, h, w)


class _Block(nn.Sequential):
    """(conv-BN-ReLU) × 2, the UNet's double convolution."""

    def __init__(self, n: int, cin: int, cout: int, g: torch.Generator):
        super().__init__(_GConv(n, cin, cout, 3, g), _GNorm(n, cout), nn.ReLU(inplace=True),
                         _GConv(n, cout, cout, 3, g), _GNorm(n, cout), nn.ReLU(inplace=True))


class _UNet(nn.Module):
    """UNet with max-pool down-steps, bilinear up-steps and skip connections (X-net)."""

    def __init__(self, n: int, cin: int, cout: int, base: int, depth: int, g: torch.Generator, *,
                 align_corners: bool = False):
        super().__init__()
        self.n, self.depth, self.align_corners = n, depth, align_corners
        ch = [base * 2 ** min(i, depth - 1) for i in range(depth + 1)]  # 64,128,256,512,512
        self.inc = _Block(n, cin, ch[0], g)
        self.downs = nn.ModuleList(_Block(n, ch[i], ch[i + 1], g) for i in range(depth))
        ups = []
        prev = ch[depth]
        for i in range(depth - 1, -1, -1):
            out = ch[i - 1] if i > 0 else ch[0]
            ups.append(_Block(n, prev + ch[i], out, g))
            prev = out
        self.ups = nn.ModuleList(ups)
        self.head = _GConv(n, prev, cout, 1, g)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        m = 2 ** self.depth
        ph, pw = max((-h) % m, 2 * m - h), max((-w) % m, 2 * m - w)  # sizes k·2^depth, bottleneck >= 2×2
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for up in self.ups:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=self.align_corners)
            x = up(_cat_groups(skip, x, self.n))
        return self.head(x)[..., :h, :w]


#: Public name of the X-net UNet: ``UNet(n_images, cin, cout, base, depth, generator)``; input
#: (1, n_images·cin, H, W), output (1, n_images·cout, H, W). Reused by ``denoiselab.baselines.dip``.
UNet = _UNet


class _PlainCNN(nn.Sequential):
    """conv-ReLU, (conv-BN-ReLU) × (depth-2), conv: the Φ-, Z- and Ω-nets (DnCNN-like, no residual)."""

    def __init__(self, n: int, cin: int, cout: int, width: int, depth: int, g: torch.Generator):
        layers: list[nn.Module] = [_GConv(n, cin, width, 3, g), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [_GConv(n, width, width, 3, g), _GNorm(n, width), nn.ReLU(inplace=True)]
        layers.append(_GConv(n, width, cout, 3, g))
        super().__init__(*layers)


@dataclass
class Theta:
    """Variational parameters, each of shape (B, K, C, H, W), float32.

    mu, var: mean and variance of q(x_k); alpha, beta: shape and rate of q(φ_k);
    pi: q(z_k = 1) (sums to 1 over k); d: Dirichlet parameters of q(ω).
    """

    mu: Tensor
    var: Tensor
    log_var: Tensor
    alpha: Tensor
    beta: Tensor
    pi: Tensor
    d: Tensor


class PosteriorNets(nn.Module):
    """X-, Φ-, Z- and Ω-nets for `n_images` independent images (see module docstring).

    Parameters
    ----------
    n_images : int
        Batch size B: number of independent fits run together.
    channels : int
        Image channels C (1 or 3).
    n_components : int
        Mixture components K (one per prior).
    config : NetConfig
        Network sizes.
    generator : torch.Generator
        Seeded CPU generator for the initial weights (the same for every image).
    beta : Tensor of shape (B,), optional
        Gamma rate hyperprior per image, used when ``config.phi_from_hyperprior``.
    """

    def __init__(self, n_images: int, channels: int, n_components: int, config: NetConfig, generator: torch.Generator,
                 beta: Tensor | None = None):
        super().__init__()
        self.n, self.c, self.k, self.config = n_images, channels, n_components, config
        kc = n_components * channels
        self.x_net = _UNet(n_images, channels, 2 * kc, config.x_base, config.x_depth, generator,
                           align_corners=config.align_corners)
        with torch.no_grad():
            weight = self.x_net.head.weight.view(n_images, 2, kc, -1)
            bias = self.x_net.head.bias.view(n_images, 2, kc)
            if config.residual_mean:  # zero-initialised µ head: µ_k starts exactly at its base (y or D_k(y))
                weight[:, 0].zero_()
                bias[:, 0].zero_()
            if config.init_log_var is not None:  # σ²_k starts uniform at exp(init_log_var)
                weight[:, 1].zero_()
                bias[:, 1].fill_(config.init_log_var)
        self.phi_net = _PlainCNN(n_images, channels, 2 * kc, config.aux_width, config.aux_depth, generator)
        if config.phi_from_hyperprior and beta is not None:
            head = self.phi_net[-1]
            with torch.no_grad():
                head.weight.mul_(0.1)
                bias = head.bias.view(n_images, 2, kc)
                bias[:, 0].fill_(0.0)
                bias[:, 1].copy_(torch.log(beta.float().cpu()).view(n_images, 1).expand(n_images, kc))
        self.z_net = _PlainCNN(n_images, channels, kc, config.aux_width, config.aux_depth, generator)
        self.omega_net = _PlainCNN(n_images, channels, kc, config.aux_width, config.aux_depth, generator)

    def forward(self, y: Tensor, base: Tensor | None = None) -> Theta:
        """Map noisy images y (B, C, H, W) to the variational parameters Θ (Eq. 10).

        `base` (B, K, C, H, W), used with ``residual_mean``: what µ_k is a residual on (default y).
        """
        b, c, h, w = y.shape
        k = self.k
        x = y.reshape(1, b * c, h, w)
        xo = self.x_net(x).view(b, 2, k, c, h, w)
        if self.config.residual_mean:
            mu = xo[:, 0] + (y.unsqueeze(1) if base is None else base)
        else:
            mu = xo[:, 0]
        log_var = xo[:, 1].clamp(LOG_MIN, LOG_MAX)
        po = self.phi_net(x).view(b, 2, k, c, h, w)
        pi = torch.softmax(self.z_net(x).view(b, k, c, h, w), dim=1)
        d = clamp_exp(self.omega_net(x).view(b, k, c, h, w))
        return Theta(mu=mu, var=torch.exp(log_var), log_var=log_var, alpha=clamp_exp(po[:, 0]),
                     beta=clamp_exp(po[:, 1]), pi=pi, d=d)
