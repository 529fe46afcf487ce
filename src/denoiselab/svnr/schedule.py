"""The variance-exploding schedule of SVNR, and its inverse: the per-pixel time map.

The forward chain adds noise without scaling the signal, ``x_t = x_0 + √γ_t · n``, with

    γ_t = λ · (1 − ᾱ_t),   ᾱ_t = ∏_{s ≤ t} (1 − β_s),   β linear from 1e-4 to 0.02 over T = 1000 steps,

λ = 5, so γ_0 = 0, γ_1 = λβ_1 = 5e-4 (std 0.022) and γ_T ≈ 5 (std 2.24). The table holds the
integer times 0..T; a fractional time t is read off by piecewise-linear interpolation, and
:meth:`VESchedule.time_map` inverts that interpolation exactly, so that ``γ(time_map(σ²)) = σ²``.
Because there is no signal scaling, an image with per-pixel noise variance σ²_p *is* a state of
the chain at the per-pixel time ``t*_p = γ⁻¹(σ²_p)`` ([reconstructed] from the SVNR paper).

Noise variances above γ_T (std above √5 ≈ 2.24 on the image scale, far outside any photograph)
raise :class:`DenoiselabError` by default; ``clamp=True`` clamps them to T with a RuntimeWarning.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from functools import cached_property

import torch
from torch import Tensor

from ..errors import DenoiselabError

__all__ = ["VESchedule", "DEFAULT_SCHEDULE", "gamma", "time_map"]


@dataclass(frozen=True)
class VESchedule:
    """A variance-exploding schedule ``γ_t = lam · (1 − ᾱ_t)`` tabulated at t = 0..T.

    Parameters
    ----------
    T : int
        Number of steps, >= 1 (1000).
    lam : float
        λ, the variance at t → ∞ (5); γ_T = λ(1 − ᾱ_T).
    beta_start, beta_end : float
        The DDPM linear β schedule ends, 0 < beta_start <= beta_end < 1 (1e-4, 0.02).
    form : {"svnr", "vp"}
        "svnr" (default): γ_t = λ(1 − ᾱ_t), SVNR's chain, which never needs more than the noise
        of a photograph. "vp": γ_t = λ(1 − ᾱ_t)/ᾱ_t, with λ = 1 the VE image of DDPM's
        variance-preserving chain (``x_t^VP = √ᾱ_t x_t``), γ_T ≈ 2.5e4 (std ≈ 157): the state at T is
        pure noise, what a sampler that starts from noise needs. With "svnr" the state at T still
        shows the image (std 2.24 against means near 0.3, visible over a whole crop), so a chain
        started from zero-mean noise begins off the training distribution.

    Examples
    --------
    >>> s = VESchedule()
    >>> round(float(s.table[1]), 6), round(float(s.gamma_max), 4)
    (0.0005, 4.9998)
    >>> round(float(s.gamma(torch.tensor(0.5))), 6)        # halfway between γ_0 = 0 and γ_1
    0.00025
    >>> round(VESchedule(lam=1.0, form="vp").gamma_max)
    24777
    """

    T: int = 1000
    lam: float = 5.0
    beta_start: float = 1e-4
    beta_end: float = 0.02
    form: str = "svnr"

    def __post_init__(self):
        if isinstance(self.T, bool) or not isinstance(self.T, int) or self.T < 1:
            raise DenoiselabError(f"T={self.T!r} must be a positive integer number of steps (1000)")
        if not (self.lam > 0 and math.isfinite(self.lam)):
            raise DenoiselabError(f"lam={self.lam!r} must be a positive number (5)")
        if not 0 < self.beta_start <= self.beta_end < 1:
            raise DenoiselabError(f"need 0 < beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}")
        if self.form not in ("svnr", "vp"):
            raise DenoiselabError(f"form={self.form!r} must be 'svnr' (γ = λ(1 − ᾱ)) or 'vp' (γ = λ(1 − ᾱ)/ᾱ)")

    @cached_property
    def table(self) -> Tensor:
        """γ_0..γ_T, float64, shape (T + 1,), strictly increasing from γ_0 = 0."""
        betas = torch.linspace(self.beta_start, self.beta_end, self.T, dtype=torch.float64)
        alpha_bar = torch.cumprod(1 - betas, 0)
        gamma = self.lam * (1 - alpha_bar) / (alpha_bar if self.form == "vp" else 1)
        return torch.cat([torch.zeros(1, dtype=torch.float64), gamma])

    @property
    def gamma_max(self) -> float:
        """γ_T, the largest variance the chain reaches."""
        return float(self.table[-1])

    def to_dict(self) -> dict:
        """The parameters, for a model card (``VESchedule(**d)`` rebuilds it)."""
        return asdict(self)

    def gamma(self, t: Tensor | float) -> Tensor:
        """γ at (fractional) times `t` in [0, T], piecewise linear between the integer steps.

        Parameters
        ----------
        t : Tensor or float
            Times in steps, any shape, 0 <= t <= T.

        Returns
        -------
        gamma : Tensor, shape of `t`, float64 (or `t`'s floating dtype), on `t`'s device
        """
        t = torch.as_tensor(t)
        out_dtype = t.dtype if t.is_floating_point() else torch.float64
        t64 = t.to(torch.float64)
        if t64.numel() and not (bool(torch.isfinite(t64).all()) and float(t64.min()) >= 0 and float(t64.max()) <= self.T):
            raise DenoiselabError(f"times must lie in [0, T={self.T}], got [{float(t64.min()):g}, {float(t64.max()):g}]")
        table = self.table.to(t.device)
        i = t64.floor().clamp(0, self.T - 1).long()
        frac = t64 - i
        return (table[i] + frac * (table[i + 1] - table[i])).to(out_dtype)

    def time_map(self, sigma2: Tensor, *, clamp: bool = False) -> Tensor:
        """Per-pixel time ``t* = γ⁻¹(σ²)``: the state of the chain that has the given noise variance.

        Inverts the piecewise-linear γ exactly. For several channels the pixel's time is the largest
        over channels (the noisiest channel decides; the other channels carry less noise than
        γ(t*) there).

        Parameters
        ----------
        sigma2 : Tensor, shape (B, C, H, W)
            Per-pixel noise variances on the image scale, >= 0 (std² on [0, 1] linear values).
        clamp : bool, optional
            What to do with σ² > γ_T: False (default) raises DenoiselabError; True clamps those
            pixels to t = T and warns (the chain then starts with less noise than the image has).

        Returns
        -------
        t_star : Tensor, shape (B, 1, H, W), `sigma2`'s floating dtype, in [0, T]

        Examples
        --------
        >>> s = VESchedule()
        >>> t = s.time_map(torch.full((1, 3, 1, 1), 0.04))           # σ = 0.2
        >>> round(float(t), 2), round(float(s.gamma(t)), 6)
        (24.23, 0.04)
        """
        if not isinstance(sigma2, Tensor) or sigma2.ndim != 4:
            shape = tuple(sigma2.shape) if isinstance(sigma2, Tensor) else type(sigma2).__name__
            raise DenoiselabError(f"sigma2 must be a (B, C, H, W) tensor of noise variances, got {shape}")
        s = sigma2.to(torch.float64).amax(dim=1, keepdim=True)
        if s.numel() and not bool(torch.isfinite(s).all()):
            raise DenoiselabError("sigma2 holds NaN or infinite values; noise variances must be finite")
        if s.numel() and float(s.min()) < 0:
            raise DenoiselabError(f"sigma2 must be >= 0 (noise variances), got a minimum of {float(s.min()):g}")
        g_max = self.gamma_max
        if s.numel() and float(s.max()) > g_max * (1 + 1e-6):  # float32 rounding of γ_T is not an overflow
            msg = (f"noise variance up to {float(s.max()):g} exceeds the schedule's largest γ_T = {g_max:.4g} "
                   f"(std {math.sqrt(g_max):.3g} on the image scale)")
            if not clamp:
                raise DenoiselabError(msg + "; check the noise parameters, or pass clamp=True to start those pixels at T")
            warnings.warn(msg + f"; those pixels start at t = T = {self.T} with less noise than they have",
                          RuntimeWarning, stacklevel=2)
        s = s.clamp(max=g_max)
        table = self.table.to(s.device)
        hi = torch.searchsorted(table, s.contiguous(), right=False).clamp(1, self.T)  # table[hi-1] < s <= table[hi]
        lo_val, hi_val = table[hi - 1], table[hi]
        t = (hi - 1) + (s - lo_val) / (hi_val - lo_val)
        t = torch.where(s > 0, t, torch.zeros_like(t))
        return t.to(sigma2.dtype if sigma2.is_floating_point() else torch.float64)


DEFAULT_SCHEDULE = VESchedule()


def gamma(t: Tensor | float, *, schedule: VESchedule | None = None) -> Tensor:
    """γ(t) of `schedule` (default: T = 1000, λ = 5) at fractional times; see :meth:`VESchedule.gamma`.

    Examples
    --------
    >>> [round(float(g), 5) for g in gamma(torch.tensor([0.0, 1.0, 10.0]))]
    [0.0, 0.0005, 0.00947]
    """
    return (schedule or DEFAULT_SCHEDULE).gamma(t)


def time_map(sigma2: Tensor, *, schedule: VESchedule | None = None, clamp: bool = False) -> Tensor:
    """Per-pixel time γ⁻¹(σ²), max over channels, shape (B, 1, H, W); see :meth:`VESchedule.time_map`.

    Examples
    --------
    >>> t = time_map(torch.tensor([0.0, 1e-6, 5e-4, 0.0225]).view(1, 1, 2, 2))
    >>> [round(v, 3) for v in t.flatten().tolist()]
    [0.0, 0.002, 1.0, 17.229]
    """
    return (schedule or DEFAULT_SCHEDULE).time_map(sigma2, clamp=clamp)
