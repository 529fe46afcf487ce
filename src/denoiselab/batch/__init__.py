"""Batch denoising: files, folders and globs into one folder, with a resumable manifest.

Plain functions, usable from Python as the ``denoiselab denoise`` command uses them::

    from denoiselab.batch import DenoiseOptions, run_batch
    summary = run_batch(["photos/", "scans/*.tif"], "denoised/", DenoiseOptions(method="scoredvi"))
    summary.done, summary.skipped, summary.failed          # failed: the manifest's error records

    run_batch(["photos/"], "denoised/", executor="ray")   # the same over a Ray cluster

- ``files``: expanding inputs, naming outputs, checking targets before any work.
- ``job``: one image file to file (:func:`denoise_file`) and its manifest record.
- ``manifest``: ``manifest.jsonl``, appended and fsynced after each image, locked while a batch runs.
- ``executors``: where images are denoised: ``local`` (this process) or ``ray`` (a Ray cluster).
- ``run``: :func:`run_batch` ties them together; the driver alone writes the manifest.
"""

from .executors import EXECUTORS, LocalExecutor, RayExecutor, make_executor
from .files import FORMATS, expand_inputs, is_batch, output_name, plan_outputs
from .job import DenoiseOptions, FileResult, Task, denoise_file, run_task
from .manifest import MANIFEST_NAME, Manifest, read_manifest
from .run import BatchSummary, plan_batch, run_batch, uncertainty_name

__all__ = [
    "EXECUTORS", "FORMATS", "MANIFEST_NAME", "BatchSummary", "DenoiseOptions", "FileResult", "LocalExecutor",
    "Manifest", "RayExecutor", "Task", "denoise_file", "expand_inputs", "is_batch", "make_executor", "output_name",
    "plan_batch", "plan_outputs", "read_manifest", "run_batch", "run_task", "uncertainty_name",
]
