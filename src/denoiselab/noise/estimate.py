"""Noise-level estimation from a single noisy image.

Three estimators, all vectorised over the batch, the channels and the patches (no Python loop
over patches), device-agnostic except the wavelet one:

- :func:`estimate_sigma` ``method="pca"``: the weak-texture-patch PCA estimator of Liu, Tanaka
  and Okutomi (2013) [1]_ for additive white Gaussian noise (AWGN).
- :func:`estimate_sigma` ``method="mad"``: Donoho's median absolute deviation of the finest
  diagonal wavelet sub-band [3]_ (PyWavelets, on the CPU).
- :func:`estimate_noise_function`: the signal-dependent estimator of Liu, Tanaka and Okutomi
  (2014) [2]_, optionally on pixel-shuffled sub-images as ScoreDVI does [4]_ (Sec. 3.5), and
  :func:`estimate_noise_level_pd`, the δ/255 that ScoreDVI's λ(y) uses.

Shared machinery (both Liu et al. papers)
-----------------------------------------
All overlapping ``N x N`` patches are taken (stride 1). The *texture strength* of a patch is
ξ = tr(GᵀG), the trace of its gradient covariance matrix, where G holds the horizontal and
vertical derivatives (kernel ``[-1/2, 0, 1/2]``, "valid" inside the patch) [1]_.
It is computed for every patch at once as two box sums of squared image derivatives.
For a patch of pure Gaussian noise of variance σ², ξ = nᵀ(D_hᵀD_h + D_vᵀD_v)n is approximated by
a Gamma distribution with shape r/2 and scale 2σ²·tr(D_hᵀD_h + D_vᵀD_v)/r (r: rank of that
matrix, 45 for N = 7, as in the authors' code), so a patch is "weak-textured" when ξ < τ = σ²·F⁻¹(δ; r/2, 2tr/r) with
confidence δ = 1 − 10⁻⁶ [1]_. The noise variance is the smallest eigenvalue of the
covariance of the weak-textured patches, and selection and estimate are iterated [1]_ (Alg. 1).

Deviations from the papers and the authors' code (deliberate)
-------------------------------------------------------------
- Patches have their own mean removed before any second moment is formed. The noise
  variance is then measured in the subspace orthogonal to the constant patch (the DC
  direction never carries the smallest eigenvalue of natural-image patches anyway); this
  keeps float32 accumulation accurate and stops the patch mean leaking into the projection
  ``vᵀy`` of the signal-dependent estimator.
- [2]_ fits its generalised model σ²(x) = σ_u²·x^(2γ) + σ_w² with Powell's method (seconds per
  sub-image). Here γ is fixed (default 0.5, the Poisson–Gaussian model σ²(x) = a·x + b); the
  model is then linear in (a, b) and its maximum-likelihood estimate under [2]_'s Gaussian
  likelihood is found in closed form by iteratively reweighted least squares (Fisher
  scoring, weights 1/σ²(μ)²), with a, b >= 0 enforced by a two-variable active set.
- With pixel-shuffle, one noise function is fitted per image and channel, pooling the weak
  patches of all sub-images (they sample the same sensor), instead of one per sub-image.
- The PCA estimator iterates selection and estimate until σ² changes by less than 0.01 %
  (at most 10 rounds) rather than a fixed 3 rounds.
- Each round only adds and removes the patches whose selection changed from the running
  first and second moments (exact up to round-off), so the rounds cost little beyond the
  single pass that builds the patch matrix.
- Variances below 1e-14 (std 1e-7: float32 round-off on [0, 1]) are reported as 0, so a
  constant image gives exactly 0.
- The MAD estimator uses PyWavelets and so runs on the CPU (the result is moved back).

References
----------
.. [1] X. Liu, M. Tanaka, M. Okutomi, "Single-image noise level estimation for blind
   denoising", IEEE Trans. Image Process. 22(12):5226–5237, 2013. doi:10.1109/TIP.2013.2283400
.. [2] X. Liu, M. Tanaka, M. Okutomi, "Practical signal-dependent noise parameter estimation
   from a single noisy image", IEEE Trans. Image Process. 23(10):4361–4371, 2014.
   doi:10.1109/TIP.2014.2347204
.. [3] D. L. Donoho, I. M. Johnstone, "Ideal spatial adaptation by wavelet shrinkage",
   Biometrika 81(3):425–455, 1994. doi:10.1093/biomet/81.3.425
.. [4] J. Cheng, T. Liu, S. Tan, "Score priors guided deep variational inference for
   unsupervised real-world single image denoising", ICCV 2023.
.. [5] A. Foi, M. Trimeche, V. Katkovnik, K. Egiazarian, "Practical Poissonian-Gaussian noise
   modeling and fitting for single-image raw-data", IEEE Trans. Image Process.
   17(10):1737–1754, 2008. doi:10.1109/TIP.2008.2001399

The papers' full texts were not at hand while this was written (offline), so equation and
section numbers could not be checked: code comments cite [1]'s Algorithm 1 (the iterative
select-and-estimate loop) and otherwise name the step (texture strength, Gamma threshold,
noise axis, MLE fit).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import DenoiselabError
from ..pixel_shuffle import pd_down

__all__ = [
    "NoiseEstimate",
    "RealNoiseEstimate",
    "estimate_real_noise",
    "estimate_sigma",
    "estimate_noise_function",
    "estimate_noise_level_pd",
    "estimate_noise_covariance",
    "noise_covariance",
    "colour_whitening",
]

_CONFIDENCE = 1.0 - 1e-6
_MAX_PCA_ITER = 10
_ROUND_OFF_VAR = 1e-14  # variances below this (std 1e-7, float32 round-off on [0, 1]) are 0
_MIN_PATCHES_PER_DIM = 40  # fewer patches than this × n² and the smallest eigenvalue is biased low
_MAX_PATCH_ELEMENTS = 1 << 25  # patch-matrix elements held at once per plane group (128 MiB float32)


# --------------------------------------------------------------------------- validation


def _check_images(y: Tensor, patch_size: int, *, stride: int = 1) -> Tensor:
    if not isinstance(y, Tensor) or y.ndim != 4:
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise DenoiselabError(f"y has shape {shape}; expected a 4-D tensor (B, C, H, W)")
    if not y.is_floating_point():
        raise DenoiselabError(f"y has dtype {y.dtype}; expected float in [0, 1], e.g. y.float() / 255")
    if y.numel() == 0:
        raise DenoiselabError(f"y has shape {tuple(y.shape)} with no pixels; pass at least one image")
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 3:
        raise DenoiselabError(f"patch_size={patch_size!r} is not an integer >= 3; the default is 7")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise DenoiselabError(f"stride={stride!r} is not a positive integer; ScoreDVI uses stride=4")
    h, w = y.shape[-2:]
    if h // stride < patch_size or w // stride < patch_size:
        raise DenoiselabError(
            f"image size {h}x{w} is too small for patch_size={patch_size} at stride={stride}; "
            f"need at least {patch_size * stride}x{patch_size * stride} or a smaller patch_size/stride"
        )
    return y if y.dtype in (torch.float32, torch.float64) else y.float()


# --------------------------------------------------------------------------- patch machinery


@functools.lru_cache(maxsize=16)
def _texture_threshold(patch_size: int, confidence: float) -> float:
    """τ/σ²: the δ-quantile of the Gamma law of ξ for unit-variance noise ([1], Gamma threshold)."""
    from scipy.special import gammaincinv

    n = patch_size
    d = torch.zeros(2 * n * (n - 2), n, n, dtype=torch.float64)
    k = 0
    for i in range(n):  # rows of D_h and D_v: one per "valid" derivative position
        for j in range(n - 2):
            d[k, i, j], d[k, i, j + 2] = -0.5, 0.5
            d[k + 1, j, i], d[k + 1, j + 2, i] = -0.5, 0.5
            k += 2
    dmat = d.reshape(k, n * n)
    dd = dmat.T @ dmat  # D_hᵀD_h + D_vᵀD_v
    rank = int(torch.linalg.matrix_rank(dd))
    trace = float(torch.trace(dd))
    # ξ ~ Gamma(shape r/2, scale 2·σ²·tr/r) for noise-only patches ([1], Gamma threshold)
    return float(gammaincinv(rank / 2.0, confidence)) * 2.0 * trace / rank


def _patch_grid_step(n_planes: int, h: int, w: int, n: int) -> int:
    """Step of the patch grid: 1 (every overlapping patch) unless that would exceed the memory cap.

    Very large images use patches on a sparser grid (Liu et al.'s ``decim`` option), which
    still leaves about ``_MAX_PATCH_ELEMENTS / n²`` patches per plane group.
    """
    total = n_planes * (h - n + 1) * (w - n + 1) * n * n
    return max(1, math.ceil(math.sqrt(total / _MAX_PATCH_ELEMENTS)))


def _patch_maps(planes: Tensor, n: int, q: int) -> tuple[Tensor, Tensor]:
    """Texture strength ξ = tr(GᵀG) ([1], texture strength) and mean μ of the n×n patches on a step-q grid.

    (P, H, W) -> two (P, ho, wo) maps, ho = (H - n) // q + 1. ξ is two box sums of squared
    central differences ``[-1/2, 0, 1/2]`` that stay inside the patch.
    """
    gh = (planes[:, :, 2:] - planes[:, :, :-2]) * 0.5
    gv = (planes[:, 2:, :] - planes[:, :-2, :]) * 0.5
    area = n * (n - 2)
    xh = F.avg_pool2d((gh * gh).unsqueeze(1), (n, n - 2), stride=q) * area
    xv = F.avg_pool2d((gv * gv).unsqueeze(1), (n - 2, n), stride=q) * area
    mu = F.avg_pool2d(planes.unsqueeze(1), n, stride=q)
    return (xh + xv).squeeze(1), mu.squeeze(1)


def _centered_patches(planes: Tensor, mu: Tensor, n: int, q: int) -> Tensor:
    """Patches minus their own mean `mu`: (P, H, W) -> (P, L, n²), row-major, one copy."""
    p = planes.shape[0]
    ho, wo = mu.shape[-2:]
    x = planes.unfold(1, n, q).unfold(2, n, q).reshape(p, ho * wo, n * n)  # (P, ho, wo, n, n) view -> copy
    return x.sub_(mu.reshape(p, ho * wo, 1))


def _min_eig_off_dc(mat: Tensor, *, vectors: bool = False):
    """Smallest eigenvalue (and unit eigenvector) of symmetric (G, d, d) `mat` on 1^⊥.

    The constant direction is pushed to the top of the spectrum; mean-removed patches have
    no component along it, so the result is the smallest eigenpair orthogonal to it.
    """
    d = mat.shape[-1]
    ones = torch.full((d, d), 1.0 / d, dtype=mat.dtype, device=mat.device)
    trace = mat.diagonal(dim1=-2, dim2=-1).sum(-1)
    big = torch.where(trace > 0, 2.0 * trace, torch.ones_like(trace))[:, None, None]
    shifted = mat + big * ones
    if vectors:
        evals, evecs = torch.linalg.eigh(shifted)
    else:
        evals, evecs = torch.linalg.eigvalsh(shifted), None
    # eigenvalues within round-off of zero (a constant image) are exactly zero
    low = torch.where(evals[:, 0] <= 1e-10 * big[:, 0, 0], torch.zeros_like(evals[:, 0]), evals[:, 0])
    return (low, evecs[:, :, 0]) if vectors else low


def _warn_few_patches(n_patches: int, n: int, where: str) -> None:
    if n_patches < _MIN_PATCHES_PER_DIM * n * n:
        warnings.warn(
            f"{where}: only {n_patches} patches of {n}x{n} per channel; the noise estimate is biased low "
            f"(smallest sample eigenvalue); use a larger image, a smaller stride or a smaller patch_size",
            stacklevel=3,
        )


# --------------------------------------------------------------------------- AWGN: PCA / MAD


def _sigma_pca_plane(plane: Tensor, n: int) -> Tensor:
    """Liu et al. 2013, Alg. 1, on one (H, W) plane: noise variance, float64 scalar."""
    plane = (plane - plane.mean())[None]  # a constant shift changes nothing but round-off
    q = _patch_grid_step(1, plane.shape[-2], plane.shape[-1], n)
    xi, mu = _patch_maps(plane, n, q)
    x = _centered_patches(plane, mu, n, q)[0]  # (L, d)
    return _pca_select(x, xi.reshape(-1).double(), n)


def _pca_select(x: Tensor, xi: Tensor, n: int, *, unbias: bool = False,
                return_reliable: bool = False) -> Tensor | tuple[Tensor, bool]:
    """Liu et al. 2013, Alg. 1, on mean-removed patches `x` (L, n²) with texture strengths `xi` (L,).

    One pass builds the moments of all patches; each iteration then only adds and removes the
    patches whose selection changed (see :func:`_update_moments`). Returns the noise variance,
    a float64 scalar. With `unbias`, the smallest sample eigenvalue is divided by the
    Marchenko-Pastur lower edge (1 - sqrt(p/m))² (p = n² - 1 dimensions off the mean, m kept
    patches), its expected shortfall for pure noise: on the plain estimator this matches the
    measured bias (-1.4 % in σ at 512², -2.8 % at 256², -5.8 % at 128², -12 % at 64²).
    With `return_reliable`, also whether any patch looked flat: False when, at the level of all
    patches together, too few pass the weak-texture test to start the selection (the
    returned variance is then measured on texture, an upper bound of the noise's). A selection
    that starts and later runs dry (signal-dependent noise within the class) still counts.
    """
    tau0 = _texture_threshold(n, _CONFIDENCE)
    reliable = True
    d = n * n
    mask = torch.ones_like(xi, dtype=torch.bool)
    moments = (x.sum(0).double(), (x.T @ x).double())

    def covariance_min_eig(moments: tuple[Tensor, Tensor], count: int) -> Tensor:
        mean = moments[0] / count
        cov = moments[1] / count - torch.outer(mean, mean)  # PCA of the selected patches ([1], Alg. 1)
        return _min_eig_off_dc(cov[None])[0]

    var = covariance_min_eig(moments, x.shape[0])  # initial estimate from all patches ([1], Alg. 1)
    for step in range(_MAX_PCA_ITER):
        new_mask = xi < tau0 * var  # weak texture: ξ < τ = σ²·F⁻¹(δ; r/2, 2tr/r) ([1], Alg. 1)
        count = int(new_mask.sum())
        if count <= 2 * d:  # too few patches for a d×d covariance: keep the last estimate
            reliable = step > 0
            break
        moments = _update_moments(moments, x, mask, new_mask)
        mask = new_mask
        new_var = covariance_min_eig(moments, count)
        converged = bool((new_var - var).abs() <= 1e-4 * var)
        var = new_var
        if converged:
            break
    if unbias:
        ratio = math.sqrt((d - 1) / max(int(mask.sum()), d))
        var = var / (1.0 - min(ratio, 0.5)) ** 2  # Marchenko-Pastur lower edge, capped at 4x
    return (var, reliable) if return_reliable else var


def _sigma_mad(y: Tensor) -> Tensor:
    """Donoho's MAD of the finest diagonal db2 sub-band: noise variance per (B, C), float64."""
    try:
        import pywt
    except ImportError as err:  # pragma: no cover - PyWavelets is a dependency here
        raise DenoiselabError("method='mad' needs PyWavelets; install it with pip install PyWavelets") from err
    import numpy as np

    arr = y.detach().to("cpu", torch.float64).numpy()
    _, (_, _, cd) = pywt.dwt2(arr, "db2", axes=(-2, -1))
    b, c = arr.shape[:2]
    med = np.median(np.abs(cd.reshape(b, c, -1)), axis=-1)
    scale = np.abs(arr).reshape(b, c, -1).max(axis=-1)
    med = np.where(med <= 1e-9 * scale, 0.0, med)  # round-off of a constant image is exactly 0
    sigma = torch.from_numpy(med / 0.6744897501960817)  # Φ⁻¹(3/4): MAD -> std for Gaussians [3]
    return (sigma * sigma).to(y.device)


def estimate_sigma(y: Tensor, *, method: str = "pca", patch_size: int = 7) -> Tensor:
    """Estimate the standard deviation of additive white Gaussian noise, one per image.

    Parameters
    ----------
    y : Tensor, shape (B, C, H, W)
        Noisy images, float, pixel values nominally in [0, 1]; gray (C = 1), RGB (C = 3) or
        any channel count. Any device (``"mad"`` computes on the CPU).
    method : {"pca", "mad"}, optional
        ``"pca"`` (default): Liu et al. 2013 — iterative selection of weak-textured patches
        (gradient-covariance trace below a Gamma-quantile threshold) and the smallest
        eigenvalue of their covariance, iterated to convergence (at most 10 rounds).
        ``"mad"``: median absolute deviation of the finest diagonal ``db2`` wavelet
        coefficients divided by 0.6745 (Donoho); fast but biased upwards on textured images.
    patch_size : int, optional
        Side ``N`` of the square patches for ``"pca"``, in pixels (>= 3; default 7).

    Returns
    -------
    sigma : Tensor, shape (B,)
        Noise std on the [0, 1] scale, same dtype and device as `y`. For several channels
        the channels are estimated separately and pooled as ``sqrt(mean_c sigma_c**2)``
        (noise assumed equal in all channels). A constant image gives exactly 0.

    Raises
    ------
    DenoiselabError
        If `y` is not a 4-D float tensor, `method` is unknown, or ``H`` or ``W`` is smaller
        than `patch_size` (than 3 for ``"mad"``).

    Warns
    -----
    UserWarning
        For ``"pca"`` on images with fewer than 40·N² patches per channel (about 50×50 for
        N = 7): the smallest sample eigenvalue is then biased low (about −45 % in σ at 32×32).

    Notes
    -----
    Cost for ``"pca"``: one copy of all ``N x N`` patches and one ``(N², HW) x (HW, N²)``
    product per channel; each iteration then only adds or removes the patches whose
    selection changed. About 0.2 s CPU for a 481×321 RGB image and 0.5 s for 512×512 RGB on
    one core (``benchmarks/noise_estimation.py``). The smallest eigenvalue of a finite
    sample covariance is biased low: about −1 % in σ at 512×512, −2.5 % at 256×256, −5 % at
    128×128 and −11 % at 64×64 on pure noise. Planes above about 680 k patches use a sparser
    patch grid.

    References
    ----------
    See the module docstring: [1]_ Liu et al. 2013 (doi:10.1109/TIP.2013.2283400), [3]_
    Donoho & Johnstone 1994 (doi:10.1093/biomet/81.3.425).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.linspace(0.2, 0.8, 128).repeat(1, 1, 128, 1)
    >>> y = x + 0.1 * torch.randn(1, 1, 128, 128, generator=g)
    >>> bool(abs(estimate_sigma(y).item() - 0.1) < 0.01)
    True
    """
    methods = ("pca", "mad")
    if method not in methods:
        raise DenoiselabError(f"method={method!r} is not known; use one of {', '.join(methods)}")
    y = _check_images(y, patch_size if method == "pca" else 3)
    b, c, h, w = y.shape
    with torch.no_grad():
        if method == "pca":
            _warn_few_patches((h - patch_size + 1) * (w - patch_size + 1), patch_size, "estimate_sigma")
            planes = y.detach().reshape(b * c, h, w)
            var = torch.stack([_sigma_pca_plane(plane, patch_size) for plane in planes]).reshape(b, c)
        else:
            var = _sigma_mad(y)
        var = torch.where(var < _ROUND_OFF_VAR, torch.zeros_like(var), var)
        return var.mean(dim=1).sqrt().to(y.dtype)


# --------------------------------------------------------------------------- signal-dependent


@dataclass(frozen=True, eq=False)
class NoiseEstimate:
    """Result of :func:`estimate_noise_function`: a signal-dependent noise model per image.

    Model: the noise variance at clean intensity ``x`` (on [0, 1]) is
    ``σ²(x) = a · x^(2γ) + b`` (Liu et al. 2014's σ_u² · x^(2γ) + σ_w² with a = σ_u²,
    b = σ_w²). With the default γ = 0.5 it is the Poisson–Gaussian model ``σ²(x) = a·x + b``.

    Attributes
    ----------
    params : Tensor, shape (B, C, 2)
        ``(a, b)`` per image and channel, both >= 0, in variance units of the [0, 1] scale
        (a: per unit intensity). float64.
    gamma : float
        The exponent γ the model was fitted with (0.5 for Poisson–Gaussian).
    sigma : Tensor, shape (B,)
        Mean noise std ``σ(μ)`` of the fitted model over the final weak-texture patches
        (μ: patch mean) of all sub-images and channels, [0, 1] scale, dtype of the input.
    delta255 : Tensor, shape (B,), int64
        ScoreDVI's δ: ``floor(255 · sqrt(mean over sub-images and channels of the mean of the
        per-patch variance estimates (vᵀy)² over the final weak-texture patches)))``.
    n_patches : Tensor, shape (B,), int64
        Number of weak-texture patches that were kept, over all sub-images and channels.
    """

    params: Tensor
    gamma: float
    sigma: Tensor
    delta255: Tensor
    n_patches: Tensor

    def variance(self, x: Tensor) -> Tensor:
        """Noise variance ``σ²(x)`` for intensities `x`, e.g. a sigma map via ``.sqrt()``.

        Parameters
        ----------
        x : Tensor, shape (B, C, H, W)
            Intensities on [0, 1] (clean or denoised image; the noisy image is a usable
            proxy). Values below 0 are treated as 0.

        Returns
        -------
        var : Tensor, shape (B, C, H, W)
            Per-pixel noise variance on the [0, 1] scale, same dtype and device as `x`.

        Raises
        ------
        DenoiselabError
            If `x` is not 4-D or its batch and channel sizes differ from `params`.
        """
        b, c = self.params.shape[:2]
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[0] != b or x.shape[1] != c:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise DenoiselabError(f"x has shape {shape}; expected ({b}, {c}, H, W) to match the estimate")
        p = self.params.to(device=x.device, dtype=x.dtype)
        a, bb = p[..., 0, None, None], p[..., 1, None, None]
        return a * x.clamp_min(0.0).pow(2.0 * self.gamma) + bb


def _fit_variance_model(t: Tensor, s: Tensor, *, start: Tensor | None = None, n_irls: int = 4,
                        weights: Tensor | None = None) -> Tensor:
    """MLE of (a, b) >= 0 in s ~ σ²·χ²₁ with σ² = a·t + b, t = μ^(2γ), over the kept patches.

    `t`, `s`: (K,) float64. Fisher scoring of [2]'s Gaussian likelihood
    Σ s/(2σ²) + log(σ²)/2, which is weighted least squares of s on (t, 1) with weights
    1/σ²(t)², re-weighted `n_irls` times from `start` (or from an unweighted fit); each step
    is a closed-form 2×2 solve with a two-variable active set for a, b >= 0. `weights` (K,)
    multiply those of the points. Returns (2,).
    """
    floor = 1e-3 * s.mean() + 1e-20  # guards the 1/σ⁴ weights where σ² -> 0
    cols = torch.stack([torch.ones_like(t), t, t * t, s, t * s])  # (5, K): one pass per step
    if weights is not None:
        cols = cols * weights
    a, b = (start[0], start[1]) if start is not None else (None, None)
    for _ in range(n_irls + (start is None)):
        if a is None:
            sums = cols.sum(1)
        else:
            v = (a * t + b).clamp_min(floor)
            sums = cols @ (v * v).reciprocal()
        sw, st, stt, ss, sts = sums.unbind()
        det = sw * stt - st * st
        if det > 1e-12 * sw * stt:
            a = (sw * sts - st * ss) / det
            b = (stt * ss - st * sts) / det
            if b < 0:
                a, b = sts / stt, torch.zeros_like(b)  # b = 0
            elif a < 0:
                a, b = torch.zeros_like(a), ss / sw  # a = 0
        else:  # μ^(2γ) (nearly) constant over the kept patches: a and b not separable
            a, b = torch.zeros_like(sw), ss / sw
    return torch.stack([a.clamp_min(0.0), b.clamp_min(0.0)])


def estimate_noise_function(
    y: Tensor,
    *,
    stride: int = 4,
    patch_size: int = 7,
    n_iter: int = 3,
    gamma: float = 0.5,
    confidence: float = _CONFIDENCE,
) -> NoiseEstimate:
    """Estimate a signal-dependent noise model σ²(x) from single images (Liu et al. 2014).

    Runs on the ``stride × stride`` pixel-shuffled sub-images of `y` (see
    :func:`denoiselab.pixel_shuffle.pd_down`), as ScoreDVI does to whiten spatially
    correlated real noise; ``stride=1`` uses the images themselves.

    Algorithm, per image and channel, all sub-images pooled ([2]_):

    1. every N×N patch gets its mean μ, texture strength ξ (as in [1]_) and, once the
       noise axis v is known, the local noise-variance estimate s = (vᵀy)²;
    2. v is the unit eigenvector of the smallest eigenvalue of the second-moment matrix
       of the (mean-removed) patches; (a, b) of σ²(μ) = a·μ^(2γ) + b are the
       maximum-likelihood fit to the pairs (μ, s) (closed-form IRLS, replacing Powell);
    3. the initial fit uses all patches; then `n_iter` times: keep the patches with
       ξ < σ²(μ)·F⁻¹(δ; r/2, 2tr/r), recompute v and s on them and refit.

    Parameters
    ----------
    y : Tensor, shape (B, C, H, W)
        Noisy images, float, pixel values nominally in [0, 1]; any device.
    stride : int, optional
        Pixel-shuffle stride ``s`` (>= 1, default 4 as in ScoreDVI); ``1`` disables PD.
    patch_size : int, optional
        Side ``N`` of the square patches, in pixels (>= 3, default 7).
    n_iter : int, optional
        Selection/refit rounds after the initial fit (default 3, as ScoreDVI).
    gamma : float, optional
        Exponent γ of the model, fixed (default 0.5: Poisson–Gaussian ``a·x + b``;
        0 makes it signal-independent: then a = 0 and b is the noise variance).
    confidence : float, optional
        Confidence δ of the weak-texture threshold (default 1 − 1e-6).

    Returns
    -------
    estimate : NoiseEstimate
        ``params`` (B, C, 2) = (a, b), ``sigma`` (B,), ``delta255`` (B,) int64,
        ``n_patches`` (B,) and ``variance(x)`` for a per-pixel variance map.

    Raises
    ------
    DenoiselabError
        If `y` is not a 4-D float tensor, an option is out of range, or the sub-images
        (``H // stride`` × ``W // stride``) are smaller than `patch_size`.

    Warns
    -----
    UserWarning
        When the sub-images of a channel hold fewer than 40·N² patches in all (e.g. inputs
        below about 100×100 at stride 4): the smallest sample eigenvalue, and with it the
        estimate, is then biased low (at 32×32 and stride 4 there are only 64 patches per
        channel and σ comes out several times too small).

    Notes
    -----
    For white noise PD changes nothing statistically, but each sub-image has ``stride²``
    times fewer pixels, and on natural images the sub-images are more textured (aliasing),
    so fewer truly flat patches exist and the estimate is biased *up* at low noise (see the
    benchmark: CBSD68, AWGN). The weak patches of all sub-images are pooled for one fit per
    channel. Cost: one copy of all patches and one ``(N², n) x (n, N²)`` product per channel,
    plus small updates per round; about 0.3 s CPU for a 481×321 RGB image and 0.75 s for
    512×512 RGB on one core (``benchmarks/noise_estimation.py``).
    Saturated regions (clipped at 0 or 1) have less noise than the model says and bias
    ``a`` down; no attempt is made to exclude them.

    References
    ----------
    See the module docstring: [2]_ Liu et al. 2014 (doi:10.1109/TIP.2014.2347204),
    [1]_ Liu et al. 2013, [4]_ Cheng et al. 2023 (Sec. 3.5).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.linspace(0.0, 1.0, 256).repeat(1, 1, 256, 1)
    >>> y = x + (0.01 * x + 0.0004).sqrt() * torch.randn(1, 1, 256, 256, generator=g)
    >>> est = estimate_noise_function(y, stride=1)
    >>> a, b = est.params[0, 0].tolist()
    >>> bool(abs(a - 0.01) < 0.002 and abs(b - 0.0004) < 0.0002)
    True
    """
    y = _check_images(y, patch_size, stride=stride)
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
        raise DenoiselabError(f"n_iter={n_iter!r} is not an integer >= 0; ScoreDVI uses 3")
    if not (isinstance(gamma, (int, float)) and 0.0 <= gamma <= 2.0):
        raise DenoiselabError(f"gamma={gamma!r} is outside [0, 2]; use 0.5 for Poisson-Gaussian noise")
    if not (isinstance(confidence, float) and 0.5 < confidence < 1.0):
        raise DenoiselabError(f"confidence={confidence!r} is not in (0.5, 1); the default is 1 - 1e-6")
    n = patch_size
    b, c = y.shape[:2]
    s2 = stride * stride
    with torch.no_grad():
        sub = pd_down(y.detach(), stride)  # (B·S, C, h, w), S = stride²
        h, w = sub.shape[-2:]
        # group (image, channel) owns the S sub-image planes of that channel
        planes = sub.reshape(b, s2, c, h, w).transpose(1, 2).reshape(b * c, s2, h, w)
        tau0 = _texture_threshold(n, float(confidence))
        q = _patch_grid_step(s2, h, w, n)
        _warn_few_patches(s2 * (h - n + 1) * (w - n + 1), n, "estimate_noise_function")
        params, mean_var, have, std_sum, kept = [], [], [], [], []
        for group in planes:  # loop over (image, channel); everything inside is vectorised
            group_params, s_mean, s_have, g_std, g_kept = _noise_function_group(
                group, n, q, n_iter, float(gamma), tau0
            )
            params.append(group_params)
            mean_var.append(s_mean)
            have.append(s_have)
            std_sum.append(g_std)
            kept.append(g_kept)
        params = torch.stack(params).reshape(b, c, 2)
        mean_var = torch.stack(mean_var).reshape(b, c * s2)
        have = torch.stack(have).reshape(b, c * s2)
        mean_var = (mean_var * have).sum(1) / have.sum(1).clamp_min(1.0)
        # δ = ⌊255·√(mean over sub-images and channels of the variance estimates)⌋ (ScoreDVI,
        # Sec. 3.5); the tiny epsilon only absorbs float round-off just below an integer
        delta255 = torch.floor(255.0 * mean_var.sqrt() + 1e-9).to(torch.int64)
        kept = torch.stack(kept).reshape(b, c).sum(1)
        sigma = torch.stack(std_sum).reshape(b, c).sum(1) / kept.clamp_min(1.0)
        return NoiseEstimate(
            params=params,
            gamma=float(gamma),
            sigma=sigma.to(y.dtype),
            delta255=delta255,
            n_patches=kept.to(torch.int64),
        )


def _update_moments(moments: tuple[Tensor, Tensor], x: Tensor, old: Tensor, new: Tensor) -> tuple[Tensor, Tensor]:
    """(Σ x̃, Σ x̃x̃ᵀ) over the patches in `new` from those over `old`, in float64.

    Only the patches that differ are touched (or the new set directly when it is smaller),
    so an iteration that changes the selection a little costs little: no pass over all patches.
    """

    def sums(rows: Tensor) -> tuple[Tensor, Tensor]:
        idx = rows.nonzero().squeeze(1)
        part = x.index_select(0, idx)
        return part.sum(0).double(), (part.T @ part).double()

    added, removed = new & ~old, old & ~new
    if int(new.sum()) <= int(added.sum()) + int(removed.sum()):
        return sums(new)
    f_add, s_add = sums(added)
    f_rem, s_rem = sums(removed)
    return moments[0] + f_add - f_rem, moments[1] + s_add - s_rem


def _noise_function_group(planes: Tensor, n: int, q: int, n_iter: int, gamma: float, tau0: float):
    """Liu et al. 2014 on the (S, h, w) sub-image planes of one image channel.

    Returns the fitted (a, b) (2,), the mean variance estimate per sub-image (S,), whether a
    sub-image kept any patch (S,), the sum of the model std over kept patches and their count.
    """
    s2 = planes.shape[0]
    d = n * n
    xi, mu = _patch_maps(planes, n, q)  # [1] texture strength; μ on the original intensity scale
    shifted = planes - planes.mean()  # a constant shift changes no centred patch, only round-off
    x = _centered_patches(shifted, mu - planes.mean(), n, q).reshape(-1, d)  # (S·L, d)
    xi, mu = xi.reshape(-1).double(), mu.reshape(-1).double()
    t = mu.clamp_min(0.0).pow(2.0 * gamma)  # μ^(2γ), the regressor of the model
    mask = torch.ones_like(xi, dtype=torch.bool)  # initial fit: all patches ([2])
    moments = (x.sum(0).double(), (x.T @ x).double())  # over the current selection, updated by differences
    params = s_local = None
    for it in range(n_iter + 1):
        if it > 0:
            new_mask = xi < tau0 * (params[0] * t + params[1])  # weak texture under σ²(μ) ([2]; [1] Gamma threshold)
            if int(new_mask.sum()) <= d:  # too few patches for a d×d moment matrix: keep the last fit
                break
            moments = _update_moments(moments, x, mask, new_mask)
            mask = new_mask
        count = int(mask.sum())
        _, v = _min_eig_off_dc(moments[1][None] / count, vectors=True)  # noise axis: smallest eigenvector ([2])
        proj = (x @ v[0].to(x.dtype))[mask].double()  # vᵀy; v ⟂ 1, so the patch mean drops out
        s_local = proj * proj  # local noise-variance estimates of the kept patches ([2])
        params = _fit_variance_model(t[mask], s_local, start=params)  # MLE ([2])
        params = torch.where(params < _ROUND_OFF_VAR, torch.zeros_like(params), params)
    full = torch.zeros_like(xi)
    full[mask] = s_local
    s_local = full
    m = mask.reshape(s2, -1).double()
    cnt = m.sum(1)
    s_mean = (s_local.reshape(s2, -1) * m).sum(1) / cnt.clamp_min(1.0)
    s_mean = torch.where(s_mean < _ROUND_OFF_VAR, torch.zeros_like(s_mean), s_mean)
    model_std = (params[0] * t + params[1]).clamp_min(0.0).sqrt()
    return params, s_mean, (cnt > 0).double(), (model_std * mask).sum(), cnt.sum()


def estimate_noise_level_pd(y: Tensor, *, stride: int = 4) -> Tensor:
    """ScoreDVI's rough noise level δ/255 from pixel-shuffled sub-images.

    Parameters
    ----------
    y : Tensor, shape (B, C, H, W)
        Noisy images, float, pixel values nominally in [0, 1].
    stride : int, optional
        Pixel-shuffle stride (default 4, as ScoreDVI).

    Returns
    -------
    sigma : Tensor, shape (B,)
        ``delta255 / 255`` of :func:`estimate_noise_function` (a std on the [0, 1] scale,
        quantised down to whole 0–255 levels), dtype of `y`. ScoreDVI's λ(y) is 0.5 for
        δ <= 10, 1 for 10 < δ <= 25 and 2 above.

    Raises
    ------
    DenoiselabError
        As :func:`estimate_noise_function`.
    """
    est = estimate_noise_function(y, stride=stride)
    return (est.delta255.to(y.dtype if y.is_floating_point() else torch.float32)) / 255.0


# --------------------------------------------------------------------------- real camera noise

_N_LEVELS = 8  # intensity levels of the noise level function (equal numbers of patches)
_MIN_LEVEL_GAP = 1e-3  # smallest level spacing (0.26 gray levels of 255) a slope is taken over
_STRIDES = (1, 4)  # pixel-shuffle strides: white noise, spatially correlated noise
# Camera noise is told from white noise by two signatures that must agree (benchmarks/results/real_noise_estimation,
# "stride decision"): the flattest patches' spectrum lacks its finest patterns (correlation above this), and
# pixel-shuffling raises the measured noise std (shuffle gain above _SHUFFLE_GAIN_THRESHOLD). Each alone misreads
# textured, lightly noisy images: their flattest patches still hold texture, which looks like missing fine noise,
# and texture aliased into the stride-4 sub-images reads as noise. On 543 simulated and real images (white shot +
# read noise on 30 training photos at 3 levels and 3 sizes; a camera pipeline; SIDD, PolyU and CC), the spectrum
# alone at 0.3 misread 8 and the gain alone at 2 misread 9; both together misread 3: white noise on one strongly
# textured photo at the lowest level (256² and whole), and a 128² PolyU crop too flat to measure a spectrum on.
_CORRELATION_THRESHOLD = 0.15  # white noise: 0.1 or less but on textured images; camera noise: 0.16 and more
_SHUFFLE_GAIN_THRESHOLD = 2.0  # white noise: 1.0-1.4 at medium and high levels; camera noise: 2.3 and more
# The gain's stride-1 measurement takes every 2nd patch in each direction where a quarter of the patches still
# fills every intensity class (from about 256² up): 5× faster on 512² RGB. On smaller images it needs them all (a
# step-2 grid on 128² crops read gains of 2.4-3.8 for white noise, 1.0-1.2 with every patch).
_GAIN_GRID_STEP = 2
_DECISION_GRID_STEP = 3  # patch-grid step of the quick measurement that picks the stride
_DECISION_LEVELS = 4  # intensity classes of that measurement
_DECISION_FLAT_FRACTION = 0.1  # its flattest patches per class (by texture strength ξ)


@dataclass(frozen=True, eq=False)
class RealNoiseEstimate:
    """Result of :func:`estimate_real_noise`: a noise level function per image and channel.

    Attributes
    ----------
    sigma : Tensor, shape (B,)
        Noise std over the whole image, ``sqrt(mean over pixels and channels of σ²(x))``, on
        the [0, 1] scale, the input's dtype: what an AWGN denoiser's σ should be, and what
        ``std(noisy - clean)`` measures on a pair.
    levels : Tensor, shape (B, C, K)
        Intensities (the median patch mean of each of K intensity classes of equal size), on
        [0, 1], increasing, float64.
    variances : Tensor, shape (B, C, K)
        Noise variance σ² at each level, [0, 1] scale, float64.
    stride : Tensor, shape (B,), int64
        Pixel-shuffle stride the levels were measured at: 1 for white noise, 4 for spatially
        correlated noise (camera processing).
    correlation : Tensor, shape (B,)
        ``1 - r`` clipped to [0, 1], r the whiteness of the flattest patches' spectrum
        (smallest over median eigenvalue of their covariance, relative to white noise's;
        :func:`_flat_spectrum_ratio`): 0 for white noise, 0.2-0.85 for demosaicked and
        processed photos (SIDD, PolyU, CC). float64. The noise counts as correlated where this
        is above 0.15 and `shuffle_gain` above 2 (:attr:`correlated`).
    shuffle_gain : Tensor, shape (B,)
        Noise std measured at stride 4 over that at stride 1, float64: about 1 for white noise
        (subsampling leaves it unchanged; texture aliased into the sub-images raises it on
        small, lightly noisy images, up to 2.7 measured), 2.3-12 for camera noise, whose
        correlation hides part of it at stride 1. NaN where it was not measured: when
        `correlation` already says white, or the image is too small to pixel-shuffle.
    reliable : Tensor, shape (B, C, K)
        Fraction of each level's intensity classes whose weak-texture selection found flat
        patches; 0 where a class holds only texture, whose measured variance is then an upper
        bound of the noise's (busy intensities of textured, little-noise images). float64.
    """

    sigma: Tensor
    levels: Tensor
    variances: Tensor
    stride: Tensor
    correlation: Tensor
    shuffle_gain: Tensor
    reliable: Tensor

    @property
    def correlated(self) -> Tensor:
        """(B,) bool: the noise is spatially correlated (camera processing): `correlation` above
        0.15 and `shuffle_gain` above 2, the rule by which ``stride="auto"`` picks stride 4,
        whatever stride the levels were measured at."""
        return _is_correlated(self.correlation, self.shuffle_gain)

    def select(self, index: Tensor) -> "RealNoiseEstimate":
        """The estimate of the images `index` (a (N,) long tensor of batch positions) only."""
        index = torch.as_tensor(index, dtype=torch.int64).cpu()
        return RealNoiseEstimate(**{f.name: getattr(self, f.name)[index.to(getattr(self, f.name).device)]
                                    for f in fields(self)})

    @property
    def sigma255(self) -> list[float]:
        """`sigma` on the 0-255 scale, one float per image."""
        return [255.0 * float(s) for s in self.sigma]

    def variance(self, x: Tensor) -> Tensor:
        """Noise variance σ²(x) at intensities `x`, interpolated linearly between the levels.

        Parameters
        ----------
        x : Tensor, shape (B, C, H, W)
            Intensities on [0, 1] (clean or denoised; the noisy image is a usable proxy).
            Below the lowest level its value holds; above the brightest, it holds for
            correlated (processed) noise, and white noise's σ²(x) continues along the last
            segment where that rises (shot noise on linear data).

        Returns
        -------
        var : Tensor, shape (B, C, H, W)
            Per-pixel noise variance on the [0, 1] scale, dtype and device of `x`; its mean
            over the image's own pixels is about `sigma`².

        Raises
        ------
        DenoiselabError
            If `x` is not 4-D or its batch and channel sizes differ from the estimate's.
        """
        b, c = self.levels.shape[:2]
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[0] != b or x.shape[1] != c:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise DenoiselabError(f"x has shape {shape}; expected ({b}, {c}, H, W) to match the estimate")
        flat = x.detach().reshape(b * c, -1).to(torch.float64).cpu()
        lv, var = self.levels.reshape(b * c, -1), self.variances.reshape(b * c, -1)
        k = var.shape[1]
        hi = torch.searchsorted(lv.contiguous(), flat.contiguous()).clamp(1, max(k - 1, 1))
        lo = hi - 1 if k > 1 else hi
        x0, x1 = lv.gather(1, lo), lv.gather(1, hi)
        v0, v1 = var.gather(1, lo), var.gather(1, hi)
        w = ((flat - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0.0, 1.0)
        slope = _top_slope(lv, var, white=(self.stride == 1).repeat_interleave(c))
        rise = slope[:, None] * (flat - lv[:, -1:]).clamp_min(0.0)
        return (v0 + w * (v1 - v0) + rise).reshape(x.shape).to(x.device, x.dtype)

    def shot_read(self, *, per_channel: bool = True) -> Tensor:
        """The Poisson-Gaussian fit σ²(x) = a·x + b (a, b >= 0) to the levels, per image and channel.

        Parameters
        ----------
        per_channel : bool, optional
            True (default): one fit per channel. False: one fit per image to the levels of all
            its channels together, for noise that is the same function of the intensity in every
            channel (a sensor's shot + read noise on linear RGB); the channels then span a wider
            range of intensities, which pins the slope a down far better than one channel's
            levels do (a dark channel alone hardly tells shot from read noise).

        Returns
        -------
        params : Tensor, shape (B, C, 2), or (B, 1, 2) with ``per_channel=False``
            ``(a, b)`` in variance units of the input's scale, float64; on a linear image
            ``sqrt(a)`` is the shot-noise and ``sqrt(b)`` the read-noise std. Fitted by least
            squares on relative errors (weights 1/σ⁴), as :func:`estimate_noise_function` does.

        Notes
        -----
        Images are clipped to [0, 1], and near either end clipping shrinks the variance and
        moves the mean: on a dark linear image with read noise 0.1, a class of mean 0.04
        measures std 0.06, and a rising "shot" slope appears where there is none. Each level
        is therefore first *declipped* (as Foi et al. 2008 [5]_ do for raw data): the (μ, σ²)
        of the Gaussian whose clipped values have the measured mean and variance
        (:func:`_declip`; at 0 for levels below 0.5, at 1 above), and the model is fitted to
        those, with μ floored at 0.

        Levels that were measured on texture only (`reliable` 0: no flat patch in the class)
        are upper bounds and get weight 0.01 when at least two levels of the group are
        reliable. On textured 128² crops with little noise those classes read about twice the
        true σ and had pulled the shot term up 2.4× (kodim01: 0.048 for a true 0.02; 0.028 now).
        """
        b, c, _ = self.levels.shape
        groups = b * c if per_channel else b
        mu, var = _declip(self.levels.reshape(groups, -1), self.variances.reshape(groups, -1))
        held = self.reliable.reshape(groups, -1)
        rows = []
        for m, v, r in zip(mu, var, held):
            # levels measured on texture (no flat patch found) are upper bounds: nearly ignored
            # where at least two levels were measured on flat patches
            weights = 0.01 + 0.99 * r if int((r > 0.5).sum()) >= 2 else None
            rows.append(_fit_variance_model(m.clamp_min(0.0), v, weights=weights))
        return torch.stack(rows).reshape(b, c if per_channel else 1, 2)


def _rectified_moments(xi: Tensor) -> tuple[Tensor, Tensor]:
    """E[max(ξ + Z, 0)] and E[max(ξ + Z, 0)²] for a standard normal Z (float64)."""
    cdf = 0.5 * torch.erfc(-xi / math.sqrt(2.0))
    pdf = torch.exp(-0.5 * xi * xi) / math.sqrt(2.0 * math.pi)
    return xi * cdf + pdf, (xi * xi + 1) * cdf + xi * pdf


def _declip(level: Tensor, variance: Tensor) -> tuple[Tensor, Tensor]:
    """(μ, σ²) of the Gaussians whose values, clipped to [0, 1], have mean `level` and variance `variance`.

    One end at a time: levels below 0.5 are taken as clipped at 0 only, the others at 1 only
    (mirrored). For a clip at 0 the ratio v/m² of the clipped variable falls monotonically
    with ξ = μ/σ, so ξ is found by bisection and σ = m / E[max(ξ + Z, 0)]. Levels more than 6
    measured stds from their end are returned as they are (clipping there is below 1e-9).
    """
    level, variance = level.double(), variance.double().clamp_min(0.0)
    upper = level > 0.5
    m = torch.where(upper, 1.0 - level, level).clamp_min(1e-12)
    target = variance / (m * m)
    lo, hi = torch.full_like(m, -8.0), torch.full_like(m, 8.0)
    for _ in range(50):  # bisection on ξ; 16 / 2⁵⁰ is far below float64's use here
        mid = 0.5 * (lo + hi)
        m1, m2 = _rectified_moments(mid)
        above = (m2 - m1 * m1) / (m1 * m1) < target  # the ratio at mid is below target: ξ is smaller
        hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
    xi = 0.5 * (lo + hi)
    sigma = m / _rectified_moments(xi)[0]
    mu = torch.where(upper, 1.0 - xi * sigma, xi * sigma)
    far = m > 6.0 * variance.sqrt()
    return torch.where(far, level, mu), torch.where(far, variance, sigma * sigma)


def _noise_levels_group(planes: Tensor, n: int, q: int, n_levels: int,
                        phases: list[Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """Noise level function of one image channel from its (S, h, w) sub-image planes.

    The patches of all planes are sorted by their mean and cut into `n_levels` classes of equal
    size; Liu et al. 2013's weak-texture PCA ([1], Alg. 1) runs in each class, and with
    `phases` (groups of plane indices) on each group's patches of the class separately, the
    class variance being the groups' mean. Returns the
    levels (median patch mean per class), the variances and whether each was measured on flat
    patches (1.0) or on texture only (0.0, see :func:`_pca_select`), (K,) float64 each,
    K <= n_levels (classes too small for a reliable smallest eigenvalue are dropped; at least
    one is kept).
    """
    d = n * n
    xi, mu = _patch_maps(planes, n, q)
    offset = planes.mean()
    x = _centered_patches(planes - offset, mu - offset, n, q).reshape(-1, d)  # (S·L, d)
    xi, mu = xi.reshape(-1).double(), mu.reshape(-1).double()
    order = mu.argsort()
    k = max(1, min(n_levels, order.numel() // (_MIN_PATCHES_PER_DIM * d)))
    plane_of = torch.arange(planes.shape[0]).repeat_interleave(x.shape[0] // planes.shape[0])
    groups = [torch.ones_like(plane_of, dtype=torch.bool)] if phases is None else [torch.isin(plane_of, p) for p in phases]
    levels, variances, reliable = [], [], []
    for idx in torch.tensor_split(order, k):
        levels.append(mu[idx].median())
        parts = [idx[g[idx]] for g in groups]  # [1] Alg. 1 per class (and per CFA phase, averaged)
        found = [_pca_select(x.index_select(0, i), xi[i], n, unbias=True, return_reliable=True) for i in parts]
        variances.append(torch.stack([f[0] for f in found]).mean())
        reliable.append(torch.tensor(float(all(f[1] for f in found)), dtype=torch.float64))
    return torch.stack(levels), torch.stack(variances), torch.stack(reliable)


def _top_slope(levels: Tensor, variances: Tensor, white: Tensor | bool) -> Tensor:
    """(..., ) slope at which σ²(x) continues above the brightest of the (..., K) `levels`.

    For `white` noise (a bool, or a bool tensor of shape (...,)): the slope between the two
    brightest levels, floored at 0 (0 for K < 2). White noise is linear-sensor noise, whose
    shot part grows linearly in variance, and the top class of a dark image (fluorescence)
    reaches far above its median level. Correlated noise is processed camera noise, whose
    tone curve flattens σ²(x) in the highlights (for shot noise through a gamma of 1/2.2,
    σ² ∝ x^-0.09): 0 there, and where σ²(x) falls at the top, i.e. it is held.
    """
    white = torch.as_tensor(white, device=variances.device)
    if levels.shape[-1] < 2:
        return torch.zeros(levels.shape[:-1], dtype=variances.dtype, device=variances.device)
    rise = variances[..., -1] - variances[..., -2]
    slope = (rise / (levels[..., -1] - levels[..., -2]).clamp_min(_MIN_LEVEL_GAP)).clamp_min(0.0)
    return torch.where(white, slope, torch.zeros_like(slope))


def _mean_variance(image: Tensor, levels: Tensor, variances: Tensor, n: int, white: bool) -> Tensor:
    """Mean of σ²(x) over the (1, C, H, W) `image`, float64 scalar: the mean of the (C, K)
    `variances` (the K classes hold equal numbers of patches), plus, for `white` noise, the
    linear rise of σ²(x) (:func:`_top_slope`) at the n×n patch means above a channel's
    brightest level. On FMDD's fluorescence pairs this took the median std error from -10.0 %
    to -5.7 % (benchmarks/results/real_noise_estimation); the confocal BPAE blue images, whose
    few bright cells hold most of the noise, stay about 30 % low (-31 % before)."""
    extra = torch.zeros((), dtype=torch.float64)
    slope = _top_slope(levels, variances, white)
    if bool((slope > 0).any()):
        local = F.avg_pool2d(image.double(), n, stride=1)[0]  # (C, h, w) patch means
        above = (local - levels[:, -1, None, None].to(local)).clamp_min(0.0).mean(dim=(1, 2))
        extra = (slope.to(above) * above).mean().cpu()
    return variances.double().mean().cpu() + extra


def _flat_spectrum_ratio(y: Tensor, n: int) -> Tensor:
    """How white the noise of the (1, C, H, W) image `y` is: about 1 for white noise, less when correlated.

    In each of a few intensity classes per channel, the flattest patches (lowest texture
    strength ξ) are the ones least touched by the image; the eigenvalues of their covariance
    (off the mean) are the noise's power in n² - 1 spatial patterns. White noise has the same
    power in all of them, so the smallest over the median eigenvalue is the ratio a white
    sample of that size gives (the Marchenko-Pastur lower edge (1 - sqrt(p/m))², p = n² - 1,
    m patches), and it is divided by that. Demosaicking and camera processing take power from
    the finest patterns: measured 0.15-0.65 on SIDD, PolyU and CC photos and the simulated
    camera pipeline, 0.9-1.3 on FMDD and white noise on natural images. Texture left in the
    flattest patches adds a few large eigenvalues, which moves the median little. Returns the
    median over classes and channels, a float64 scalar (1 where no class is measurable).
    """
    d = n * n
    ratios = []
    for plane in y[0]:
        planes = plane[None]
        q = max(_DECISION_GRID_STEP, _patch_grid_step(1, *planes.shape[-2:], n))
        xi, mu = _patch_maps(planes, n, q)
        offset = planes.mean()
        x = _centered_patches(planes - offset, mu - offset, n, q).reshape(-1, d)
        xi, mu = xi.reshape(-1), mu.reshape(-1)
        order = mu.argsort()
        k = max(1, min(_DECISION_LEVELS, order.numel() // (_MIN_PATCHES_PER_DIM * d)))
        for idx in torch.tensor_split(order, k):
            keep = min(idx.numel(), max(math.ceil(_DECISION_FLAT_FRACTION * idx.numel()), 3 * d))
            flat = idx[xi[idx].argsort()[:keep]]
            z = x.index_select(0, flat).double()
            m = z.shape[0]
            if m <= 2 * d:  # too few for a d×d covariance
                continue
            z = z - z.mean(0)
            evals = _spectrum_off_dc(z.T @ z / m)
            median = evals.median()
            if median > _ROUND_OFF_VAR:  # else a class of constant (clipped, quantised) patches
                ratios.append(evals[0].clamp_min(0.0) / median / (1.0 - math.sqrt((d - 1) / m)) ** 2)
    return torch.stack(ratios).median() if ratios else torch.ones((), dtype=torch.float64)


def _is_correlated(correlation: Tensor, shuffle_gain: Tensor) -> Tensor:
    """Both signatures of camera noise (see _CORRELATION_THRESHOLD); a NaN gain (not measured) is False."""
    return (correlation > _CORRELATION_THRESHOLD) & (shuffle_gain > _SHUFFLE_GAIN_THRESHOLD)


def _spectrum_off_dc(cov: Tensor) -> Tensor:
    """Ascending eigenvalues of the (d, d) covariance `cov` of mean-removed patches on 1^⊥ (d - 1 of them)."""
    d = cov.shape[-1]
    big = 2.0 * float(cov.trace()) + 1.0
    ones = torch.full((d, d), big / d, dtype=cov.dtype, device=cov.device)
    return torch.linalg.eigvalsh(cov + ones)[:-1]  # the constant direction, pushed to the top, is dropped


def _noise_levels(y: Tensor, stride: int, n: int, n_levels: int, min_step: int = 1,
                  by_phase: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Noise level functions of the (1, C, H, W) image `y` at pixel-shuffle `stride`: (C, K)
    levels, variances and the fraction of each level's classes measured on flat patches."""
    c = y.shape[1]
    s2 = stride * stride
    sub = pd_down(y, stride)  # (S, C, h, w)
    h, w = sub.shape[-2:]
    q = max(min_step, _patch_grid_step(s2, h, w, n))
    phases = _bayer_phases(stride) if by_phase else None
    rows = [_noise_levels_group(sub[:, ch], n, q, n_levels, phases) for ch in range(c)]
    k = min(r[0].numel() for r in rows)
    levels = torch.stack([_pool_levels(r[0], k) for r in rows])
    variances = torch.stack([_pool_levels(r[1], k) for r in rows])
    reliable = torch.stack([_pool_levels(r[2], k) for r in rows])
    if k >= 3:  # running median of 3 over the levels: one class of unusually flat or busy patches is an outlier
        padded = torch.cat([variances[:, :1], variances, variances[:, -1:]], dim=1)
        variances = padded.unfold(1, 3, 1).median(dim=-1).values
    variances = torch.where(variances < _ROUND_OFF_VAR, torch.zeros_like(variances), variances)
    return levels, variances, reliable


def _bayer_phases(stride: int) -> list[Tensor] | None:
    """Indices of the stride² sub-images (see :func:`pd_down`) grouped by their site in a 2×2
    colour-filter cell: four groups for an even stride, None (one group) for an odd one, whose
    sub-images each mix all four sites."""
    if stride % 2:
        return None
    idx = torch.arange(stride * stride)
    i, j = idx // stride, idx % stride
    return [idx[(i % 2 == a) & (j % 2 == b)] for a in range(2) for b in range(2)]


def _pool_levels(values: Tensor, k: int) -> Tensor:
    """Average consecutive entries of `values` (K,) down to `k` entries (K >= k)."""
    return torch.stack([part.mean() for part in torch.tensor_split(values, k)])


def estimate_real_noise(y: Tensor, *, stride: int | str = "auto", patch_size: int = 7,
                        n_levels: int = _N_LEVELS) -> RealNoiseEstimate:
    """Estimate the noise of real photos (or of anything else): its std, σ²(x) and its correlation.

    The one estimator behind every ``auto`` noise level of denoiselab (``--sigma auto``,
    SVNR's ``--noise auto``, the API's defaults, batch and bench). It returns the noise std of
    the whole image for AWGN denoisers, the noise level function σ²(x) (and through
    :meth:`RealNoiseEstimate.shot_read` the Poisson-Gaussian a, b), and how spatially
    correlated the noise is, which picks the pixel-shuffle stride.

    Algorithm, per image:

    1. *Stride.* Demosaicking and camera processing correlate neighbouring pixels' noise,
       taking its power from the finest spatial patterns, while pixels 4 apart stay nearly
       independent [4]_. Two signatures of this must agree. (a) In the flattest 10 % of the
       patches of each intensity class (sparse grid, stride 1), the covariance's smallest over
       its median eigenvalue is compared with what white noise gives for that many patches:
       about 1 for white noise, 0.15-0.8 for camera noise; `correlation` is 1 - that ratio.
       (b) Where that is above 0.15, the noise level function is measured at strides 1 and 4
       (step 2; at stride 1 from every 2nd patch on images of about 256² and more) and
       `shuffle_gain` is the ratio of the two stds: about 1 for white noise, which
       subsampling leaves unchanged, 2.3 and more for camera noise, whose correlation hides
       part of it at stride 1. Above 2 as well, the noise is correlated (stride 4), else
       white (stride 1, where pixel-shuffling would only add aliased texture). Each signature
       alone misreads textured, lightly noisy images: texture left in the flattest patches
       looks like missing fine noise to (a), and texture aliased into the stride-4 sub-images
       reads as noise to (b) (on small crops of textured photos: a 5-10 dB loss for SVNR).
       The thresholds and the error counts of each rule are in the benchmark.
    2. *Noise level function.* At that stride, the patches of all sub-images of a channel are
       sorted by their mean and cut into `n_levels` classes of equal size; the weak-texture PCA
       [1]_ runs within each class, and a running median of 3 over the classes removes single
       outliers (a class made mostly of one unusually flat or busy region). The smallest
       sample eigenvalue of a class is corrected for its known low bias (Marchenko-Pastur
       lower edge, see the benchmark for the effect). This is a free-form σ²(x), unlike Liu et al. 2014's
       a·x^(2γ) + b [2]_: after a camera's tone curve the noise of sRGB images is largest in
       the mid-tones and small in compressed highlights, which no increasing model can follow.
       A single model fitted to all patches is pulled to the flattest region's level (on SIDD
       validation image 10_1, a flat, nearly white area of low noise: δ = 3 for a true
       std of 23); a class for each intensity keeps each region's own level.
       Where the noise was found correlated (demosaicked), each class is measured separately
       on the sub-images of each site of the 2×2 colour-filter cell and the four variances are
       averaged: interpolated sites average several samples and carry less noise (a bilinear
       demosaic: 1/2 or 1/4 of the variance), the weak-texture selection prefers their quieter
       patches, and pooled they read 17 % low on the simulated camera pipeline (5 % per site;
       SIDD 3.5 % → 1 %; see the benchmark).
    3. *σ.* The classes hold equal numbers of patches, so σ² is the mean of the class
       variances over classes and channels: the noise variance averaged over the image. For
       white noise whose σ²(x) still rises at the brightest level (shot noise on linear data),
       the pixels brighter than that level add the linear continuation of the rise: in a dark
       fluorescence image the top class reaches from the background to the brightest cells,
       and its one variance, measured on its flattest (dimmest) patches, misses most of their
       noise (FMDD: median error -10.0 % → -5.7 %). Correlated (processed) noise is held
       there: a tone curve flattens σ²(x) in the highlights.

    Assumptions: the noise has zero mean, its variance depends on the intensity only (and,
    for correlated noise, on the site in a 2×2 colour-filter cell; not otherwise on the
    position), it is independent between pixels at least ``stride`` apart, and each
    intensity class contains some weak-textured (flat) patches; in a class without any, the
    smallest eigenvalue holds texture too and the level is over-estimated. Noise that camera
    processing removed from flat areas but left in textured ones (JPEG, in-camera noise
    reduction) cannot be seen and is under-estimated (PolyU and CC; see the benchmark).

    Parameters
    ----------
    y : Tensor, shape (B, C, H, W)
        Noisy images, float, values nominally in [0, 1]; any device (computed where `y` is).
        At least N×N pixels; below 4N×4N (28×28) the noise is taken as white (no room to
        pixel-shuffle); below about 100×100 the estimate is biased low (few patches; warns).
    stride : int or "auto", optional
        ``"auto"`` (default) picks 1 or 4 per image as above; an integer >= 1 forces it
        (`correlation` and `shuffle_gain` are still measured).
    patch_size : int, optional
        Side N of the square patches, in pixels (>= 3, default 7).
    n_levels : int, optional
        Intensity classes of the noise level function (>= 1, default 8). Fewer are used when
        a class would hold fewer than 40·N² patches.

    Returns
    -------
    estimate : RealNoiseEstimate
        ``sigma`` (B,), ``levels`` and ``variances`` (B, C, K), ``stride`` (B,), ``correlation``
        and ``shuffle_gain`` (B,), ``variance(x)`` and ``shot_read()``.

    Raises
    ------
    DenoiselabError
        If `y` is not a 4-D float tensor, an option is out of range, or `y` is smaller than
        `patch_size` (times a given `stride`) on a side.

    Warns
    -----
    UserWarning
        When a channel holds fewer than 40·N² patches at the chosen stride: biased low.

    Notes
    -----
    Cost: three passes over the patches of each channel (two on a quarter of them), and for
    noise whose spectrum looks correlated one more at stride 1 (on a quarter of the patches
    from about 256²): about 0.75 s for a 512×512 RGB camera photo on one core, the same as
    without that pass within the machine's noise (``benchmarks/real_noise_estimation.py``).
    Accuracy (same benchmark): simulated AWGN and Poisson-Gaussian noise, before and after a
    simulated camera pipeline, and the real pairs of SIDD, PolyU, CC and FMDD.

    References
    ----------
    See the module docstring: [1]_ Liu et al. 2013, [2]_ Liu et al. 2014, [4]_ Cheng et al.
    2023 (Sec. 3.5, pixel-shuffle before estimating).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.linspace(0.1, 0.9, 128).repeat(1, 3, 128, 1)
    >>> est = estimate_real_noise(x + 0.05 * torch.randn(1, 3, 128, 128, generator=g))
    >>> int(est.stride[0]), bool(abs(float(est.sigma[0]) - 0.05) < 0.005)
    (1, True)
    """
    y = _check_images(y, patch_size)
    if stride != "auto" and (isinstance(stride, bool) or not isinstance(stride, int) or stride < 1):
        raise DenoiselabError(f"stride={stride!r} must be 'auto' or a positive integer (1: white noise, 4: camera noise)")
    if isinstance(n_levels, bool) or not isinstance(n_levels, int) or n_levels < 1:
        raise DenoiselabError(f"n_levels={n_levels!r} is not a positive integer; the default is {_N_LEVELS}")
    n = patch_size
    h, w = y.shape[-2:]
    if stride != "auto" and min(h, w) // stride < n:
        _check_images(y, patch_size, stride=stride)  # raises: too small for this stride
    fits_pd = min(h, w) // max(_STRIDES) >= n  # else too small to pixel-shuffle: white noise assumed
    results = []
    with torch.no_grad():
        for image in y.detach():
            image = image[None]
            corr = torch.zeros((), dtype=torch.float64)
            gain = torch.full((), math.nan, dtype=torch.float64)
            by_site = None  # stride-4 levels measured per colour-filter site for the gain, reused if stride 4 is chosen
            if fits_pd:
                corr = (1.0 - _flat_spectrum_ratio(image, n)).clamp(0.0, 1.0)
            if corr > _CORRELATION_THRESHOLD:  # the spectrum says camera noise: does pixel-shuffling confirm it?
                by_site = _noise_levels(image, 4, n, n_levels, by_phase=True)
                lv, var, _ = by_site
                patches = (image.shape[-2] - n + 1) * (image.shape[-1] - n + 1)
                sparse = patches >= _GAIN_GRID_STEP ** 2 * n_levels * _MIN_PATCHES_PER_DIM * n * n
                lv1, var1, _ = _noise_levels(image, 1, n, n_levels, min_step=_GAIN_GRID_STEP if sparse else 1)
                variance4 = _mean_variance(image, lv, var, n, white=False)
                gain = (variance4 / _mean_variance(image, lv1, var1, n, white=True).clamp_min(_ROUND_OFF_VAR)).sqrt()
            correlated = bool(_is_correlated(corr, gain))
            chosen = stride if stride != "auto" else _STRIDES[int(correlated)]
            if correlated and chosen == 4:  # camera noise is measured per colour-filter site: done for the gain
                levels, variances, held = by_site
            else:
                levels, variances, held = _noise_levels(image, chosen, n, n_levels, by_phase=correlated and chosen > 1)
            results.append((levels, variances, chosen, corr, held, gain))
    first = results[0][2]
    _warn_few_patches(first * first * (h // first - n + 1) * (w // first - n + 1), n, "estimate_real_noise")
    k = min(r[0].shape[1] for r in results)
    levels = torch.stack([torch.stack([_pool_levels(row, k) for row in r[0]]) for r in results])
    variances = torch.stack([torch.stack([_pool_levels(row, k) for row in r[1]]) for r in results])
    reliable = torch.stack([torch.stack([_pool_levels(row, k) for row in r[4]]) for r in results])
    return RealNoiseEstimate(
        sigma=torch.stack([_mean_variance(image[None], lv, var, n, white=r[2] == 1)
                           for image, lv, var, r in zip(y.detach(), levels, variances, results)]).sqrt().to(y.dtype),
        levels=levels,
        variances=variances,
        stride=torch.tensor([r[2] for r in results], dtype=torch.int64),
        correlation=torch.stack([r[3] for r in results]).double(),
        shuffle_gain=torch.stack([r[5] for r in results]),
        reliable=reliable,
    )


_COV_WINDOW = 12  # side of the flat windows the variogram is measured in
_COV_FAR = 4  # lag at which camera noise counts as independent (the stride-4 assumption above)
_COV_GRID_STEP = 4  # windows on a step-4 grid: overlapping, about (H/4)·(W/4) of them
_COV_FLAT_FRACTION = 0.1  # flattest windows kept per intensity class


def _flat_windows(image: Tensor, n_levels: int) -> Tensor:
    """The flattest `_COV_WINDOW`² windows of the (C, H, W) `image`, (M, C, P, P) float64.

    Windows on a step-4 grid are sorted by the mean of the channel mean and cut into
    `n_levels` classes of equal size (every intensity contributes, as in
    :func:`estimate_real_noise`); in each, the `_COV_FLAT_FRACTION` with the least gradient
    energy of the 2×2-box-smoothed channel mean are kept (at least 3). Smoothing first lets
    the image's slope, not the noise, decide which windows are flat.
    """
    p, q = _COV_WINDOW, _COV_GRID_STEP
    wins = image.double().unfold(1, p, q).unfold(2, p, q)  # (C, ho, wo, P, P) view
    c, ho, wo = wins.shape[:3]
    wins = wins.permute(1, 2, 0, 3, 4).reshape(ho * wo, c, p, p)
    lum = wins.mean(dim=1)
    smooth = (lum[:, 1:, 1:] + lum[:, :-1, 1:] + lum[:, 1:, :-1] + lum[:, :-1, :-1]) / 4.0
    energy = smooth.diff(dim=1).pow(2).mean(dim=(1, 2)) + smooth.diff(dim=2).pow(2).mean(dim=(1, 2))
    order = lum.mean(dim=(1, 2)).argsort()
    keep = [idx[energy[idx].argsort()[:max(3, math.ceil(_COV_FLAT_FRACTION * idx.numel()))]]
            for idx in torch.tensor_split(order, max(1, min(n_levels, order.numel() // 3)))]
    return wins[torch.cat(keep)]


def _lag_pairs(x: Tensor, dy: int, dx: int) -> tuple[Tensor, Tensor]:
    """Views of `x` (..., H, W) at p and at p + (dy, dx), over the pixels p where both are inside."""
    h, w = x.shape[-2:]
    return (x[..., max(0, -dy):h + min(0, -dy), max(0, -dx):w + min(0, -dx)],
            x[..., max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)])


def _cross_variogram(wins: Tensor, dy: int, dx: int) -> Tensor:
    """γ_jk(d) = ½·E[(x_j(p) − x_j(p+d))·(x_k(p) − x_k(p+d))] over the windows `wins` (M, C, P, P): (C, C)."""
    a, b = _lag_pairs(wins, dy, dx)
    diff = (a - b).flatten(2)  # (M, C, L)
    return torch.einsum("mjl,mkl->jk", diff, diff) / (2.0 * diff.shape[0] * diff.shape[2])


def estimate_noise_covariance(y: Tensor, *, radius: int = 3, estimate: RealNoiseEstimate | None = None,
                              n_levels: int = _N_LEVELS) -> Tensor:
    """Spatial and cross-channel covariance of the noise: what a denoiser for correlated noise needs.

    Camera noise after demosaicking and processing is correlated between neighbouring pixels
    (and between the colour channels); its power spectrum is far from flat. A denoiser told
    only its std treats it as white and leaves the low-frequency part (BM3D on SIDD: about
    6 dB worse than with the noise's spectrum, ``benchmarks/bm3d_correlated.py``). This returns
    the covariance ``C_jk(d) = E[n_j(p)·n_k(p + d)]`` for lags ``|d| <= radius``, from which
    the spectrum follows by a Fourier transform.

    Method: in the flattest windows of every intensity class (12×12, chosen on a smoothed
    channel mean), the cross-variogram ``γ_jk(d) = ½·E[Δ_j Δ_k]`` with ``Δ = x(p) − x(p + d)``
    is measured; it does not need the windows' unknown mean, which a covariance of
    mean-removed patches would confound with the noise's power at frequency 0. Noise 4 or
    more pixels apart is taken as independent (the assumption :func:`estimate_real_noise`
    makes when it pixel-shuffles), so the variogram's plateau ``γ(far)``, the median over
    the lags at Chebyshev distance 4, is ``C(0)``, and ``C(d) = γ(far) − γ(d)`` (the
    symmetric part ``½(C(d) + C(−d))``, all that a real spectrum holds). Finally the
    covariance is scaled so that each channel's ``C_jj(0)`` equals the noise variance of
    :func:`estimate_real_noise` (the mean of its levels): the flattest windows are
    selected for little texture, which also favours quiet ones, so their plateau reads low,
    while its shape (the correlation) is what they measure well.

    Parameters
    ----------
    y : Tensor, shape (B, C, H, W)
        Noisy images, float, nominally [0, 1], at least 12×12 pixels (in practice 64×64 or
        more for a stable estimate). Computed on the CPU in float64.
    radius : int, optional
        Largest lag R in pixels, 0 <= R <= 3 (default 3: the kernel is 7×7, the support that
        noise independent at 4 pixels has).
    estimate : RealNoiseEstimate, optional
        :func:`estimate_real_noise` of `y`, when already computed (else it is computed).
    n_levels : int, optional
        Intensity classes the flat windows are drawn from (default 8).

    Returns
    -------
    cov : Tensor, shape (B, C, C, 2R + 1, 2R + 1), float64
        ``cov[b, j, k, R + dy, R + dx]`` = covariance of channel j at a pixel with channel k at
        the pixel (dy, dx) away, on the [0, 1]² scale; symmetric in (j, k) and in d ↦ −d.
        For white noise it is σ² at the centre of each diagonal and near 0 elsewhere.

    Raises
    ------
    DenoiselabError
        If `y` is not a 4-D float tensor, is smaller than 12×12, or `radius` is out of range.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> white = 0.05 * torch.randn(1, 1, 260, 260, generator=g)
    >>> noise = (white[..., 1:, :] + white[..., :-1, :])[..., :256, :256] / 2 ** 0.5  # vertical pairs
    >>> cov = estimate_noise_covariance(0.5 + noise, radius=1)[0, 0, 0]
    >>> bool(abs(float(cov[0, 1] / cov[1, 1]) - 0.5) < 0.1), bool(abs(float(cov[1, 0] / cov[1, 1])) < 0.1)
    (True, True)
    """
    y = _check_images(y, _COV_WINDOW)
    if isinstance(radius, bool) or not isinstance(radius, int) or not 0 <= radius < _COV_FAR:
        raise DenoiselabError(f"radius={radius!r} must be an integer from 0 to {_COV_FAR - 1}")
    if estimate is None:
        estimate = estimate_real_noise(y, n_levels=n_levels)
    lags = range(-radius, radius + 1)
    ring = [(dy, dx) for dy in range(-_COV_FAR, _COV_FAR + 1) for dx in range(-_COV_FAR, _COV_FAR + 1)
            if max(abs(dy), abs(dx)) == _COV_FAR]
    out = []
    with torch.no_grad():
        for b, image in enumerate(y.detach().cpu()):
            wins = _flat_windows(image, n_levels)
            gamma = torch.stack([torch.stack([_cross_variogram(wins, dy, dx) for dx in lags]) for dy in lags])
            plateau = torch.stack([_cross_variogram(wins, dy, dx) for dy, dx in ring]).median(dim=0).values
            cov = (plateau - gamma).permute(2, 3, 0, 1)  # (C, C, k, k)
            scale = (estimate.variances[b].mean(dim=-1).cpu() / plateau.diagonal().clamp_min(1e-20)).sqrt()
            out.append(cov * scale[:, None, None, None] * scale[None, :, None, None])
    return torch.stack(out)


def noise_covariance(noise: Tensor, *, radius: int = 3) -> Tensor:
    """The covariance of a known noise field (``noisy - clean`` of a pair), as :func:`estimate_noise_covariance` returns it.

    The reference that estimates are compared with: ``C_jk(d)``, the mean over all pixel
    pairs at lag d (those inside the image) of ``n_j(p)·n_k(p + d)``, symmetrised
    (``½(C(d) + C(−d))``). The noise is taken as zero-mean (no mean is removed).

    Parameters
    ----------
    noise : Tensor, shape (B, C, H, W)
        The noise, any scale; larger than `radius` on both sides.
    radius : int, optional
        Largest lag R in pixels (>= 0, default 3).

    Returns
    -------
    cov : Tensor, shape (B, C, C, 2R + 1, 2R + 1), float64
    """
    if not isinstance(noise, Tensor) or noise.ndim != 4 or min(noise.shape[-2:]) <= radius:
        raise DenoiselabError(f"noise must be a (B, C, H, W) tensor larger than radius {radius}")
    n = noise.detach().cpu().double()
    k = 2 * radius + 1
    out = torch.zeros(n.shape[0], n.shape[1], n.shape[1], k, k, dtype=torch.float64)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            a, b = (v.flatten(2) for v in _lag_pairs(n, dy, dx))
            m = a @ b.transpose(1, 2) / a.shape[2]
            out[..., dy + radius, dx + radius] = 0.5 * (m + m.transpose(1, 2))
    return out


#: Lag-1 correlation of the noise along the weak colour directions above which
#: :func:`colour_whitening` leaves an image alone. Measured (2026-12-05, 256² dev crops): SIDD
#: 0.48-0.61 (whitening helped the PD warm start by 3-5 dB), PolyU and CC (JPEG, chroma noise
#: blurred by chroma subsampling) 0.78-0.93 (whitening cost up to 10 dB: it amplifies chroma noise
#: that pixel-shuffling does not break up).
_WHITEN_MAX_LAG1 = 0.7


def colour_whitening(y: Tensor, *, estimate: RealNoiseEstimate | None = None,
                     covariance: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """A colour transform that makes the noise white across channels, where that is safe.

    Camera noise after the colour matrix is correlated between R, G and B (SIDD: correlation
    0.2-0.6), while Gaussian denoisers are trained on noise independent per channel; they
    then leave much of it. With ``C`` the noise's cross-channel covariance at lag 0
    (:func:`estimate_noise_covariance`), ``W = s·C^(-1/2)`` (``s²`` = mean channel variance,
    so the noise level is kept) turns it into white noise of std ``s`` in every channel;
    denoise ``W·y`` and map back with ``W⁻¹``. Measured on the PD warm start of ScoreDVI
    (published BF-DnCNN, PD-3 + refinement, 16 SIDD crops): +0.6 to +5.2 dB.

    The transform amplifies the image along the noise's weak colour directions (chroma). Where
    the noise along them is strongly correlated in space (lag-1 correlation above 0.7: the
    JPEG chroma of PolyU and CC), the amplified noise stays blotchy after pixel-shuffling and
    whitening costs quality, so those images get the identity. Gray images get the identity.

    Parameters
    ----------
    y : Tensor, shape (B, C, H, W)
        Noisy images on [0, 1], at least 12×12.
    estimate : RealNoiseEstimate, optional
        :func:`estimate_real_noise` of `y`, when already computed.
    covariance : Tensor, shape (B, C, C, 2R + 1, 2R + 1), R >= 1, optional
        :func:`estimate_noise_covariance` of `y`, when already computed.

    Returns
    -------
    w, w_inv : Tensor, shape (B, C, C), float32
        Apply as ``torch.einsum("bij,bjhw->bihw", w, y)``; identity where not applied.
    applied : Tensor of bool, shape (B,)
    """
    b, c = y.shape[:2]
    w = torch.eye(c).expand(b, c, c).clone()
    w_inv = w.clone()
    applied = torch.zeros(b, dtype=torch.bool)
    if c == 1:
        return w, w_inv, applied
    if covariance is None:
        covariance = estimate_noise_covariance(y, radius=1, estimate=estimate)
    r = covariance.shape[-1] // 2
    if r < 1:
        raise DenoiselabError("covariance needs lags of at least 1 pixel (radius >= 1)")
    for i, cov in enumerate(covariance.double()):
        lam, vec = torch.linalg.eigh(cov[:, :, r, r])
        if not bool(lam[0] > 1e-12 * lam[-1].clamp_min(1e-30)):
            continue
        lag1 = 0.5 * (cov[:, :, r, r + 1] + cov[:, :, r + 1, r])  # horizontal and vertical neighbours
        weak = [float(vec[:, j] @ lag1 @ vec[:, j] / lam[j]) for j in range(c - 1)]  # all but the strongest direction
        if max(weak) > _WHITEN_MAX_LAG1:
            continue
        s = lam.mean().sqrt()
        w[i] = ((vec * (s / lam.sqrt())) @ vec.T).float()
        w_inv[i] = ((vec * (lam.sqrt() / s)) @ vec.T).float()
        applied[i] = True
    return w, w_inv, applied
