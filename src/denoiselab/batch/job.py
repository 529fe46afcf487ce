"""One image, file to file: read, denoise (:func:`denoiselab.denoise`), write; and its manifest record."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import traceback
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DenoiselabError
from ..svnr.denoise import SVNR_OPTIONS, check_svnr_options
from . import storage
from .files import check_output


@dataclass(frozen=True)
class DenoiseOptions:
    """How to denoise each image: the options of :func:`denoiselab.denoise` plus the output depth.

    Attributes
    ----------
    method : str
        ``"scoredvi"``, ``"svnr"`` or a name of :func:`denoiselab.list_denoisers` (or a
        ``.safetensors`` path).
    sigma255 : float or None
        Noise std on the 0–255 scale for the Gaussian denoisers; None estimates it per image.
    preset : {"fast", "paper"}
        ScoreDVI's preset.
    iterations : int or None
        ScoreDVI's iteration count (None: the preset's).
    beta : float or "auto"
        ScoreDVI's Gamma hyperprior rate.
    seed : int
        ScoreDVI's and SVNR's seed.
    read_noise, shot_noise : float or None
        SVNR's σ_r and σ_s on the linear [0, 1] scale (not 0–255); both None estimates them per image.
    samples : int
        SVNR's number of posterior samples (their mean is the output; >= 2 gives an uncertainty map).
    svnr_weights : str or None
        SVNR weights (a ``.safetensors`` path); None: the shipped model.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; resolved where the image is denoised
        (on a Ray worker, ``"auto"`` takes the GPU Ray gave the task, if any).
    precision : {"auto", "fp32", "bf16"}
        Arithmetic of the networks (resolved where the image is denoised, like the device).
    tile : int or None
        Tile side in pixels (None: chosen from `max_memory_mb`).
    overlap : int
        Tile overlap in pixels.
    max_memory_mb : float or None
        Memory budget of one denoising call, MiB (None: the library's default).
    bit_depth : {8, 16, 32} or None
        Bits per sample of the outputs; None keeps the input's, lowered to what the format
        holds (JPEG 8; PNG 16 for gray only).
    """

    method: str = "scoredvi"
    sigma255: float | None = None
    preset: str = "fast"
    iterations: int | None = None
    beta: float | str = "auto"
    seed: int = 0
    device: str = "auto"
    tile: int | None = None
    overlap: int = 32
    max_memory_mb: float | None = None
    bit_depth: int | None = None
    read_noise: float | None = None
    shot_noise: float | None = None
    samples: int = 1
    steps: int | None = None
    svnr_weights: str | None = None
    precision: str = "auto"

    def to_dict(self) -> dict:
        """The options as a JSON-ready dict (what a manifest records and compares on resume).

        SVNR's options appear only when the method is svnr: the records of the other methods
        keep the keys they had before SVNR existed, so their batches still resume (and so does
        an SVNR batch from before ``steps`` existed, while steps is left to the noise).
        """
        d = asdict(self)
        if self.method != "svnr":
            for key in SVNR_OPTIONS:
                d.pop(key)
        elif self.steps is None:
            d.pop("steps")
        if self.precision == "auto":  # batches from before the setting existed still resume
            d.pop("precision")
        return d


def gives_uncertainty(options: DenoiseOptions) -> bool:
    """Whether `options` make an uncertainty map: ScoreDVI, or SVNR with 2 or more samples."""
    return options.method == "scoredvi" or (options.method == "svnr" and options.samples >= 2)


def uncertainty_refusal(options: DenoiseOptions) -> str:
    """The one-line reason why `options` give no uncertainty map (for the error message)."""
    if options.method == "svnr":
        return f"svnr gives an uncertainty map only with 2 or more samples (--samples K, K >= 2; got {options.samples})"
    return f"an uncertainty map needs --method scoredvi, or svnr with --samples 2 or more; {options.method} gives none"


@dataclass
class FileResult:
    """What :func:`denoise_file` did.

    Attributes
    ----------
    record : dict
        The manifest record (see :func:`denoise_file`).
    image : denoiselab.io.ImageFile
        The input as read.
    result : denoiselab.DenoiseResult
        The denoised arrays, noise level, settings and timing.
    """

    record: dict
    image: object
    result: object


@dataclass(frozen=True)
class Task:
    """One image of a batch, as sent to a worker (plain data, so it pickles to Ray workers).

    Attributes
    ----------
    input : str
        Absolute path of the noisy image.
    output : str
        Absolute path of the denoised image.
    options : DenoiseOptions
        How to denoise it.
    uncertainty : str or None
        Where to write the posterior std (ScoreDVI; SVNR with 2 or more samples) as a float32
        TIFF, or None.
    """

    input: str
    output: str
    options: DenoiseOptions = field(default_factory=DenoiseOptions)
    uncertainty: str | None = None


def check_options(options: DenoiseOptions, *, check_device: bool = True) -> None:
    """Fail once, before a batch starts, for options that would fail on every image.

    Checks the method name (and loads a ``.safetensors`` file's weights to check them), the
    preset, iterations, beta, SVNR's noise, samples and weights (loaded to check them; SVNR's
    options with another method are refused), tile settings and memory budget; and the device,
    unless `check_device` is False (a Ray driver may have no GPU while its workers do).

    Parameters
    ----------
    options : DenoiseOptions
        The options to check.
    check_device : bool, optional
        Also check that the device exists here.

    Raises
    ------
    DenoiselabError
        With a one-line message naming the bad option.
    """
    from .._utils import resolve_device
    from ..denoisers import list_denoisers, load_denoiser
    from ..scoredvi import PRESETS

    method = options.method
    if method.endswith(".safetensors"):
        load_denoiser(method)  # missing file, missing card, wrong shapes: one clear error now
    elif method not in ("scoredvi", "svnr") and method not in list_denoisers():
        raise DenoiselabError(f"unknown denoiser {method!r}; choose scoredvi, svnr or one of: "
                              f"{', '.join(list_denoisers())}")
    _check_svnr_options(options)
    if options.preset not in PRESETS:
        raise DenoiselabError(f"unknown preset {options.preset!r}; choose one of {', '.join(PRESETS)}")
    if options.iterations is not None and options.iterations < 1:
        raise DenoiselabError(f"iterations={options.iterations} must be at least 1")
    if not (options.beta == "auto" or (isinstance(options.beta, (int, float)) and options.beta > 0)):
        raise DenoiselabError(f"beta={options.beta!r} must be 'auto' or a positive number (e.g. 0.02, 0.01, 0.005)")
    if options.overlap < 0 or (options.tile is not None and options.tile <= options.overlap):
        raise DenoiselabError(f"tile={options.tile} and overlap={options.overlap}: need 0 <= overlap < tile")
    if options.max_memory_mb is not None and not options.max_memory_mb > 0:
        raise DenoiselabError(f"max_memory_mb={options.max_memory_mb} must be a positive number of MiB")
    if check_device:
        resolve_device(options.device)


def _check_svnr_options(options: DenoiseOptions) -> None:
    from ..api import load_svnr_weights

    check_svnr_options(options.method, {k: getattr(options, k) for k in SVNR_OPTIONS},
                       sigma_given=options.sigma255 is not None, cli=True)
    if options.method == "svnr":
        load_svnr_weights(options.svnr_weights)  # missing or wrong weights: one clear error now


def output_depth(requested: int | None, input_depth: int, output: Path, channels: int) -> int:
    """The input's bit depth unless asked otherwise, lowered to what the output format holds.

    Parameters
    ----------
    requested : {8, 16, 32} or None
        ``--bit-depth``; returned as it is when given (the writer refuses what a format cannot hold).
    input_depth : {8, 16, 32}
        The input file's bits per sample.
    output : Path
        The output file; its extension is the format.
    channels : int
        1 (gray) or 3 (RGB).

    Examples
    --------
    >>> output_depth(None, 16, Path("a.png"), 3), output_depth(None, 16, Path("a.tif"), 3)
    (8, 16)
    """
    if requested is not None:
        return requested
    suffix = output.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        return 8
    if suffix == ".png":  # PNG holds 8 or 16 bits, and Pillow writes 16 bits for gray only
        return 16 if input_depth >= 16 and channels == 1 else 8
    return input_depth


def _noise_record(noise: dict) -> dict:
    """``DenoiseResult.noise`` for people: the Gaussian σ on the 0–255 scale, ScoreDVI's values as they are."""
    out = {}
    for key, values in noise.items():
        if key == "sigma":
            out["sigma255"] = [round(255.0 * float(v), 4) for v in values]
        elif isinstance(values, str):  # e.g. how correlated noise was handled
            out[key] = values
        else:
            out[key] = [v if isinstance(v, bool) else float(v) for v in values]
    return out


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def error_record(task: Task, message: str, *, bug: bool = False, detail: str | None = None) -> dict:
    """The manifest record of an image that failed.

    Parameters
    ----------
    task : Task
        The image.
    message : str
        One line saying what went wrong (a `DenoiselabError`'s text).
    bug : bool, optional
        True when the failure was not a user error (an unexpected exception: a bug to report).
    detail : str, optional
        The traceback of an unexpected exception.
    """
    record = {"input": task.input, "output": task.output, "uncertainty": task.uncertainty, "status": "error",
              "message": " ".join(message.split()), "method": task.options.method, "settings": task.options.to_dict(),
              "seconds": None, "noise": None, "finished": _now(), "host": platform.node()}
    if bug:
        record["bug"] = True
        record["traceback"] = detail
    return record


def denoise_file(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    options: DenoiseOptions,
    *,
    uncertainty: str | os.PathLike[str] | None = None,
    protect: Iterable[str | os.PathLike[str]] = (),
    progress: bool = False,
) -> FileResult:
    """Denoise one image file into another, atomically; the uncertainty map too, both or neither.

    Parameters
    ----------
    input_path : str or path-like
        The noisy image (PNG, JPEG, TIFF; 8/16-bit or float; gray/RGB; TIFF stacks); a local
        path or a URL (``s3://bucket/raw/a.png``, see :mod:`denoiselab.batch.storage`).
    output_path : str or path-like
        Where the denoised image goes (.png, .jpg, .jpeg, .tif, .tiff); its folder must exist.
        Never the input (checked, symlinks and hard links included). A URL gets the whole
        object in one upload, after the image is computed and encoded.
    options : DenoiseOptions
        Method and settings.
    uncertainty : str or path-like, optional
        ScoreDVI, or SVNR with ``samples >= 2``: also write the per-pixel posterior std (SVNR:
        the std of its samples), averaged over channels. A .tif
        holds it exactly (float32 on the [0, 1] scale); a .png/.jpg holds it divided by its
        maximum, for viewing (the record's ``uncertainty_scale`` gives the divisor).
    protect : iterable of str or path-like, optional
        More files never to overwrite (the input is always protected).
    progress : bool, optional
        Show progress bars on stderr.

    Returns
    -------
    FileResult
        ``record`` is the manifest line: ``input``, ``output``, ``uncertainty`` (absolute
        paths or None), ``status`` ("ok"), ``message`` (None), ``method`` (the one that ran),
        ``settings`` (`options` as a dict), ``run`` (device, tiles, ... as reported by
        :func:`denoiselab.denoise`), ``noise`` (``sigma255`` per plane for Gaussian denoisers;
        ``delta255``, ``lam``, ``beta`` for ScoreDVI; ``read``, ``shot`` on the linear [0, 1]
        scale for SVNR), ``seconds`` (the denoising call),
        ``finished`` (UTC time), ``host``.

    Raises
    ------
    DenoiselabError
        For anything the user can fix: unreadable or unsupported input, a bad option, an
        output that is the input or cannot be written (missing or read-only folder, full disk),
        ``uncertainty`` with a method that gives none. No output file is left behind.
    """
    from ..api import denoise
    from ..io import read_image, same_file, write_image

    source, target = _location(input_path), _location(output_path)
    std_path = _location(uncertainty) if uncertainty is not None else None
    guarded = [source, *map(_location, protect)]
    if std_path is not None and not gives_uncertainty(options):
        raise DenoiselabError(f"{uncertainty_refusal(options)} (leave out --uncertainty)")
    check_output(target, protect=guarded)  # fail before the (possibly long) computation, not after it
    if std_path is not None:
        check_output(std_path, protect=guarded, what="uncertainty map")
        if std_path == target or (isinstance(target, Path) and same_file(std_path, target)):
            raise DenoiselabError(f"the output and the uncertainty map would both be {target}; choose two paths")
    with storage.staged_input(str(source)) as local_source:
        image = read_image(local_source)
    depth = output_depth(options.bit_depth, image.bit_depth, Path(storage.basename(str(target))), image.array.shape[-1])
    try:
        result = denoise(image.array, options.method, **api_options(options), return_details=True, progress=progress)
    except DenoiselabError as err:  # name the file: in a batch, the message is all the user sees of it
        raise DenoiselabError(f"cannot denoise {source}: {err}") from err
    with storage.staged_output(str(target)) as local_target:
        write_image(local_target, result.image, bit_depth=depth, metadata=image.metadata, protect=_local(guarded))
    record = {"input": str(source), "output": str(target), "uncertainty": None, "status": "ok", "message": None,
              "method": result.method, "settings": options.to_dict(), "run": dict(result.settings),
              "noise": _noise_record(result.noise), "seconds": round(float(result.seconds), 4), "finished": _now(),
              "host": platform.node()}
    if std_path is not None:
        try:
            record.update(_write_std(std_path, result.uncertainty, guarded))
        except BaseException:
            storage.remove(str(target))  # the image and its map: both or neither
            raise
    return FileResult(record=record, image=image, result=result)


def _location(spec: str | os.PathLike[str]) -> Path | str:
    """An absolute local Path, or a URL as a str (see :func:`denoiselab.batch.storage.as_location`)."""
    location = storage.as_location(spec)
    return location if storage.is_url(location) else Path(location)


def _local(locations: Iterable[Path | str]) -> list[Path]:
    return [p for p in locations if isinstance(p, Path)]


def api_options(options: DenoiseOptions) -> dict:
    """The keyword arguments of :func:`denoiselab.denoise` that `options` set (all but method and bit depth)."""
    kw = {"sigma": None if options.sigma255 is None else options.sigma255 / 255, "preset": options.preset,
          "iterations": options.iterations, "beta": options.beta, "device": options.device,
          "precision": options.precision, "seed": options.seed,
          "tile": options.tile, "overlap": options.overlap, "max_memory_mb": options.max_memory_mb}
    if options.method == "svnr":
        kw.update(read_noise=options.read_noise, shot_noise=options.shot_noise, samples=options.samples,
                  steps=options.steps, svnr_weights=options.svnr_weights)
    return kw


def _write_std(path: Path | str, std: np.ndarray, protect: list[Path | str]) -> dict:
    from ..io import write_image

    plane = std.mean(axis=-1, keepdims=True)  # posterior std, mean over channels
    exact = str(path).lower().endswith((".tif", ".tiff"))
    scale = 1.0 if exact else float(plane.max()) or 1.0
    with storage.staged_output(str(path)) as local:
        write_image(local, plane / scale, bit_depth=32 if exact else 8, protect=_local(protect))
    return {"uncertainty": str(path), "uncertainty_scale": scale}


def run_task(task: Task) -> dict:
    """Denoise one batch image and return its manifest record; never raises for a bad image.

    This is what each worker runs (in-process for the local executor, in a Ray worker process
    for the Ray one). A `DenoiselabError` (bad file, unwritable output, ...) becomes an error
    record with its one-line message. Any other exception is a bug, but one image must not end
    a batch of thousands: it also becomes an error record, marked ``"bug": true`` with its
    traceback, so that the batch goes on and the CLI exits with code 1 at the end.

    Parameters
    ----------
    task : Task
        The image, its output paths and the options.

    Returns
    -------
    dict
        The record (see :func:`denoise_file`; error records have ``status`` "error" and
        ``message``).
    """
    try:
        return denoise_file(task.input, task.output, task.options, uncertainty=task.uncertainty).record
    except DenoiselabError as err:
        return error_record(task, str(err))
    except Exception as err:  # noqa: BLE001 - batch isolation: recorded with its traceback, exit code 1 at the end
        return error_record(task, f"internal error {type(err).__name__}: {err}", bug=True,
                            detail=traceback.format_exc())
