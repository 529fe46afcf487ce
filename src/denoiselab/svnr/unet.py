"""A small UNet with a per-pixel time embedding injected at every resolution.

Input: the condition y and the chain state x_t (concatenated, 2C channels) and a time map
t (B, 1, H, W) in schedule steps (fractional allowed). Output: ε̂ (C channels), the noise such
that ``x_t = x_0 + √γ_t · ε``.

The time map is embedded pixel by pixel: K sinusoid pairs ``sin(ω_k t), cos(ω_k t)`` with
frequencies geometric from 1 to 1/T rad per step (so both one-step differences and the whole
range are resolved), then a two-layer 1×1-conv MLP. That embedding map is average-pooled to
each level's resolution and every residual block adds its own 1×1 projection of it to its
features (after the block's first convolution), so each pixel at each scale knows its own time
([reconstructed]: "a spatial time embedding injected at every resolution").

Layout, `levels` = number of 2× downsamplings: level i has ``base_width · min(2^i, 4)`` channels;
one residual block per level on the way down, one in the middle, one per level on the way up
(on the upsampled features concatenated with the skip). Images of any size are padded
(replicate) to a multiple of 2^levels and the result cropped back.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import DenoiselabError
from .schedule import VESchedule

__all__ = ["SVNRUNet", "Preconditioned", "time_features"]


def time_features(t: Tensor, n_pairs: int, T: int = 1000) -> Tensor:
    """Sinusoidal features of a time map: (B, 1, H, W) -> (B, 2·n_pairs, H, W).

    Frequencies ω_k = T^(−k/(n_pairs−1)) rad per step, k = 0..n_pairs−1.

    Examples
    --------
    >>> f = time_features(torch.zeros(1, 1, 2, 2), 4)
    >>> tuple(f.shape), f[0, :, 0, 0].tolist()                    # sin 0 = 0, cos 0 = 1
    ((1, 8, 2, 2), [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    """
    k = torch.arange(n_pairs, dtype=torch.float32, device=t.device)
    omega = torch.exp(-math.log(T) * k / max(n_pairs - 1, 1)).view(1, -1, 1, 1)
    arg = t.float() * omega
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


def _groups(channels: int) -> int:
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class _ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, + time embedding, GroupNorm-SiLU-conv, with a residual connection."""

    def __init__(self, c_in: int, c_out: int, emb_channels: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb_proj = nn.Conv2d(emb_channels, c_out, 1)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        out = self.conv1(F.silu(self.norm1(h))) + self.emb_proj(emb)
        out = self.conv2(F.silu(self.norm2(out)))
        return self.skip(h) + out


class SVNRUNet(nn.Module):
    """ε-prediction UNet over ``[y, x_t]`` with a per-pixel time map.

    Parameters
    ----------
    channels : int
        C, image channels (3 for RGB, 1 for gray); the network takes 2C and returns C.
    base_width : int
        Channels at full resolution (32); level i has ``base_width · min(2^i, 4)``.
    levels : int
        Number of 2× downsamplings, >= 0 (2: full, 1/2 and 1/4 resolution).
    time_pairs : int
        Sinusoid pairs of the time features (16).
    emb_channels : int, optional
        Width of the time-embedding MLP; default ``2 · base_width``.
    T : int
        Schedule length, sets the lowest time frequency (1000).

    Examples
    --------
    >>> net = SVNRUNet(3, base_width=8, levels=2)
    >>> y = torch.rand(1, 3, 17, 23)
    >>> net(y, y, torch.full((1, 1, 17, 23), 12.5)).shape
    torch.Size([1, 3, 17, 23])
    """

    def __init__(self, channels: int = 3, *, base_width: int = 32, levels: int = 2, time_pairs: int = 16,
                 emb_channels: int | None = None, T: int = 1000):
        super().__init__()
        for name, value, least in (("channels", channels, 1), ("base_width", base_width, 1), ("levels", levels, 0),
                                   ("time_pairs", time_pairs, 1), ("T", T, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise DenoiselabError(f"{name}={value!r} must be an integer >= {least}")
        emb_channels = emb_channels or 2 * base_width
        self._config = dict(channels=channels, base_width=base_width, levels=levels, time_pairs=time_pairs,
                            emb_channels=emb_channels, T=T)
        self.channels, self.levels, self.time_pairs, self.T = channels, levels, time_pairs, T
        widths = [base_width * min(2**i, 4) for i in range(levels + 1)]
        self.time_mlp = nn.Sequential(nn.Conv2d(2 * time_pairs, emb_channels, 1), nn.SiLU(),
                                      nn.Conv2d(emb_channels, emb_channels, 1))
        self.inp = nn.Conv2d(2 * channels, widths[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = widths[0]
        for i, w in enumerate(widths):
            self.down_blocks.append(_ResBlock(c, w, emb_channels))
            c = w
            if i < levels:
                self.downsample.append(nn.Conv2d(w, w, 3, stride=2, padding=1))
        self.mid = _ResBlock(c, c, emb_channels)
        self.upsample = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for i in reversed(range(levels)):
            self.upsample.append(nn.Conv2d(c, widths[i], 3, padding=1))
            self.up_blocks.append(_ResBlock(2 * widths[i], widths[i], emb_channels))
            c = widths[i]
        self.out_norm = nn.GroupNorm(_groups(c), c)
        self.out = nn.Conv2d(c, channels, 3, padding=1)

    def config(self) -> dict:
        """The constructor arguments (``SVNRUNet(**config)`` rebuilds the architecture)."""
        return dict(self._config)

    def _check(self, y: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        for name, v in (("y", y), ("x_t", x_t)):
            if not isinstance(v, Tensor) or v.ndim != 4 or v.shape[1] != self.channels:
                shape = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
                raise DenoiselabError(f"{name} must be a (B, {self.channels}, H, W) tensor for this network, got {shape}")
        if x_t.shape != y.shape:
            raise DenoiselabError(f"x_t shape {tuple(x_t.shape)} differs from y shape {tuple(y.shape)}")
        t = torch.as_tensor(t, device=y.device)
        b, _, h, w = y.shape
        if t.ndim == 0 or (t.ndim == 1 and t.shape[0] == b):
            t = t.reshape(-1, 1, 1, 1)
        if t.ndim != 4 or t.shape[1] != 1 or t.shape[0] not in (1, b) or tuple(t.shape[2:]) not in ((1, 1), (h, w)):
            raise DenoiselabError(f"t must be a time map (B, 1, H, W) = ({b}, 1, {h}, {w}), one time per image, "
                                  f"or a number; got shape {tuple(t.shape)}")
        return t.expand(b, 1, h, w)

    def forward(self, y: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """ε̂ for states `x_t` conditioned on `y` at per-pixel times `t` (steps); shape of `y`."""
        t = self._check(y, x_t, t)
        h, w = y.shape[2:]
        m = 2**self.levels
        pad = (0, (-w) % m, 0, (-h) % m)
        inp = F.pad(torch.cat([y, x_t], dim=1), pad, mode="replicate")
        t = F.pad(t.float(), pad, mode="replicate")  # float32: bf16 would round fractional times
        emb = self.time_mlp(time_features(t, self.time_pairs, self.T).to(inp.dtype))
        embs = [emb] + [F.avg_pool2d(emb, 2**i) for i in range(1, self.levels + 1)]
        hidden = self.inp(inp)
        skips = []
        for i, block in enumerate(self.down_blocks):
            hidden = block(hidden, embs[i])
            if i < self.levels:
                skips.append(hidden)
                hidden = self.downsample[i](hidden)
        hidden = self.mid(hidden, embs[self.levels])
        for j, (up, block) in enumerate(zip(self.upsample, self.up_blocks)):
            i = self.levels - 1 - j
            hidden = up(F.interpolate(hidden, scale_factor=2, mode="nearest"))
            hidden = block(torch.cat([hidden, skips[i]], dim=1), embs[i])
        out = self.out(F.silu(self.out_norm(hidden)))
        return out[:, :, :h, :w]


class Preconditioned(nn.Module):
    """EDM preconditioning (Karras et al. 2022, Table 1) around a UNet, behind the same ε̂ interface.

    With γ = γ_t and σ_d the data scale, the inner network F sees the state at unit scale and
    predicts a unit-scale correction:

        x̂_0 = c_skip x_t + c_out F(y, c_in x_t, t),
        c_in = 1/√(σ_d² + γ),  c_skip = σ_d²/(σ_d² + γ),  c_out = σ_d √γ/√(σ_d² + γ),

    returned as ``ε̂ = (x_t − x̂_0)/√γ = √γ x_t/(σ_d² + γ) − σ_d F/√(σ_d² + γ)`` (finite at γ = 0),
    so samplers and losses written for ε̂ work unchanged. Why: a plain ε-network must output
    ``(x_t − x_0)/√γ_t``, which at high noise means dividing its estimate of x_0 by √γ_T ≈ 2.2, and
    its ε-loss weighs errors in x_0 by only 1/γ_t there, so little teaches it to read x_0 from y.
    Trained with :meth:`loss_weight` (EDM's weighting), the loss is the plain MSE on F's target.

    Parameters
    ----------
    net : SVNRUNet
        The inner network F (its output is F, not ε̂).
    schedule : VESchedule
        Gives γ_t.
    sigma_data : float
        σ_d > 0, the scale of clean images (0.5, EDM's value for images in [-1, 1]).

    Examples
    --------
    >>> from denoiselab.svnr.schedule import DEFAULT_SCHEDULE
    >>> m = Preconditioned(SVNRUNet(3, base_width=8, levels=1), DEFAULT_SCHEDULE)
    >>> y = torch.rand(2, 3, 8, 8)
    >>> m(y, y, torch.tensor([0.0, 500.0])).shape
    torch.Size([2, 3, 8, 8])
    """

    def __init__(self, net: SVNRUNet, schedule: VESchedule, sigma_data: float = 0.5):
        super().__init__()
        if isinstance(sigma_data, bool) or not isinstance(sigma_data, (int, float)) or not 0 < sigma_data < math.inf:
            raise DenoiselabError(f"sigma_data={sigma_data!r} must be a positive number")
        self.net, self.schedule, self.sigma_data = net, schedule, float(sigma_data)
        self.channels = net.channels

    def config(self) -> dict:
        """The inner network's constructor arguments (see :meth:`SVNRUNet.config`)."""
        return self.net.config()

    def loss_weight(self, t: Tensor) -> Tensor:
        """``1 + γ_t/σ_d²``: the weight on the squared ε̂ error that makes it F's squared error."""
        return 1 + self.schedule.gamma(t.double()).float() / self.sigma_data**2

    def forward(self, y: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """ε̂ for states `x_t` conditioned on `y` at per-pixel times `t` (steps); shape of `y`."""
        t = self.net._check(y, x_t, t)
        g = self.schedule.gamma(t.double())
        s2 = self.sigma_data**2
        c_in = (1 / (s2 + g).sqrt()).to(x_t.dtype)
        f = self.net(y, c_in * x_t, t)
        a = (g.sqrt() / (s2 + g)).to(f.dtype)
        b = (self.sigma_data / (s2 + g).sqrt()).to(f.dtype)
        return a * x_t.to(f.dtype) - b * f
