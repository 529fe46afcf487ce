"""``denoise(image)``: every denoiselab method behind one function on numpy arrays in [0, 1].

This is the library's front door (the ``denoiselab denoise`` command calls it): it checks the
input, picks the method (ScoreDVI for real-world noise, SVNR's diffusion for shot + read noise,
or any Gaussian denoiser of :func:`denoiselab.list_denoisers`), estimates the noise level when
needed, cuts large images into overlapping tiles so that memory stays within a budget
(:mod:`denoiselab.tiling`), runs each plane of a TIFF stack in turn and returns a float32 array
of the input's shape.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from ._utils import resolve_device
from .denoisers import is_blind, list_denoisers, load_denoiser_for
from .denoisers.precision import resolve_precision
from .errors import DenoiselabError
from .scoredvi import get_preset, scoredvi
from .svnr.denoise import check_svnr_options
from .tiling import count_tiles, denoise_tiled

__all__ = ["DEFAULT_MEMORY_MB", "DenoiseResult", "denoise", "plan_tile"]

#: Default working-memory budget of :func:`denoise`, in MiB (see its Notes).
DEFAULT_MEMORY_MB = 2048.0

_MIB = 2.0**20
_MIN_TILE = 64
# Working memory of one tile, in bytes per pixel of an RGB tile, beyond the output arrays:
# peak-RSS growth of one untiled call on the CPU minus its outputs, measured at two sizes (it
# is linear in the pixel count; benchmarks/tiling_memory.py, tables under
# benchmarks/results/tiling_memory/), plus 7-15 %. Measured: BF-DnCNN 362-372 B/px at width 32
# (it scales with the width), BM3D 993-1025, NLM 102, TV 124-125, wavelet 100, ScoreDVI fast
# 4620-4830 (2 iterations; the same at every iteration), ScoreDVI paper 10350 plus 125 MiB for
# its networks and optimiser state (128² and 256², 1 iteration).
# SVNR (randomly initialised UNets, levels 2, read 0.03 / shot 0.02, 1 thread; the same way, fresh
# process per case, after a 64² warm-up, minus the outputs), bytes per pixel per sample at
# 256² / 512²: width 16: 1374 / 1180 (K = 1), 1467 / 1036 (K = 2, per sample); width 32: 1724 / 2037
# (K = 1), 2407 / 1929 (K = 2, per sample). The line through the largest figure at each width,
# 527 + 58.75 · width, plus 10 %: K · (580 + 65 · width) (2660 per sample at width 32). Noise
# estimation (read/shot None) runs on the whole plane, at most its central 2048² crop, before the
# tiles: peak-RSS growth 113 MiB at 1024², 265 MiB at 2048² (RGB); budgeted as min(10 planes, 270 MiB)
# on top of the tiles (it never runs alongside them, so this errs on the safe side).
_NET_BYTES_PER_PIXEL_PER_WIDTH = 13.0
_SVNR_BYTES_PER_PIXEL = (580.0, 65.0)  # per sample: fixed + per unit of the UNet's base width
_SVNR_ESTIMATE_MB = (10.0, 270.0)  # noise estimate: min(this many planes, this many MiB)
_TILE_BYTES_PER_PIXEL = {"bm3d": 1100.0, "nlm": 115.0, "tv": 140.0, "wavelet": 115.0,
                         "scoredvi-fast": 5300.0, "scoredvi-paper": 11500.0}
_EXTRA_MB = {"scoredvi-paper": 128.0}
# Full-size float32 copies of one plane that a method holds besides the output arrays: the
# noise estimate on the whole plane (Gaussian denoisers), ScoreDVI's two accumulators.
_PLANE_COPIES = {"network": 1.0, "classic": 1.0, "scoredvi": 2.0}


@dataclass(frozen=True, eq=False)
class DenoiseResult:
    """What :func:`denoise` returns with ``return_details=True``.

    Attributes
    ----------
    image : np.ndarray
        The denoised image, float32, same shape as the input, not clipped (values may leave
        [0, 1] slightly; clip to show or save it).
    uncertainty : np.ndarray or None
        Per-pixel posterior standard deviation, same shape as `image`, on the [0, 1] scale
        (>= 0): ScoreDVI's, or for SVNR with ``samples >= 2`` the standard deviation of the
        sRGB samples; None for the other methods (and SVNR with one sample).
    noise : dict of str to list of float
        The noise level used, one value per plane: ``{"sigma": [...]}`` (std on [0, 1], given
        or estimated) for Gaussian denoisers that take σ; ``{}`` for blind networks, which use none; ``{"delta255": [...], "lam": [...], "beta": [...]}``
        (estimated std on 0-255, prior weight λ(y), Gamma rate β) for ScoreDVI;
        ``{"read": [...], "shot": [...]}`` (σ_r, σ_s on the linear [0, 1] scale, given or
        estimated) for SVNR.
    method : str
        The method that ran (``"bfdncnn-gray"`` when ``"bfdncnn-color"`` was asked for a gray image).
    settings : dict
        ``device``, ``tile`` (side in pixels, None for whole planes), ``overlap``, ``n_tiles``
        (per plane), ``max_memory_mb``, ``seed``; for ScoreDVI also ``preset``, ``iterations``
        and ``beta`` as given; for SVNR ``samples``, ``calls`` (network calls per chain, the
        most over tiles and planes), ``noise_source`` ("given" or "estimated") and ``weights``
        (the model's name).
    seconds : float
        Wall time of the whole call (loading the method included).
    """

    image: np.ndarray
    uncertainty: np.ndarray | None
    noise: dict = field(default_factory=dict)
    method: str = ""
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0


def _as_stack(image: np.ndarray) -> np.ndarray:
    """Validate `image` and return it as a float32 (P, H, W, C) array (a view when possible)."""
    if not isinstance(image, np.ndarray):
        raise DenoiselabError(f"image must be a numpy array, got {type(image).__name__}; use numpy.asarray(...) first")
    if not np.issubdtype(image.dtype, np.floating):
        raise DenoiselabError(f"image has dtype {image.dtype}; expected floats in [0, 1] - divide 8-bit data by 255 "
                              "(16-bit by 65535), or read files with denoiselab.io.read_image")
    shape = image.shape
    if image.ndim == 2:
        stack = image[None, :, :, None]
    elif image.ndim == 3 and shape[2] in (1, 3):
        stack = image[None]
    elif image.ndim == 4 and shape[3] in (1, 3):
        stack = image
    else:
        raise DenoiselabError(f"image of shape {shape} is not (H, W), (H, W, C) or a stack (P, H, W, C) with C = 1 or 3; "
                              "a gray stack is (P, H, W, 1)")
    if 0 in stack.shape:
        raise DenoiselabError(f"image of shape {shape} is empty")
    stack = np.ascontiguousarray(stack, dtype=np.float32)
    for plane in stack:  # one plane at a time keeps the temporaries small
        if not np.isfinite(plane).all():
            raise DenoiselabError("image contains NaN or infinite values; replace them (e.g. numpy.nan_to_num) first")
        lo, hi = float(plane.min()), float(plane.max())
        if lo < -1.0 or hi > 2.0:  # unclipped noise may leave [0, 1], 0-255 or 16-bit data far more
            raise DenoiselabError(f"pixel values span [{lo:.3g}, {hi:.3g}]; denoise expects [0, 1] - divide 8-bit "
                                  "data by 255 (16-bit by 65535)")
    return stack


def _check_sigma(sigma: float | None) -> float | None:
    if sigma is None:
        return None
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.floating, np.integer)) or not math.isfinite(sigma):
        raise DenoiselabError(f"sigma={sigma!r} must be None (estimate it) or a number in [0, 1]")
    if sigma < 0:
        raise DenoiselabError(f"sigma={sigma} is negative; give the noise std on the [0, 1] scale")
    if sigma > 1:
        raise DenoiselabError(f"sigma={sigma} looks like the 0-255 scale; denoiselab uses [0, 1], pass {sigma}/255 "
                              f"≈ {sigma / 255:.3g}")
    return float(sigma)


def _footprint(method: str, denoiser: object, preset: str, *, shape: tuple[int, ...] = (1, 1, 1, 1), samples: int = 1,
               estimate: bool = False) -> dict[str, float]:
    """Keyword arguments of :func:`plan_tile` describing `method`'s memory use (see the constants above)."""
    if method == "svnr":  # K samples run as one batch: K times one chain's working memory
        fixed, per_width = _SVNR_BYTES_PER_PIXEL
        width = float(denoiser.model.config()["base_width"])
        planes, cap = _SVNR_ESTIMATE_MB
        extra = min(planes * shape[1] * shape[2] * shape[3] * 4.0 / _MIB, cap) if estimate else 0.0
        return {"bytes_per_pixel": samples * (fixed + per_width * width), "plane_copies": 0.0, "extra_mb": extra,
                "outputs": 2 if samples > 1 else 1}
    if method == "scoredvi":
        key = f"scoredvi-{preset}"
        return {"bytes_per_pixel": _TILE_BYTES_PER_PIXEL[key], "plane_copies": _PLANE_COPIES["scoredvi"],
                "extra_mb": _EXTRA_MB.get(key, 0.0), "outputs": 2}
    if isinstance(denoiser, torch.nn.Module):
        per_pixel = _NET_BYTES_PER_PIXEL_PER_WIDTH * float(getattr(denoiser, "width", 64))
        return {"bytes_per_pixel": per_pixel, "plane_copies": _PLANE_COPIES["network"]}
    name = getattr(denoiser, "name", method)
    per_pixel = _TILE_BYTES_PER_PIXEL.get(name, _TILE_BYTES_PER_PIXEL["bm3d"])  # unknown: the largest classic
    return {"bytes_per_pixel": per_pixel, "plane_copies": _PLANE_COPIES["classic"]}


def plan_tile(shape: tuple[int, ...], *, bytes_per_pixel: float, plane_copies: float, outputs: int = 1,
              extra_mb: float = 0.0, max_memory_mb: float = DEFAULT_MEMORY_MB, overlap: int = 32) -> int | None:
    """The tile side that keeps one denoising call within `max_memory_mb`, or None for whole planes.

    Parameters
    ----------
    shape : tuple of int
        (P, H, W, C) of the float32 image stack.
    bytes_per_pixel : float
        Working memory of the method per pixel of a tile, in bytes (> 0).
    plane_copies : float
        Full-size float32 copies of one plane the method keeps besides the outputs (>= 0).
    outputs : int, optional
        Full-size float32 output stacks (1, or 2 with an uncertainty map).
    extra_mb : float, optional
        Memory in MiB the method needs whatever the tile size (e.g. networks built per call).
    max_memory_mb : float, optional
        Budget in MiB (> 0) for everything the call allocates: output stacks, plane copies,
        `extra_mb` and one tile's working memory. The interpreter, torch and the weights are
        not counted.
    overlap : int, optional
        Tile overlap in pixels; tiles are at least ``max(64, 2 · overlap + 32)`` pixels wide.

    Returns
    -------
    int or None
        None when a whole plane fits in the budget, else the tile side in pixels (a multiple of 32).

    Raises
    ------
    DenoiselabError
        When even the smallest tile does not fit.

    Examples
    --------
    >>> plan_tile((1, 4000, 6000, 3), bytes_per_pixel=512, plane_copies=1, max_memory_mb=2048)
    1728
    >>> plan_tile((1, 512, 512, 3), bytes_per_pixel=512, plane_copies=1) is None
    True
    """
    p, h, w, c = shape
    plane = h * w * c * 4.0
    fixed = outputs * p * plane + plane_copies * plane + extra_mb * _MIB
    budget = max_memory_mb * _MIB - fixed
    smallest = max(_MIN_TILE, 2 * overlap + 32)
    if budget >= h * w * bytes_per_pixel:
        return None
    side = int(math.sqrt(max(budget, 0.0) / bytes_per_pixel)) // 32 * 32
    if side < smallest:
        need = (fixed + smallest * smallest * bytes_per_pixel) / _MIB
        raise DenoiselabError(f"max_memory_mb={max_memory_mb:g} is too small for a {p}x{h}x{w}x{c} image; "
                              f"this method needs at least {math.ceil(need)} MB")
    return side


def load_svnr_weights(weights=None, channels: int | None = None, device: str | torch.device = "cpu"):
    """The SVNR model `denoise` uses: the shipped one (`weights` None or "svnr") or a ``.safetensors`` path.

    Checks that it is of kind svnr and takes `channels`-channel images (when given).

    Raises
    ------
    DenoiselabError
        Missing or unreadable weights, a model of another kind, or a channel mismatch.
    """
    from os import fspath

    from .svnr.denoise import check_svnr_model
    from .svnr.weights import load_shipped_svnr

    if weights is not None and not isinstance(weights, str):
        try:
            weights = fspath(weights)
        except TypeError:
            raise DenoiselabError(f"svnr_weights={weights!r} must be a path to .safetensors weights or None") from None
    model = load_shipped_svnr("svnr" if weights is None else weights, device=device)
    check_svnr_model(model, channels)
    return model


def denoise(
    image: np.ndarray,
    method: str = "scoredvi",
    *,
    sigma: float | None = None,
    preset: str = "fast",
    iterations: int | None = None,
    beta: float | str = "auto",
    read_noise: float | None = None,
    shot_noise: float | None = None,
    samples: int = 1,
    steps: int | None = None,
    svnr_weights: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    seed: int = 0,
    tile: int | None = None,
    overlap: int = 32,
    max_memory_mb: float | None = None,
    return_details: bool = False,
    progress: bool = False,
) -> np.ndarray | DenoiseResult:
    """Denoise an image, or each plane of a stack, with ScoreDVI, SVNR or a Gaussian denoiser.

    Parameters
    ----------
    image : np.ndarray, shape (H, W), (H, W, C) or (P, H, W, C)
        Noisy image(s), floats (float16/64 are converted to float32), values nominally in
        [0, 1] (noise may push them slightly outside; data far outside, such as 0-255, is
        refused). C = 1 (gray) or 3 (RGB); P planes of a TIFF stack are denoised one by one.
    method : str, optional
        ``"scoredvi"`` (default; real-world noise, unknown level), ``"svnr"`` (diffusion
        posterior sampling for shot + read noise of known or estimated level, RGB only; see
        :mod:`denoiselab.svnr.denoise`) or any name of :func:`denoiselab.list_denoisers`
        (Gaussian denoisers: ``"bfdncnn-color"`` - swapped for ``"bfdncnn-gray"`` on gray
        images -, ``"bm3d"``, ``"nlm"``, ``"tv"``, ``"wavelet"``, ...) or a path to
        ``.safetensors`` weights with their JSON card.
    sigma : float, optional
        Noise standard deviation on the [0, 1] scale (25/255 ≈ 0.098 for σ = 25 on 0-255),
        for the Gaussian denoisers that take one (BM3D, NLM, TV, wavelet, ...). None (default)
        estimates it per plane with :func:`denoiselab.noise.estimate_real_noise` (the noise std
        of the whole plane; pixel-shuffled when the noise is spatially correlated, as in
        camera photos). Where it finds the noise correlated, BM3D is also told the noise's
        estimated covariance, and NLM, TV and wavelet run on stride-2 pixel-shuffled
        sub-images (:class:`~denoiselab.pixel_shuffle.PixelShuffleDenoiser`); ``details.noise``
        then says so under ``"correlated_noise"``. A given `sigma` means white noise. Blind
        networks and ScoreDVI ignore it and nothing is estimated for them; SVNR refuses it
        (give `read_noise` and `shot_noise`).
    preset : {"fast", "paper"}, optional
        ScoreDVI only: "fast" is CPU-sized (≈ 45 s for 256×256 RGB on 2 cores); "paper" is the
        published setting (400 iterations, GPU advised).
    iterations : int, optional
        ScoreDVI only: overrides the preset's iteration count (>= 1).
    beta : float or "auto", optional
        ScoreDVI only: rate of the Gamma noise-precision hyperprior, > 0 (0.02 heavy noise,
        0.01 medium, 0.005 light), or "auto" to pick it from the estimated noise level.
    read_noise, shot_noise : float, optional
        SVNR only: the read-noise std σ_r and shot-noise coefficient σ_s of the noise model
        ``σ²(x) = σ_r² + σ_s² · x`` on the LINEAR [0, 1] scale (x = the linear intensity of the
        sRGB pixel, 1 = white; not the 0-255 scale), each in [0, 1]; typical 0.001-0.2 and
        0.0001-0.05 (the shipped model's training ranges: a value above warns). Both None
        (default) estimates them per plane from the image (a fit of σ²(x) = a·x + b on
        weak-texture patches, :func:`denoiselab.svnr.denoise.estimate_svnr_noise`, on
        :func:`denoiselab.noise.estimate_real_noise`; give them when known).
    samples : int, optional
        SVNR only: posterior samples K >= 1 (default 1); the output is their mean (taken on
        the linear scale) and, for K >= 2, their per-pixel std is the uncertainty. Time and
        tile memory grow linearly with K.
    steps : int, optional
        SVNR only: network calls per chain, >= 1. Default None: set by the noise (⌈max t*⌉, e.g.
        1, 5 and 12 for σ_r/σ_s = 0.01/0.02, 0.04/0.04, 0.1/0.05); fewer is faster and, on the
        shipped model, costs little (``benchmarks/results/svnr/``).
    svnr_weights : str or path, optional
        SVNR only: ``.safetensors`` weights of kind svnr with their JSON card (written by
        ``denoiselab train-svnr``); default the shipped model.
    device : str, optional
        "auto" (a CUDA GPU when present), "cpu", "cuda" or "cuda:N". The classical denoisers
        always run on the CPU.
    precision : {"auto", "fp32", "bf16"}, optional
        Arithmetic of the networks (Gaussian denoisers and ScoreDVI's priors): "fp32" exact;
        "bf16" faster where the hardware has native bf16, 0.03-0.1 dB lower on the shipped
        priors (``benchmarks/results/precision/``); "auto" (default) picks bf16 only where it
        is native and costs at most 0.02 dB, which no shipped prior meets today, so float32.
    seed : int, optional
        ScoreDVI's seed (networks and samples), SVNR's (ancestral noise; each plane of a stack
        starts from it afresh); the same seed gives the same output on the CPU (for SVNR: with
        the same tiling). The other methods are deterministic.
    tile : int, optional
        Side of the square tiles in pixels (> `overlap`). None (default) picks it from
        `max_memory_mb` (see Notes); ScoreDVI's tiles are at most its preset's 512 pixels.
    overlap : int, optional
        Pixels shared by neighbouring tiles, 0 <= overlap < tile (default 32); outputs are
        blended with raised-cosine weights across it.
    max_memory_mb : float, optional
        Memory budget in MiB (> 0) for what this call allocates (see Notes); default
        :data:`DEFAULT_MEMORY_MB` (2048). Ignored when `tile` is given.
    return_details : bool, optional
        Return a :class:`DenoiseResult` (uncertainty map, noise level, timing) instead of the array.
    progress : bool, optional
        Show progress bars on stderr (tiles and planes; ScoreDVI's iterations; SVNR's network calls).

    Returns
    -------
    np.ndarray or DenoiseResult
        The denoised image, float32, the input's shape, not clipped; or, with
        `return_details`, a :class:`DenoiseResult` holding it.

    Raises
    ------
    DenoiselabError
        For a non-float or wrongly shaped image, NaN/inf or 0-255 values, an unknown method, a
        sigma outside [0, 1], a gray/RGB mismatch with the chosen network, bad tile settings, a
        budget too small for the image, ScoreDVI options out of range, or SVNR options out of
        range (negative noise, samples < 1, a gray image, missing weights, SVNR options with
        another method).

    Notes
    -----
    Memory. The budget covers the output array (and ScoreDVI's uncertainty map), one or two
    full-size float32 copies of one plane (the noise estimate; ScoreDVI's accumulators) and the
    working memory of one tile; the interpreter, torch, the weights and the input array come on
    top (about 0.25 GB resident on the CPU, plus the input). With `tile` None the tile is the
    largest multiple of 32 pixels whose measured working memory per pixel fits what is left of
    the budget, or the whole plane when that fits (:func:`plan_tile`). The outputs are written
    to before the first tile, so a budget that cannot hold them fails at once. Measured on the
    CPU for a 24-megapixel RGB photo (6000×4000) at the default budget of 2048 MiB, the call
    allocated at most 1764 MiB with any method and the whole process peaked at 2272 MiB
    (benchmarks/results/tiling_memory/). On a GPU only one tile at a time goes to the device
    (ScoreDVI keeps one plane and its two accumulators there), so the same budget bounds the
    GPU memory as long as the per-pixel figures hold there (not measured yet).

    Tiling changes the result only near tile borders, and by little: on a 512×512 photo with
    256-pixel tiles the PSNR moved by 0.0005 dB (BF-DnCNN) and 0.0003 dB (NLM); the tests
    require < 0.05 dB (tests/test_tiling.py). The noise level is estimated on the whole plane,
    not per tile (SVNR: at most its central 4.2 MP). SVNR draws new samples in every tile (one
    random stream per plane, so the output depends on the tiling as well as the seed) and its
    UNet normalises features per tile (GroupNorm): on 320² CBSD68 crops with K = 2, 128-pixel
    tiles scored 0.17 dB above whole images (3 crops; a different seed moved 0.05 dB).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> clean = np.tile(np.linspace(0.2, 0.8, 64, dtype=np.float32), (64, 1))
    >>> noisy = (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)
    >>> x_hat = denoise(noisy, "bfdncnn-gray", device="cpu")
    >>> x_hat.shape, x_hat.dtype
    ((64, 64), dtype('float32'))
    >>> bool(np.abs(x_hat - clean).mean() < np.abs(noisy - clean).mean() / 2)
    True
    """
    start = time.perf_counter()
    stack = _as_stack(image)
    sigma = _check_sigma(sigma)
    if max_memory_mb is not None and (isinstance(max_memory_mb, bool) or not max_memory_mb > 0):
        raise DenoiselabError(f"max_memory_mb={max_memory_mb!r} must be a positive number of MiB (e.g. 2048)")
    budget = DEFAULT_MEMORY_MB if max_memory_mb is None else float(max_memory_mb)
    family = _FAMILIES.get(method, _FAMILIES["gaussian"])
    read, shot = check_svnr_options(method, {"read_noise": read_noise, "shot_noise": shot_noise, "samples": samples,
                                             "steps": steps, "svnr_weights": svnr_weights}, sigma_given=sigma is not None)
    job = _Job(stack=stack, device=resolve_device(device), seed=seed, progress=progress, overlap=overlap,
               options={"sigma": sigma, "preset": preset, "iterations": iterations, "beta": beta, "read": read,
                        "shot": shot, "samples": samples, "steps": steps, "svnr_weights": svnr_weights,
                        "precision": resolve_precision(precision, resolve_device(device))})
    family.check(job)
    job.name, job.denoiser = family.load(method, job)
    if family is _FAMILIES["gaussian"] and is_blind(job.denoiser):
        family = _FAMILIES["blind"]
    job.tile = tile if tile is not None else family.plan_tile(job, budget)
    job.settings = {"device": str(job.device), "tile": job.tile, "overlap": overlap, "max_memory_mb": budget,
                    "seed": seed, "precision": job.options["precision"]}
    out, unc, noise = family.run(job)
    restore = _restore_shape(image)
    if job.device.type == "cuda":
        torch.cuda.synchronize(job.device)
    x_hat = restore(out)
    if not return_details:
        return x_hat
    return DenoiseResult(image=x_hat, uncertainty=None if unc is None else restore(unc), noise=noise, method=job.name,
                         settings=job.settings, seconds=time.perf_counter() - start)


# --------------------------------------------------------------------------- method families
# Each family of methods is three small functions behind one dispatch (_FAMILIES): check its
# options before anything loads, load it, pick its tile, run it. A new method joins a family or
# adds one entry here.


@dataclass(eq=False)
class _Job:
    """One :func:`denoise` call, as the family functions see it."""

    stack: np.ndarray
    device: torch.device
    seed: int
    progress: bool
    overlap: int
    options: dict
    name: str = ""
    denoiser: object = None
    tile: int | None = None
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Family:
    check: object  # (job) -> None, raises DenoiselabError
    load: object  # (method, job) -> (name, denoiser)
    plan_tile: object  # (job, budget MiB) -> tile side or None
    run: object  # (job) -> (out, uncertainty or None, noise dict)


def _no_check(job: _Job) -> None:  # noqa: ARG001 - nothing to check before loading
    return None


def _plan_by_footprint(job: _Job, budget: float) -> int | None:
    footprint = _footprint(job.name, job.denoiser, job.options["preset"], shape=job.stack.shape,
                           samples=job.options["samples"], estimate=job.options["read"] is None)
    return plan_tile(job.stack.shape, max_memory_mb=budget, overlap=job.overlap, **footprint)


def _check_scoredvi(job: _Job) -> None:
    get_preset(job.options["preset"])  # an unknown preset fails before anything runs


def _plan_scoredvi(job: _Job, budget: float) -> int:
    side = _plan_by_footprint(job, budget)
    max_side = get_preset(job.options["preset"]).max_side  # the preset's tile size is also a quality and time setting
    return max_side if side is None else min(side, max_side)


def _load_svnr(method: str, job: _Job):  # noqa: ARG001 - always "svnr"
    from .svnr.denoise import check_svnr_noise

    model = load_svnr_weights(job.options["svnr_weights"], job.stack.shape[3], job.device)
    check_svnr_noise(job.options["read"], job.options["shot"], card=model.card, stacklevel=4)  # warns above range
    return "svnr", model


def _load_gaussian(method: str, job: _Job):
    if not isinstance(method, str) or (method not in list_denoisers() and not method.endswith(".safetensors")):
        raise DenoiselabError(f"unknown denoiser {method!r}; choose scoredvi, svnr or one of: "
                              f"{', '.join(list_denoisers())}")
    return load_denoiser_for(method, job.stack.shape[3], job.device, precision=job.options["precision"])


def _run_blind(job: _Job):
    """A blind network removes what it sees: no noise level is estimated, none is reported."""
    out, _ = _run_gaussian(job.stack, job.name, job.denoiser, 0.0, job.tile, job.overlap, device=job.device,
                           progress=job.progress, settings=job.settings)
    return out, None, {}


def _run_sigma_driven(job: _Job):
    out, noise = _run_gaussian(job.stack, job.name, job.denoiser, job.options["sigma"], job.tile, job.overlap,
                               device=job.device, progress=job.progress, settings=job.settings)
    return out, None, noise


def _run_scoredvi_job(job: _Job):
    o = job.options
    return _run_scoredvi(job.stack, job.tile, job.overlap, preset=o["preset"], iterations=o["iterations"],
                         beta=o["beta"], seed=job.seed, device=job.device, precision=o["precision"],
                         progress=job.progress, settings=job.settings)


def _run_svnr_job(job: _Job):
    o = job.options
    return _run_svnr(job.stack, job.denoiser, o["read"], o["shot"], o["samples"], job.tile, job.overlap,
                     steps=o["steps"], seed=job.seed, progress=job.progress, settings=job.settings)


_FAMILIES = {
    "scoredvi": _Family(_check_scoredvi, lambda method, job: (method, None), _plan_scoredvi, _run_scoredvi_job),
    "svnr": _Family(_no_check, _load_svnr, _plan_by_footprint, _run_svnr_job),
    "gaussian": _Family(_no_check, _load_gaussian, _plan_by_footprint, _run_sigma_driven),
    "blind": _Family(_no_check, _load_gaussian, _plan_by_footprint, _run_blind),
}


def _restore_shape(image: np.ndarray):
    if image.ndim == 2:
        return lambda stack: stack[0, :, :, 0]
    if image.ndim == 3:
        return lambda stack: stack[0]
    return lambda stack: stack


def _run_gaussian(stack: np.ndarray, name: str, denoiser, sigma: float | None, tile: int | None, overlap: int, *,
                  device: torch.device, progress: bool, settings: dict) -> tuple[np.ndarray, dict]:
    from tqdm.auto import tqdm

    n_planes, h, w, _ = stack.shape
    network = isinstance(denoiser, torch.nn.Module)
    work_device = device if network else torch.device("cpu")
    settings["device"] = str(work_device)
    if tile is None:  # one tile covering the whole plane
        side, overlap = max(h, w), 0
    else:
        side = tile
    n_tiles = count_tiles(h, w, side, overlap)
    settings["n_tiles"] = n_tiles
    out = np.empty(stack.shape, dtype=np.float32)
    out.fill(0.0)  # touched now, not tile by tile: memory is at its plateau from the first tile, so a
    # budget that does not fit fails at once, not hours into a slow method
    sigmas: list[float] = []
    correlated: list[bool] = []
    handling: str | None = None  # how correlated noise was handled, where it was found
    show = progress and (n_planes * n_tiles > 1 or not network)
    with tqdm(total=n_planes * n_tiles, desc=name, unit="tile" if n_tiles > 1 else "plane", disable=not show) as bar:
        for p in range(n_planes):
            y = torch.from_numpy(stack[p]).permute(2, 0, 1)[None]  # (1, C, H, W) view, no copy
            plane_denoiser, s = denoiser, sigma
            if sigma is None:
                estimate = _estimate_noise_for_caller(y)
                s = float(estimate.sigma[0])
                if hasattr(denoiser, "for_noise"):  # it adapts to correlated noise (covariance or pixel-shuffle)
                    plane_denoiser = denoiser.for_noise(y, estimate)
                    how = getattr(plane_denoiser, "correlated_noise", None)
                    correlated.append(how is not None)
                    handling = handling or how
            sigmas.append(s)
            run_tile = _tile_runner(plane_denoiser, torch.full((1,), s, device=work_device), bar)
            denoise_tiled(run_tile, y, side, overlap, out=torch.from_numpy(out[p]).permute(2, 0, 1)[None])
    noise: dict = {"sigma": sigmas}
    if correlated:
        noise["correlated"] = correlated
    if handling:
        noise["correlated_noise"] = handling
    return out, noise


def _estimate_noise_for_caller(y: torch.Tensor):
    """:func:`denoiselab.noise.estimate_real_noise` of one (1, C, H, W) plane (warnings at the caller)."""
    from .noise import estimate_real_noise

    # here -> _run_gaussian -> _run_sigma_driven -> denoise -> caller (from _for_caller: + 1)
    return _for_caller(estimate_real_noise, y, stacklevel=6)


def _tile_runner(denoiser, sigma: torch.Tensor, bar):
    """``tile -> denoiser(tile, sigma)`` on `sigma`'s device, back on the CPU as float32; ticks `bar`."""

    def run_tile(t: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            x_hat = denoiser(t.to(sigma.device, memory_format=torch.contiguous_format), sigma)
        bar.update()
        return x_hat.to("cpu", torch.float32)

    return run_tile


def _for_caller(estimate, y: torch.Tensor, *, stacklevel: int):
    """``estimate(y)`` with its warnings re-issued `stacklevel` frames up: at the caller of :func:`denoise`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = estimate(y)
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=stacklevel)
    return result


def _run_scoredvi(stack: np.ndarray, tile: int | None, overlap: int, *, preset: str, iterations: int | None,
                  beta: float | str, seed: int, device: torch.device, precision: str, progress: bool,
                  settings: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    from tqdm.auto import tqdm

    n_planes, h, w, _ = stack.shape
    base = get_preset(preset)
    side = base.max_side if tile is None else tile
    if iterations is not None and (isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1):
        raise DenoiselabError(f"iterations={iterations!r} must be a positive integer (the fast preset uses {base.n_iter})")
    cfg = get_preset(base, n_iter=iterations, max_side=side, tile_overlap=overlap)
    settings.update(tile=side if max(h, w) > side else None, n_tiles=count_tiles(h, w, side, overlap),
                    preset=cfg.name, iterations=cfg.n_iter, beta=beta)
    out = np.empty(stack.shape, dtype=np.float32)
    unc = np.empty(stack.shape, dtype=np.float32)
    out.fill(0.0)  # touched now (see _run_gaussian)
    unc.fill(0.0)
    noise: dict[str, list[float]] = {"delta255": [], "lam": [], "beta": []}
    for p in tqdm(range(n_planes), desc="planes", unit="plane", disable=not (progress and n_planes > 1)):
        res = scoredvi(stack[p], preset=cfg, beta=beta, seed=seed, device=device, precision=precision, progress=progress)
        out[p] = res.image
        np.clip(res.variance, 0, None, out=unc[p])
        np.sqrt(unc[p], out=unc[p])
        for key in noise:
            noise[key].append(float(res.record[key][0]))
        del res
    return out, unc, noise


def _run_svnr(stack: np.ndarray, model, read: float | None, shot: float | None, samples: int, tile: int | None,
              overlap: int, *, steps: int | None = None, seed: int, progress: bool,
              settings: dict) -> tuple[np.ndarray, np.ndarray | None, dict]:
    from tqdm.auto import tqdm

    from .svnr.denoise import check_svnr_noise, estimate_svnr_noise, exposure_scale, sample_mean_std

    n_planes, h, w, _ = stack.shape
    side, overlap = (max(h, w), 0) if tile is None else (tile, overlap)
    n_tiles = count_tiles(h, w, side, overlap)
    settings.update(device=str(next(model.model.parameters()).device), n_tiles=n_tiles, samples=samples,
                    noise_source="estimated" if read is None else "given", weights=model.card.get("name"))
    out = np.empty(stack.shape, dtype=np.float32)
    out.fill(0.0)  # touched now (see _run_gaussian)
    unc = None
    if samples > 1:
        unc = np.empty(stack.shape, dtype=np.float32)
        unc.fill(0.0)
    noise: dict[str, list[float]] = {"read": [], "shot": [], "stride": [], "exposure": []}
    calls = 0
    show = progress and n_planes * n_tiles > 1
    with tqdm(total=n_planes * n_tiles, desc="svnr", unit="tile" if n_tiles > 1 else "plane", disable=not show) as bar:
        for p in range(n_planes):
            y = torch.from_numpy(stack[p]).permute(2, 0, 1)[None]  # (1, C, H, W) view, no copy
            if read is None:
                # _run_svnr -> _run_svnr_job -> denoise -> caller
                r, s, stride = _for_caller(functools.partial(estimate_svnr_noise, return_stride=True), y, stacklevel=5)
                check_svnr_noise(r, s, card=model.card, stacklevel=5)  # warns above the training range
            else:
                r, s, stride = read, shot, 1
            noise["read"].append(r)
            noise["shot"].append(s)
            noise["stride"].append(stride)
            noise["exposure"].append(exposure_scale(s, model.card))
            gen = torch.Generator().manual_seed(int(seed))  # each plane afresh: a plane alone gives the same result

            def run_tile(t: torch.Tensor, r=r, s=s, gen=gen, stride=stride):
                nonlocal calls
                mean, std, n, _ = sample_mean_std(t, model, [r], [s], samples=samples, steps=steps, generator=gen,
                                                  progress=progress, stride=stride)
                calls = max(calls, n)
                bar.update()
                return mean if std is None else (mean, std)

            target = torch.from_numpy(out[p]).permute(2, 0, 1)[None]
            if unc is not None:
                target = (target, torch.from_numpy(unc[p]).permute(2, 0, 1)[None])
            denoise_tiled(run_tile, y, side, overlap, out=target)
    settings["calls"] = calls
    return out, unc, noise
