"""What the napari widget runs, without napari: layer data in, denoised planes and uncertainty out.

The widget (:mod:`denoiselab.napari._widget`) only collects choices and shows results; this
module checks a layer's data, converts it to the float32 planes in [0, 1] that
:func:`denoiselab.denoise` takes, runs one method plane by plane (a generator, so a thread
worker can report progress and stop between planes) and converts the result back to the
layer's dtype. Nothing here imports napari or Qt, so it is tested without a display.

Conventions
-----------
* Integer layers are scaled by their dtype's range, as ``denoiselab.io.read_image`` does for
  files: 8-bit by 255, 16-bit by 65535. Float layers must already hold values in [0, 1].
* Every leading axis (planes of a stack, z of a volume, time) is a plane of its own; each plane
  is denoised in 2-D with the same seed, exactly as ``denoise`` treats a (P, H, W, C) stack.
* The noise level a user types is in the layer's own units (gray levels: 0-255 for 8-bit,
  0-65535 for 16-bit, [0, 1] for floats), and so is the uncertainty layer.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from ..errors import DenoiselabError

__all__ = ["PRECISIONS", "PreparedImage", "denoise_planes", "list_methods", "method_uses_sigma", "parse_sigma",
           "prepare_image", "supports_precision", "to_layer_dtype"]

#: ScoreDVI's presets as widget choices: name -> preset.
SCOREDVI_METHODS = {"scoredvi-fast": "fast", "scoredvi-paper": "paper"}
#: The paper's single-image baselines the widget offers, run as ``denoiselab bench`` runs them.
BASELINE_METHODS = ("pd-denoising", "nn-bm3d-cpu", "nn-bm3d")
#: The choices of ``denoise(..., precision=...)`` (shown only where ``denoise`` takes it).
PRECISIONS = ("auto", "fp32", "bf16")
_INTEGER_RANGES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


@dataclass(frozen=True)
class PreparedImage:
    """A layer's data checked and viewed as planes for :func:`denoise_planes`.

    Attributes
    ----------
    source : np.ndarray, shape (N, H, W, C)
        The layer's data, a view when possible, in its own dtype (C = 1 gray, 3 RGB); N is the
        product of the leading axes. :meth:`plane` converts one plane at a time, so a large
        stack is never held as a second, float copy.
    shape : tuple of int
        The layer data's shape, which the results take back.
    dtype : np.dtype
        The layer data's dtype, which the denoised layer keeps.
    data_range : float
        What 1.0 is in the layer's units: 255, 65535, or 1 for float data.
    rgb : bool
        Whether the last axis holds the three colour channels.
    """

    source: np.ndarray
    shape: tuple[int, ...]
    dtype: np.dtype
    data_range: float
    rgb: bool

    @property
    def n_planes(self) -> int:
        """Number of 2-D planes to denoise."""
        return self.source.shape[0]

    def plane(self, index: int) -> np.ndarray:
        """Plane `index` as float32 (H, W, C) on [0, 1] (the dtype's range mapped to [0, 1])."""
        return self.source[index].astype(np.float32) / np.float32(self.data_range)


def list_methods() -> list[str]:
    """The method names the widget offers, ScoreDVI first.

    ScoreDVI's ``fast`` and ``paper`` presets, BM3D, the paper's PD-denoising and NN+BM3D
    (``nn-bm3d-cpu`` is a CPU budget, ``nn-bm3d`` the authors' settings), then every other
    Gaussian denoiser of :func:`denoiselab.list_denoisers`.

    Examples
    --------
    >>> methods = list_methods()
    >>> methods[:3]
    ['scoredvi-fast', 'scoredvi-paper', 'bm3d']
    >>> "pd-denoising" in methods and "tv" in methods
    True
    """
    from ..denoisers import list_denoisers

    named = [name for name in list_denoisers() if name != "bm3d"]
    return [*SCOREDVI_METHODS, "bm3d", *BASELINE_METHODS, *named]


def method_uses_sigma(method: str) -> bool:
    """Whether a typed noise level changes what `method` does (the Gaussian denoisers).

    ScoreDVI and the baselines estimate the noise themselves; blind networks ignore σ but
    accept it, so they count as using it (as in ``denoise``).
    """
    return method not in SCOREDVI_METHODS and method not in BASELINE_METHODS


def supports_precision() -> bool:
    """Whether :func:`denoiselab.denoise` takes a ``precision`` keyword (newer versions do)."""
    from ..api import denoise

    return "precision" in inspect.signature(denoise).parameters


def prepare_image(data, *, rgb: bool, name: str) -> PreparedImage:
    """Check an image layer's data and view it as 2-D planes (converted to [0, 1] one at a time).

    Parameters
    ----------
    data : array-like
        The layer's data: (..., H, W) gray or (..., H, W, 3) RGB when `rgb`; 8- or 16-bit
        unsigned integers or floats in [0, 1]. Leading axes are planes.
    rgb : bool
        The layer's ``rgb`` flag (napari sets it for a last axis of 3 or 4).
    name : str
        The layer's name, used in error messages.

    Returns
    -------
    PreparedImage

    Raises
    ------
    DenoiselabError
        One sentence naming the layer: an RGBA (4-channel) layer, fewer than two spatial axes,
        an empty layer, a dtype other than uint8/uint16/float, NaN or infinite values, or float
        values far outside [0, 1].

    Examples
    --------
    >>> stack = np.full((3, 8, 8), 1000, dtype=np.uint16)
    >>> prepared = prepare_image(stack, rgb=False, name="cells")
    >>> prepared.source.shape, prepared.data_range, round(float(prepared.plane(0).max()), 5)
    ((3, 8, 8, 1), 65535.0, 0.01526)
    """
    array = np.asarray(data)
    if rgb and array.shape[-1] != 3:
        raise DenoiselabError(f"layer '{name}' has {array.shape[-1]} colour channels; denoiselab takes gray or RGB "
                              "images - drop the alpha channel (e.g. data[..., :3]) first")
    spatial = array.ndim - (1 if rgb else 0)
    if spatial < 2:
        raise DenoiselabError(f"layer '{name}' of shape {array.shape} is not an image; it needs two spatial axes")
    if array.size == 0:
        raise DenoiselabError(f"layer '{name}' of shape {array.shape} is empty")
    if array.dtype in _INTEGER_RANGES:
        data_range = _INTEGER_RANGES[array.dtype]
    elif np.issubdtype(array.dtype, np.floating):
        data_range = 1.0
    else:
        raise DenoiselabError(f"layer '{name}' has dtype {array.dtype}; denoiselab takes 8- or 16-bit unsigned "
                              "images or floats in [0, 1]")
    channels = 3 if rgb else 1
    height, width = array.shape[spatial - 2:spatial]
    prepared = PreparedImage(source=array.reshape(-1, height, width, channels), shape=tuple(array.shape),
                             dtype=array.dtype, data_range=data_range, rgb=rgb)
    if data_range == 1.0:
        _check_float_values(prepared, name)
    return prepared


def _check_float_values(prepared: PreparedImage, name: str) -> None:
    """Refuse NaN/inf and values far outside [0, 1] (noise may overshoot a little; 0-255 data may not)."""
    for index in range(prepared.n_planes):  # plane by plane keeps the temporaries small
        plane = prepared.plane(index)
        if not np.isfinite(plane).all():
            raise DenoiselabError(f"layer '{name}' contains NaN or infinite values; replace them (e.g. "
                                  "numpy.nan_to_num) before denoising")
        lo, hi = float(plane.min()), float(plane.max())
        if lo < -1.0 or hi > 2.0:
            raise DenoiselabError(f"layer '{name}' holds float values in [{lo:.3g}, {hi:.3g}]; denoiselab takes "
                                  "floats in [0, 1] - rescale the layer or convert it to 8 or 16 bits")


def parse_sigma(text: str, data_range: float) -> float | None:
    """The noise level a user typed, in the layer's units, as a std on the [0, 1] scale.

    Parameters
    ----------
    text : str
        ``"auto"`` (or empty) to estimate it, or a number >= 0 in the layer's units (gray
        levels: 0-255 for 8-bit, 0-65535 for 16-bit; [0, 1] for floats).
    data_range : float
        What 1.0 is in the layer's units (:attr:`PreparedImage.data_range`).

    Returns
    -------
    float or None
        None for ``auto``, else the std on [0, 1].

    Raises
    ------
    DenoiselabError
        When `text` is neither ``auto`` nor a finite number in [0, data_range].

    Examples
    --------
    >>> parse_sigma("auto", 255.0) is None
    True
    >>> round(parse_sigma("25", 255.0), 4)
    0.098
    """
    cleaned = text.strip().lower()
    if cleaned in ("", "auto"):
        return None
    try:
        value = float(cleaned)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or value > data_range:
        raise DenoiselabError(f"noise level {text!r} must be 'auto' or a number from 0 to {data_range:g} in the "
                              "layer's gray levels")
    return value / data_range


def denoise_planes(prepared: PreparedImage, method: str, *, sigma: float | None = None, seed: int = 0,
                   iterations: int | None = None, precision: str | None = None, device: str = "auto"
                   ) -> Generator[int, None, tuple[np.ndarray, np.ndarray | None]]:
    """Denoise each plane in turn, yielding how many are done; return the results in the layer's shape.

    Parameters
    ----------
    prepared : PreparedImage
        From :func:`prepare_image`.
    method : str
        One of :func:`list_methods`.
    sigma : float, optional
        Noise std on the [0, 1] scale for the Gaussian denoisers; None estimates it per plane.
    seed : int, optional
        Seed of the stochastic methods, the same for every plane.
    iterations : int, optional
        ScoreDVI only: iterations instead of the preset's (fast 40, paper 400); fewer is faster
        and rougher. None keeps the preset's.
    precision : str, optional
        Passed to ``denoise`` when it takes a ``precision`` keyword and the method runs through
        it; None leaves ``denoise``'s default.
    device : str, optional
        ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Yields
    ------
    int
        Planes finished so far (1 .. N), after each plane.

    Returns
    -------
    denoised : np.ndarray
        float32 on [0, 1] (not clipped), the layer's shape.
    uncertainty : np.ndarray or None
        ScoreDVI's posterior std in the layer's units (float32; for RGB the mean over the
        channels, so the layer's shape without its colour axis); None for other methods.

    Raises
    ------
    DenoiselabError
        An unknown method, or what ``denoise`` refuses (e.g. a colour network on gray data).
    """
    if method not in list_methods():
        raise DenoiselabError(f"unknown method {method!r}; choose one of: {', '.join(list_methods())}")
    run_plane = _plane_runner(method, sigma=sigma, seed=seed, iterations=iterations, precision=precision,
                              device=device)
    denoised = np.empty(prepared.source.shape, dtype=np.float32)
    uncertainty = None
    for index in range(prepared.n_planes):
        x_hat, std = run_plane(prepared.plane(index))
        denoised[index] = x_hat
        if std is not None:
            if uncertainty is None:
                uncertainty = np.zeros(prepared.source.shape[:3], dtype=np.float32)
            uncertainty[index] = std.mean(axis=-1) * np.float32(prepared.data_range)
        yield index + 1
    if uncertainty is not None:
        uncertainty = uncertainty.reshape(prepared.shape[:-1] if prepared.rgb else prepared.shape)
    return denoised.reshape(prepared.shape), uncertainty


def _plane_runner(method: str, *, sigma: float | None, seed: int, iterations: int | None, precision: str | None,
                  device: str):
    """``plane (H, W, C) -> (x_hat, std or None)`` for `method`."""
    if method in BASELINE_METHODS:
        from ..bench.methods import get_method

        baseline = get_method(method)
        return lambda plane: (baseline.run(plane, plane, seed, device), None)  # `clean` is unused by these

    from ..api import denoise

    options = {"seed": seed, "device": device, "return_details": True}
    if precision is not None and supports_precision():
        options["precision"] = precision
    if method in SCOREDVI_METHODS:
        options.update(preset=SCOREDVI_METHODS[method], iterations=iterations)
        name = "scoredvi"
    else:
        options.update(sigma=sigma)
        name = method

    def run(plane: np.ndarray):
        result = denoise(plane, name, **options)
        return result.image, result.uncertainty

    return run


def to_layer_dtype(x_hat: np.ndarray, dtype: np.dtype, data_range: float) -> np.ndarray:
    """A denoised float image on [0, 1] back in the layer's dtype and units (clipped, rounded).

    Examples
    --------
    >>> to_layer_dtype(np.array([-0.1, 0.5, 1.2], dtype=np.float32), np.dtype(np.uint16), 65535.0)
    array([    0, 32768, 65535], dtype=uint16)
    """
    scaled = np.clip(x_hat, 0.0, 1.0) * np.float32(data_range)
    if np.issubdtype(dtype, np.integer):
        return np.rint(scaled).astype(dtype)
    return scaled.astype(dtype)
