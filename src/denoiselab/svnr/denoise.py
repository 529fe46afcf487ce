"""SVNR on users' images: sRGB in, sRGB out, several posterior samples, their mean and spread.

The sampler (:func:`~denoiselab.svnr.diffusion.sample_svnr`) works on the linear scale; image
files hold sRGB values. :func:`denoise_svnr` does the conversions around it:

    y_lin  = to_linear(y_srgb)                          (white level 1: the file's white is 1)
    σ̂²     = read² + shot² · clip(y_lin, 0, 1)          (:func:`~denoiselab.svnr.noise.estimate_variance`)
    x_k    = sample_svnr(model, y_lin, σ̂²), k = 1..K    (K chains run as one batch, one seed)
    mean   = to_srgb(mean_k clip(x_k, 0, 1))            (averaged on the linear scale)
    std    = std_k to_srgb(clip(x_k, 0, 1))             (K >= 2; spread of the sRGB samples)

Units. `read` and `shot` are the σ_r, σ_s of the linear shot + read noise model
(:mod:`denoiselab.svnr.noise`) on the LINEAR [0, 1] scale (1 = the file's white), not on the
0-255 sRGB scale: a pixel of linear value x has noise std √(read² + shot²·x). Typical values:
read 0.001-0.2, shot 0.0001-0.05 (the training ranges of the shipped model, recorded in its
card under ``noise.read_range`` / ``noise.shot_range``); a warning says when a value is above
its training range, where the network has never seen such noise. Values below the ranges are
harmless (σ is floored at 1e-3 anyway).

Why the mean is taken on the linear scale. The network's posterior is over linear intensities,
so the mean of the samples there is the posterior-mean (MMSE) estimate of the light in the
scene; it is converted to sRGB once. Each sample is first clipped to [0, 1] (the clean linear
image lies there, so clipping never moves a sample away from it). The sRGB of the linear mean
is a little brighter than the mean of the sRGB samples (the sRGB curve is concave), by an
amount of the order of the samples' spread squared. The uncertainty map is the standard
deviation (Bessel-corrected, K − 1) of the K samples after conversion to sRGB, i.e. on the
scale of the output image.

Noise estimation (``read=None, shot=None``; :func:`estimate_svnr_noise`). The linear image is
given to :func:`denoiselab.noise.estimate_real_noise`, whose noise level function (all channels
together, each level corrected for clipping at 0 and 1) is fitted with σ²(x) = a·x + b;
``shot = √a``, ``read = √b``, floored at 1e-3 (σ's floor) and 0; images above 4.2 MP are estimated on
their central 4.2 MP crop. It is an estimate: it is biased on images without flat regions or
below about 100×100 pixels (the estimator then warns).

Two adaptations make the small model usable on real photos (measured on the bundled SIDD
photo, ``examples/sidd_18_1_noisy.png``, 18.52 dB noisy; the estimate there is read 0.036, shot
0.139 against 0.034, 0.133 fitted to its noisy − clean pair; with both, ``auto`` reaches 25.63 dB,
``benchmarks/results/real_noise_estimation/``):

- *Exposure scaling* (:func:`exposure_scale`): shot noise above the trained range is brought
  into it by darkening the image, an exact symmetry of the noise model (shot 0.139 → 0.05 is
  k = 0.13). Without it SVNR reached 24.00 dB on that photo (the first svnr-s, whose training
  time maps came from the clean image, 18.67).
- *Pixel-shuffle for correlated noise*: demosaicking and the camera's processing correlate
  neighbouring pixels' noise, which a model trained on pixel-independent noise reads as image
  content. When the estimate found the noise correlated (its stride 4), the chains run on the
  16 stride-4 sub-images, where the noise is close to white, and the samples are put back
  together (:func:`~denoiselab.pixel_shuffle.pd_apply`). Given noise is taken as white.

The number of network calls is not a setting: the chain starts at each pixel's own time
t* = γ⁻¹(σ̂²) and needs ⌈max t*⌉ calls, set by the brightest pixel's σ̂²: 1 call for
(read, shot) = (0.01, 0.02), 5 for (0.04, 0.04), 12 for (0.1, 0.05), 25 for (0.2, 0.05).
Each call runs all K samples at once, so time and memory grow linearly with K. With the shipped
model (svnr-s) on 256² centre crops of the first 3 CBSD68 images (8-bit sRGB files, true noise
given), K = 4 gained 0.9 dB over one sample at (0.05, 0.02) (27.19 → 28.11 dB; noisy 20.18) and
1.7 dB at (0.15, 0.05) (21.67 → 23.34; noisy 14.03); one sample took 1.4 s (5 calls) and 5.0 s
(19 calls) on one CPU thread (the same network's time, measured with the first svnr-s).
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from ..errors import DenoiselabError
from .diffusion import check_steps, sample_svnr
from ..pixel_shuffle import pd_apply
from .noise import SHOT_RANGE, SIGMA_FLOOR, estimate_variance, to_linear, to_srgb
from .train import SVNRModel

__all__ = ["ESTIMATE_STRIDE", "ESTIMATE_MAX_PIXELS", "check_samples", "check_svnr_noise", "check_svnr_model",
           "estimate_svnr_noise", "exposure_scale", "denoise_svnr", "sample_mean_std"]

#: Pixel-shuffle stride of the noise estimate (see :func:`estimate_svnr_noise`).
ESTIMATE_STRIDE = "auto"
#: Images larger than this many pixels are estimated on a central crop of that size.
ESTIMATE_MAX_PIXELS = 2048 * 2048


def check_svnr_noise(read, shot, *, card: dict | None = None, stacklevel: int = 2,
                     names: tuple[str, str] = ("read_noise=", "shot_noise=")) -> tuple[float | None, float | None]:
    """Validate SVNR noise parameters: both None (estimate them), or two numbers in [0, 1].

    Warns (UserWarning) when a value is above the training range recorded in `card`
    (``card["noise"]["read_range"]`` / ``["shot_range"]``). `names` prefix the values in
    messages (the CLI gives its flags).

    Returns
    -------
    read, shot : float or None
    """
    if read is None and shot is None:
        return None, None
    r_name, s_name = names
    if read is None or shot is None:
        raise DenoiselabError(f"give both {r_name.rstrip('= ')} and {s_name.rstrip('= ')} (linear [0, 1] scale), "
                              "or neither to estimate them")
    values = []
    for name, v in ((r_name, read), (s_name, shot)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise DenoiselabError(f"{name}{v!r} must be a finite number (noise std on the linear [0, 1] scale)")
        if v < 0:
            raise DenoiselabError(f"{name}{v:g} is negative; give a noise std >= 0 on the linear [0, 1] scale")
        if v > 1:
            raise DenoiselabError(f"{name}{v:g} is above 1; SVNR's noise is on the linear [0, 1] scale (1 = white), "
                                  f"not 0-255 (typical: read 0.001-0.2, shot 0.0001-0.05)")
        values.append(float(v))
    noise = (card or {}).get("noise") or {}
    for name, v, key in ((r_name, values[0], "read_range"), (s_name, values[1], "shot_range")):
        trained = noise.get(key)
        if isinstance(trained, (list, tuple)) and len(trained) == 2 and v > float(trained[1]):
            what = ("svnr darkens the image until it is inside (exposure scaling)"
                    if key == "shot_range" else "the result may be poor")
            warnings.warn(f"{name}{v:g} is above the model's training range {float(trained[0]):g}-"
                          f"{float(trained[1]):g}; {what}", UserWarning, stacklevel=stacklevel)
    return values[0], values[1]


def check_svnr_model(m: SVNRModel, channels: int | None = None) -> None:
    """Refuse models :func:`denoise_svnr` cannot run, and images of the wrong channel count."""
    if not isinstance(m, SVNRModel):
        raise DenoiselabError(f"model must be an SVNRModel (denoiselab.svnr.load_svnr), got {type(m).__name__}")
    if m.kind not in ("svnr", "svnr-uncorrelated"):
        raise DenoiselabError(f"the SVNR weights are of kind {m.kind!r} (the conditional-diffusion baseline); "
                              "denoising needs weights of kind svnr")
    expected = m.model.channels
    if channels is not None and channels != expected:
        if expected == 3:
            raise DenoiselabError(f"svnr needs an RGB image (its model is trained on 3-channel linear RGB with "
                                  f"independent noise per channel); this image has {channels} channel(s) - use "
                                  "scoredvi or bfdncnn-gray for gray images")
        raise DenoiselabError(f"these SVNR weights take {expected}-channel images; this image has {channels}")


def estimate_svnr_noise(y_srgb: Tensor, *, stride: int | str = ESTIMATE_STRIDE,
                        max_pixels: int | None = ESTIMATE_MAX_PIXELS,
                        return_stride: bool = False) -> tuple[float, float] | tuple[float, float, int]:
    """Estimate SVNR's (read, shot) noise std from one sRGB image, on the linear [0, 1] scale.

    Runs :func:`denoiselab.noise.estimate_real_noise` (the estimator of every ``auto`` in
    denoiselab) on the linear image ``to_linear(y_srgb)``: a noise level function measured
    per intensity class, on stride-4 pixel-shuffled sub-images when the noise is spatially
    correlated (camera-processed photos) and on the image itself when it is white. σ²(x) =
    a·x + b is fitted to the levels of all channels together, each level first corrected for
    the clipping at 0 and 1 (:meth:`~denoiselab.noise.RealNoiseEstimate.shot_read`), and
    ``read = √b`` (at least 1e-3, the floor of σ), ``shot = √a``, both at most 1. For
    correlated camera noise this is the level of pixel-independent noise with the same
    per-pixel variance, which is what SVNR's model can take. Measured errors and the cost
    in dB against the true values: ``benchmarks/results/noise_estimation/``.

    Parameters
    ----------
    y_srgb : Tensor (1, C, H, W)
        One noisy sRGB image in [0, 1], at least 7·stride pixels on each side.
    stride : int or "auto", optional
        Pixel-shuffle stride of the estimator ("auto": 1 or 4, picked by the noise's correlation).
    max_pixels : int or None, optional
        Larger images are estimated on their central crop of about this many pixels (the
        image's aspect ratio; default 2048², 4.2 MP: above about 830² the estimator already
        takes its patches on a sparser grid, so more pixels add little, and memory stays near
        270 MiB); None: the whole image.
    return_stride : bool, optional
        Also return the pixel-shuffle stride the estimate chose: 1 for white noise, 4 for
        spatially correlated noise, which :func:`denoise_svnr` then denoises on pixel-shuffled
        sub-images (see there).

    Returns
    -------
    read, shot : float
    stride : int
        Only with `return_stride`.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.linspace(0.05, 1.0, 256).repeat(1, 3, 256, 1)          # a linear ramp
    >>> y = (x + (0.04**2 + 0.03**2 * x).sqrt() * torch.randn(x.shape, generator=g)).clamp(0, 1)
    >>> r, s = estimate_svnr_noise(to_srgb(y))
    >>> abs(r - 0.04) < 0.006 and abs(s - 0.03) < 0.006
    True
    """
    from ..noise import estimate_real_noise

    if not isinstance(y_srgb, Tensor) or y_srgb.ndim != 4 or y_srgb.shape[0] != 1:
        shape = tuple(y_srgb.shape) if isinstance(y_srgb, Tensor) else type(y_srgb).__name__
        raise DenoiselabError(f"y_srgb must be one image (1, C, H, W), got {shape}")
    h, w = y_srgb.shape[-2:]
    if max_pixels is not None and h * w > max_pixels:
        scale = math.sqrt(max_pixels / (h * w))
        ch, cw = max(int(h * scale), 1), max(int(w * scale), 1)
        top, left = (h - ch) // 2, (w - cw) // 2
        y_srgb = y_srgb[..., top:top + ch, left:left + cw]
    est = estimate_real_noise(to_linear(y_srgb.float()), stride=stride)
    a, b = (float(v) for v in est.shot_read(per_channel=False)[0, 0])
    read, shot = min(max(math.sqrt(max(b, 0.0)), SIGMA_FLOOR), 1.0), min(math.sqrt(max(a, 0.0)), 1.0)
    return (read, shot, int(est.stride[0])) if return_stride else (read, shot)


def exposure_scale(shot: float, card: dict | None) -> float:
    """The factor k <= 1 that darkens an image until its shot noise is inside the model's training range.

    Shot + read noise does not change its form under exposure: for y = x + √(r² + s²·x)·n,
    ``k·y = k·x + √((k·r)² + (√k·s)²·(k·x))·n``, so the darkened image k·y is the signal k·x
    with read noise k·r and shot noise √k·s, exactly. Above the trained shot range the network
    meets a pattern of noise it never learnt: on the bundled SIDD photo's clean image with
    simulated white shot + read noise (0.034, 0.133), SVNR given the true noise gained 7.9 dB
    over the noisy input (18.82 → 26.76); darkened to shot 0.05 (k = 0.14) it gained 10.4 dB
    (29.21). A dim image is the milder departure from training. So k = (s_max / s)² when
    s > s_max (the card's ``noise.shot_range``), else 1; the samples are divided by k afterwards.
    """
    trained = ((card or {}).get("noise") or {}).get("shot_range")
    s_max = float(trained[1]) if isinstance(trained, (list, tuple)) and len(trained) == 2 else SHOT_RANGE[1]
    return 1.0 if shot <= s_max else (s_max / shot) ** 2


@torch.no_grad()
def denoise_svnr(y_srgb: Tensor, model: SVNRModel, *, read_sigma: float | None, shot_sigma: float | None,
                 samples: int = 1, steps: int | None = None, seed: int | None = 0,
                 generator: torch.Generator | None = None, progress: bool = False) -> tuple[Tensor, Tensor | None, dict]:
    """Denoise sRGB images with SVNR: the mean of `samples` posterior samples and, for K >= 2, their std.

    Parameters
    ----------
    y_srgb : Tensor (B, C, H, W)
        Noisy sRGB images in [0, 1] (values outside are clipped); C must be the model's (3).
    model : SVNRModel
        From :func:`~denoiselab.svnr.load_svnr` or :func:`~denoiselab.svnr.weights.load_shipped_svnr`,
        of kind "svnr" (or its ablation "svnr-uncorrelated").
    read_sigma, shot_sigma : float or None
        σ_r and σ_s on the LINEAR [0, 1] scale, in [0, 1] (typical: 0.001-0.2 and 0.0001-0.05);
        both None: estimated from each image (:func:`estimate_svnr_noise`).
    samples : int, optional
        K >= 1 posterior samples, run as one batch of B·K chains.
    steps : int, optional
        Network calls per chain, >= 1: each pixel's time t* is walked down in that many equal
        parts (:func:`~denoiselab.svnr.diffusion.sample_svnr`). Default None: SVNR's unit steps,
        ⌈max t*⌉ calls, set by the noise.
    seed, generator : optional
        Random source of the ancestral noise (one of them; `generator` wins over the default seed 0).
        The same seed gives the same output on the same device and thread count.
    progress : bool, optional
        A tqdm bar over the network calls.

    Returns
    -------
    mean : Tensor (B, C, H, W)
        sRGB in [0, 1]: ``to_srgb`` of the mean of the K linear samples (each clipped to [0, 1]).
    std : Tensor (B, C, H, W) or None
        For K >= 2, the per-pixel standard deviation (Bessel-corrected) of the K samples in
        sRGB, >= 0; None for K = 1.
    info : dict
        ``calls`` (network calls, ⌈max t*⌉ or `steps`), ``t_max`` (max t*, steps), ``read``, ``shot``
        (one float each when B = 1, else lists), ``noise_source`` ("given" or "estimated"),
        ``samples``, ``stride`` (pixel-shuffle stride: 1, or 4 where the estimate found
        spatially correlated noise) and ``exposure`` (the darkening factor k of
        :func:`exposure_scale`, 1 when the shot noise is inside the training range), one
        value each when B = 1, else lists.

    Examples
    --------
    >>> from denoiselab.svnr import SVNRUNet, VESchedule
    >>> m = SVNRModel(SVNRUNet(3, base_width=8).eval(), "svnr", VESchedule(), {})
    >>> y = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> mean, std, info = denoise_svnr(y, m, read_sigma=0.05, shot_sigma=0.02, samples=2)
    >>> mean.shape == std.shape == y.shape, bool((std >= 0).all()), info["calls"]
    (True, True, 5)
    """
    if not isinstance(y_srgb, Tensor) or y_srgb.ndim != 4 or not y_srgb.is_floating_point() or 0 in y_srgb.shape:
        shape = tuple(y_srgb.shape) if isinstance(y_srgb, Tensor) else type(y_srgb).__name__
        raise DenoiselabError(f"y_srgb must be a non-empty float (B, C, H, W) tensor, got {shape}")
    check_svnr_model(model, y_srgb.shape[1])
    check_samples(samples)
    check_steps(steps)
    read, shot = check_svnr_noise(read_sigma, shot_sigma, card=model.card, stacklevel=3)
    b = y_srgb.shape[0]
    if read is None:
        found = [estimate_svnr_noise(y_srgb[i:i + 1], return_stride=True) for i in range(b)]
        for r, s, _ in found:  # warn above the training range
            check_svnr_noise(r, s, card=model.card, stacklevel=3)
        reads, shots, strides = ([f[j] for f in found] for j in range(3))
        source = "estimated"
    else:
        reads, shots, strides, source = [read] * b, [shot] * b, [1] * b, "given"
    gen = generator if generator is not None else torch.Generator().manual_seed(int(0 if seed is None else seed))
    mean = torch.empty_like(y_srgb, dtype=torch.float32)
    std = torch.empty_like(mean) if samples > 1 else None
    calls, t_max, exposure = 0, 0.0, [1.0] * b
    for stride in sorted(set(strides)):  # one batch per pixel-shuffle stride
        idx = [i for i in range(b) if strides[i] == stride]
        m, sd, n, got = sample_mean_std(y_srgb[idx], model, [reads[i] for i in idx], [shots[i] for i in idx],
                                        samples=samples, steps=steps, generator=gen, progress=progress, stride=stride)
        mean[idx] = m
        if std is not None:
            std[idx] = sd
        calls, t_max = max(calls, n), max(t_max, got["t_max"])
        for i, e in zip(idx, got["exposure"]):
            exposure[i] = e
    one = (lambda v: v[0]) if b == 1 else (lambda v: v)
    info = {"calls": calls, "t_max": t_max, "read": one(reads), "shot": one(shots), "noise_source": source,
            "samples": samples, "stride": one(strides), "exposure": one(exposure)}
    return mean, std, info


def check_samples(samples, *, name: str = "samples=") -> int:
    """`samples` must be an integer >= 1 (`name` prefixes it in the message)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise DenoiselabError(f"{name}{samples!r} must be an integer >= 1 (posterior samples to average)")
    return samples


#: SVNR's options of :func:`denoiselab.denoise` (and of a batch), with the values that mean "not given".
SVNR_OPTIONS = {"read_noise": None, "shot_noise": None, "samples": 1, "steps": None, "svnr_weights": None}


def check_svnr_options(method: str, options: dict, *, sigma_given: bool,
                       cli: bool = False) -> tuple[float | None, float | None]:
    """SVNR's options are for method "svnr" only, and valid there.

    Parameters
    ----------
    method : str
        The chosen method.
    options : dict
        Values for the keys of :data:`SVNR_OPTIONS` (a missing key is not given).
    sigma_given : bool
        Whether a Gaussian noise level was given too (svnr refuses one).
    cli : bool, optional
        Name the options as the command line spells them (``--read-noise 0.1``), not as
        keywords (``read_noise=0.1``).

    Returns
    -------
    read, shot : float or None
        Checked noise parameters (None: estimate them; also for other methods).
    """
    def name(key: str) -> str:
        return "--" + key.replace("_", "-") if cli else key

    def prefix(key: str) -> str:
        return f"{name(key)} " if cli else f"{key}="

    if method != "svnr":
        given = [name(k) for k, default in SVNR_OPTIONS.items() if options.get(k, default) != default]
        if given:
            one, svnr = len(given) == 1, "--method svnr" if cli else "method='svnr'"
            raise DenoiselabError(f"{', '.join(given)} {'is' if one else 'are'} for {svnr}; {method} does not take "
                                  f"{'it' if one else 'them'}")
        return None, None
    if sigma_given:
        raise DenoiselabError(f"{name('sigma')} is for the Gaussian denoisers; svnr takes {name('read_noise')} and "
                              f"{name('shot_noise')} (linear [0, 1] scale), or "
                              f"{'--noise auto' if cli else 'neither'} to estimate them")
    check_samples(options.get("samples", 1), name=prefix("samples"))
    check_steps(options.get("steps"), name=prefix("steps"))
    return check_svnr_noise(options.get("read_noise"), options.get("shot_noise"),
                            names=(prefix("read_noise"), prefix("shot_noise")))


@torch.no_grad()
def sample_mean_std(y_srgb: Tensor, model: SVNRModel, reads: list[float], shots: list[float], *, samples: int,
                    steps: int | None = None, generator: torch.Generator | None,
                    progress: bool = False, stride: int = 1) -> tuple[Tensor, Tensor | None, int, dict]:
    """The core of :func:`denoise_svnr`, without its checks: one (read, shot) per image given.

    Darkens each image whose shot noise is above the training range (:func:`exposure_scale`)
    and, for ``stride > 1``, samples the pixel-shuffled sub-images (:func:`~denoiselab.pixel_shuffle.pd_apply`).
    Returns ``(mean, std or None, calls, info)`` on `y_srgb`'s device, float32; `info` holds
    ``t_max`` (max t*, steps) and ``exposure`` (k per image, 1 = unchanged).
    """
    b, k = y_srgb.shape[0], samples
    device = next(model.model.parameters()).device
    exposure = [exposure_scale(s, model.card) for s in shots]
    scale = torch.tensor(exposure, dtype=torch.float32, device=device).view(b, 1, 1, 1)
    y_lin = to_linear(y_srgb.to(device, torch.float32, memory_format=torch.contiguous_format)) * scale
    reads = torch.tensor([r * e for r, e in zip(reads, exposure)], dtype=torch.float64)
    shots = torch.tensor([s * math.sqrt(e) for s, e in zip(shots, exposure)], dtype=torch.float64)
    found: dict[str, float | int] = {}

    def chains(y: Tensor) -> Tensor:  # (n, C, h, w) -> the mean-of-K input: (n·K, C, h, w) samples
        n = y.shape[0]
        per = n // b  # sub-images per image (stride²)
        sigma2 = estimate_variance(y, reads.repeat_interleave(per), shots.repeat_interleave(per))
        found["t_max"] = float(model.schedule.time_map(sigma2).max())
        if k > 1:  # K chains per image, as one batch: image i's samples are rows i·K .. i·K + K − 1
            y, sigma2 = y.repeat_interleave(k, 0), sigma2.repeat_interleave(k, 0)
        x, found["calls"] = sample_svnr(model.model, y, sigma2, steps=steps, schedule=model.schedule,
                                        generator=generator, progress=progress, return_calls=True)
        return x.clamp_(0, None).view(n, k, *x.shape[1:]).transpose(0, 1).reshape(n * k, *x.shape[1:])

    # the K samples of all images as (K·B, C, H, W): pd_apply shuffles and restores each of them
    x = pd_apply(chains, y_lin, stride, out_batch=k * b)  # stride 1: chains(y_lin) itself
    if k > 1 and found["calls"] == 1:  # a one-step chain adds no noise: every sample is the same estimate
        warnings.warn(f"the noise is within SVNR's first step, so each chain is one deterministic network call: the "
                      f"{k} samples are identical and their spread is 0; give steps >= 2 (--steps) for a spread",
                      UserWarning, stacklevel=3)
    del y_lin
    x = (x.view(k, b, *x.shape[1:]).transpose(0, 1) / scale[:, None]).clamp_(0, 1)  # (B, K, C, H, W)
    mean = to_srgb(x.mean(1))
    std = to_srgb(x.flatten(0, 1)).view(b, k, *x.shape[2:]).std(1) if k > 1 else None
    del x
    out = y_srgb.device
    info = {"t_max": found["t_max"], "exposure": exposure}
    return (mean.to(out, torch.float32), None if std is None else std.to(out, torch.float32), int(found["calls"]), info)
