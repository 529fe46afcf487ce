"""``run_batch``: many images into one folder, with a manifest, resumable, on one machine or a Ray cluster."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import DenoiselabError
from . import storage
from .executors import LocalExecutor, RayExecutor, make_executor
from .files import expand_inputs, make_folder, plan_outputs
from .job import DenoiseOptions, Task, gives_uncertainty, uncertainty_refusal
from .manifest import Manifest, RemoteManifest, is_done, latest_records, remove_stale_temp_files


@dataclass
class BatchSummary:
    """What :func:`run_batch` did.

    Attributes
    ----------
    manifest : Path or str
        The manifest file (its URL when the outputs are in object storage).
    total : int
        Images in the batch.
    skipped : int
        Images already done by an earlier run (same output, same options), not recomputed.
    done : int
        Images denoised by this run.
    failed : list of dict
        The error records of this run (``input``, ``message``, ...).
    """

    manifest: Path | str
    total: int
    skipped: int = 0
    done: int = 0
    failed: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no image failed."""
        return not self.failed

    @property
    def has_bug(self) -> bool:
        """True when a failure was an unexpected exception (a bug), not a user error."""
        return any(record.get("bug") for record in self.failed)


def uncertainty_name(output: Path | str) -> str:
    """``a.png`` -> ``a_std.tif``: the posterior-std map of a batch output (float32 TIFF)."""
    return f"{PurePosixPath(storage.basename(str(output))).stem}_std.tif"


def plan_batch(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    options: DenoiseOptions,
    *,
    fmt: str | None = None,
    uncertainty_dir: str | os.PathLike[str] | None = None,
) -> list[Task]:
    """Expand the inputs and name every output, checking everything that can be checked up front.

    Parameters
    ----------
    inputs, out_dir, options, fmt, uncertainty_dir
        As in :func:`run_batch`. The folders are created if missing.

    Returns
    -------
    list of Task
        One per input image, in input order.

    Raises
    ------
    DenoiselabError
        For a missing input, an empty folder, a pattern matching nothing, a folder that cannot
        be created or written, two outputs with one name, an output that is an input, or an
        uncertainty folder with a method that gives no map (ScoreDVI and SVNR with samples >= 2 do).
    """
    if uncertainty_dir is not None and not gives_uncertainty(options):
        raise DenoiselabError(uncertainty_refusal(options))
    files = expand_inputs([os.fspath(p) for p in inputs])
    outputs = plan_outputs(files, _output_folder(out_dir, "output folder"), fmt)
    std_paths: list[Path | str | None] = [None] * len(files)
    if uncertainty_dir is not None:
        std_dir = _output_folder(uncertainty_dir, "uncertainty folder")
        std_paths = [storage.join(std_dir, uncertainty_name(p)) if isinstance(std_dir, str)
                     else std_dir / uncertainty_name(p) for p in outputs]

        def resolved(paths):
            return {p if isinstance(p, str) else p.resolve() for p in paths}

        clash = (resolved(outputs) | resolved(files)) & resolved(std_paths)
        if clash:
            raise DenoiselabError(f"an uncertainty map would overwrite {sorted(clash)[0]}; choose another uncertainty folder")
    return [Task(input=str(src), output=str(dst), options=options, uncertainty=str(std) if std else None)
            for src, dst, std in zip(files, outputs, std_paths)]


def _output_folder(spec: str | os.PathLike[str], what: str) -> Path | str:
    """A local folder (created) or a URL prefix (its bucket checked): where a batch writes."""
    location = storage.as_location(spec)
    if storage.is_url(location):
        storage.check_reachable(location, what)
        return location.rstrip("/")
    return make_folder(Path(location), what)


def run_batch(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    options: DenoiseOptions | None = None,
    *,
    fmt: str | None = None,
    uncertainty_dir: str | os.PathLike[str] | None = None,
    executor: str | LocalExecutor | RayExecutor = "local",
    executor_options: dict | None = None,
    on_record: Callable[[dict, int, int], None] | None = None,
    on_plan: Callable[[int, int], None] | None = None,
) -> BatchSummary:
    """Denoise many images into one folder, one output each, with a resumable ``manifest.jsonl``.

    Every image is read, denoised with :func:`denoiselab.denoise` and written atomically to
    ``out_dir`` under its own name; then a JSON line is appended to ``out_dir/manifest.jsonl``
    (see :func:`denoiselab.batch.job.denoise_file` for its fields). A bad image gets an
    ``"error"`` line with a one-line message and the batch goes on. Run the same command again
    and only unfinished images are computed: an image is finished when its last manifest line
    is "ok" for the same output path and the same options, and its files exist; failed images
    are tried again. Temporary files left by a killed run are removed first.

    Parameters
    ----------
    inputs : sequence of str or path-like
        Image files, folders (their .png/.jpg/.jpeg/.tif/.tiff files, not recursive) and glob
        patterns (``**`` recurses); see :func:`denoiselab.batch.files.expand_inputs`. Each may
        be a URL of object storage (``s3://bucket/raw/*.png``; :mod:`denoiselab.batch.storage`).
    out_dir : str or path-like
        The output folder, created if missing; it holds the outputs and the manifest. A URL
        (``s3://bucket/denoised/``) keeps the manifest as a local journal mirrored to
        ``<out_dir>/manifest.jsonl`` (:class:`~denoiselab.batch.manifest.RemoteManifest`).
    options : DenoiseOptions, optional
        Method and settings (default: ScoreDVI ``fast``).
    fmt : {"png", "jpg", "tif"}, optional
        Output format; default: each input's own extension (``.png`` for inputs without an
        image extension). Output names are the inputs' stems.
    uncertainty_dir : str or path-like, optional
        ScoreDVI only: also write each posterior-std map, float32 TIFF ``<stem>_std.tif``, here
        (may be `out_dir`).
    executor : {"local", "ray"} or executor, optional
        Where images are denoised: "local" (this process, one after the other) or "ray" (a
        Ray cluster, :class:`denoiselab.batch.executors.RayExecutor`); or an executor object,
        which the caller then closes.
    executor_options : dict, optional
        Keyword arguments of :class:`~denoiselab.batch.executors.RayExecutor` (``address``,
        ``gpus_per_task``, ``cpus_per_task``, ``max_in_flight``).
    on_record : callable (record, index, count) -> None, optional
        Called in the driver after each manifest line is written: the record, its position
        (1-based) among the images to compute and their count.
    on_plan : callable (total, skipped) -> None, optional
        Called once before computing: images in the batch and images already done.

    Returns
    -------
    BatchSummary
        Counts and the failed records.

    Raises
    ------
    DenoiselabError
        For problems that stop the whole batch before it starts (see :func:`plan_batch`;
        another batch on the same folder; Ray missing or unreachable) or while it runs (the
        manifest cannot be written, e.g. disk full).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from denoiselab.io import write_image
    >>> src = pathlib.Path(tempfile.mkdtemp())
    >>> for i in range(2):
    ...     _ = write_image(src / f"im{i}.png", np.full((16, 16, 3), 0.25 * (i + 1), np.float32))
    >>> opts = DenoiseOptions(method="tv", sigma255=10, device="cpu")
    >>> summary = run_batch([src], src / "out", opts)
    >>> summary.done, summary.skipped, run_batch([src], src / "out", opts).skipped
    (2, 0, 2)
    """
    options = options or DenoiseOptions()
    tasks = plan_batch(inputs, out_dir, options, fmt=fmt, uncertainty_dir=uncertainty_dir)
    out = storage.parent(tasks[0].output)
    targets = [p for t in tasks for p in (t.output, t.uncertainty) if p]
    with RemoteManifest(out) if storage.is_url(out) else Manifest(out) as manifest:
        remove_stale_temp_files(Path(p) for p in targets if not storage.is_url(p))
        existing = storage.list_existing(storage.parent(p) for p in targets if storage.is_url(p))

        def exists(location: str) -> bool:
            return location in existing if storage.is_url(location) else os.path.isfile(location)

        latest = latest_records(manifest.records)
        todo = [t for t in tasks if not is_done(latest.get(t.input), output=t.output, settings=options.to_dict(),
                                                  uncertainty=t.uncertainty, exists=exists)]
        summary = BatchSummary(manifest=manifest.location, total=len(tasks), skipped=len(tasks) - len(todo))
        if on_plan is not None:
            on_plan(summary.total, summary.skipped)
        if not todo:
            return summary
        owned = isinstance(executor, str)
        if owned:
            extra = dict(executor_options or {})
            if executor == "ray":
                extra.setdefault("use_gpu", options.device != "cpu")
            runner = make_executor(executor, **extra)
        else:
            runner = executor
        try:
            for index, (_, record) in enumerate(runner.map_unordered(todo), start=1):
                manifest.append(record)
                if record.get("status") == "ok":
                    summary.done += 1
                else:
                    summary.failed.append(record)
                if on_record is not None:
                    on_record(record, index, len(todo))
        finally:
            if owned:
                runner.close()
    return summary
