"""Where batch images are denoised: in this process (``local``) or over a Ray cluster (``ray``).

An executor has one method, ``map_unordered(tasks)``, yielding ``(task, record)`` as each image
finishes, in any order. Workers only denoise and write the image files; the driver (the process
that called :func:`denoiselab.batch.run_batch`) writes every manifest line, so the manifest has
one writer whatever the number of machines.

How Ray workers reach the files (``files=``):

* URLs (``s3://...``) are always read and written by the workers themselves, with the
  credentials of their own node.
* Local paths of the driver are read and written by the workers under the same name
  (``"shared"``: every node sees one file system, e.g. NFS), or shipped (``"ship"``): the driver
  reads each input and passes its bytes with the task (through Ray's object store), the worker
  denoises in a private temporary folder and returns the encoded output, and the driver writes
  it atomically. ``"auto"`` ships when the cluster has a node on another machine than the
  driver (another IP address), else shares.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from ..errors import DenoiselabError
from . import storage
from .job import Task, error_record, run_task

EXECUTORS = ("local", "ray")
FILE_MODES = ("auto", "shared", "ship")


class LocalExecutor:
    """Denoise the images one after the other in this process (the GPU, if any, is used as set by
    each task's ``device``)."""

    name = "local"

    def map_unordered(self, tasks: Iterable[Task]) -> Iterator[tuple[Task, dict]]:
        """Yield ``(task, record)`` for each task, in order."""
        for task in tasks:
            yield task, run_task(task)

    def close(self) -> None:
        """Nothing to release."""


class RayExecutor:
    """Spread the images over a Ray cluster, one Ray task per image.

    Parameters
    ----------
    address : str, optional
        The cluster to join: ``"auto"`` (a cluster started on this machine with ``ray start
        --head``), ``"ray://host:10001"`` (Ray Client) or ``"host:6379"``. Default: the
        ``RAY_ADDRESS`` environment variable, else a new single-machine Ray instance. Ignored
        when Ray is already initialised in this process (``ray.init`` called by the caller,
        who then also shuts it down).
    gpus_per_task : float, optional
        GPUs reserved for each image (Ray's ``num_gpus``; Ray points ``CUDA_VISIBLE_DEVICES`` at
        them, so ``device="auto"`` uses that GPU). Default: 1 when the cluster has GPUs and the
        options do not ask for the CPU, else 0.
    cpus_per_task : float, optional
        CPU cores reserved for each image (Ray's ``num_cpus``, which also sets the task's torch
        threads through ``OMP_NUM_THREADS``). Default 1.
    max_in_flight : int, optional
        Tasks submitted but not finished at any time (default: twice the cluster's task slots,
        at least 2): enough to keep every worker busy, few enough that an interrupted driver
        loses little finished-but-unrecorded work.
    use_gpu : bool, optional
        False when the batch's device is "cpu": no GPU is reserved by default.
    files : {"auto", "shared", "ship"}, optional
        How workers reach local paths of the driver (see the module's docstring); URLs are
        always read and written by the workers. Default "auto".
    max_retries : int, optional
        Times Ray re-runs an image whose worker or node died (default 3); each image still gets
        one record, its last attempt's.

    Raises
    ------
    DenoiselabError
        If the ``ray`` package is missing or the cluster cannot be reached.

    Notes
    -----
    Every node must have denoiselab installed (the same version, with its weights; with
    ``denoiselab[cloud]`` for URLs). With ``files="shared"`` every node must see the local input
    and output paths under the same names (NFS etc.); with URLs or ``files="ship"`` no shared
    file system is needed.
    """

    name = "ray"

    def __init__(self, *, address: str | None = None, gpus_per_task: float | None = None, cpus_per_task: float = 1.0,
                 max_in_flight: int | None = None, use_gpu: bool = True, files: str = "auto", max_retries: int = 3):
        try:
            import ray
        except ImportError as err:
            raise DenoiselabError(
                "--executor ray needs the ray package; install it with pip install 'denoiselab[ray]'"
            ) from err
        if files not in FILE_MODES:
            raise DenoiselabError(f"unknown file mode {files!r}; use one of {', '.join(FILE_MODES)}")
        self._ray = ray
        self._owns_ray = False
        if not ray.is_initialized():
            self._init(address)
        resources = ray.cluster_resources()
        if gpus_per_task is None:
            gpus_per_task = 1.0 if use_gpu and resources.get("GPU", 0) > 0 else 0.0
        if gpus_per_task < 0 or cpus_per_task <= 0:
            raise DenoiselabError(f"gpus per task {gpus_per_task} and cpus per task {cpus_per_task} must be >= 0 and > 0")
        if gpus_per_task > resources.get("GPU", 0) or cpus_per_task > resources.get("CPU", 0):
            self.close()
            raise DenoiselabError(
                f"each task asks for {cpus_per_task:g} CPU and {gpus_per_task:g} GPU but the Ray cluster has "
                f"{resources.get('CPU', 0):g} CPU and {resources.get('GPU', 0):g} GPU; lower --cpus-per-task/--gpus-per-task"
            )
        slots = resources.get("CPU", 1) / cpus_per_task
        if gpus_per_task > 0:
            slots = min(slots, resources.get("GPU", 0) / gpus_per_task)
        self.gpus_per_task, self.cpus_per_task = gpus_per_task, cpus_per_task
        self.max_in_flight = max_in_flight or max(2, int(2 * slots))
        self.ship = files == "ship" or (files == "auto" and _cluster_spans_machines(ray))
        self._remote = ray.remote(run_ray_task).options(num_cpus=cpus_per_task, num_gpus=gpus_per_task,
                                                        max_retries=max_retries)

    def _init(self, address: str | None) -> None:
        ray = self._ray
        address = address or os.environ.get("RAY_ADDRESS") or None
        kwargs: dict = {"log_to_driver": False}
        if address is None:
            kwargs["include_dashboard"] = False  # a single-machine instance, started for this batch only
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise DenoiselabError(
                f"cannot start or join Ray at {address or 'a new local instance'}: {' '.join(str(err).split())[:300]}"
            ) from err
        self._owns_ray = True

    def map_unordered(self, tasks: Iterable[Task]) -> Iterator[tuple[Task, dict]]:
        """Submit the tasks (at most `max_in_flight` at once) and yield ``(task, record)`` as each finishes.

        A task whose worker dies (killed, out of memory) yields an error record saying so.
        """
        ray = self._ray
        pending: dict = {}
        queue = iter(tasks)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.max_in_flight:
                    task = next(queue, None)
                    if task is None:
                        exhausted = True
                        break
                    pending[self._submit(task)] = task
                if not pending:
                    return
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                task = pending.pop(ref)
                try:
                    record, shipped = ray.get(ref)
                    record = receive_outputs(record, shipped)
                except ray.exceptions.RayError as err:
                    message = " ".join(f"the Ray worker failed: {type(err).__name__}: {err}".split())[:500]
                    record = error_record(task, message, bug=True)
                yield task, record
        finally:  # the caller stopped early (an error, Ctrl-C): do not leave work running on the cluster
            for ref in pending:
                ray.cancel(ref, force=True)

    def _submit(self, task: Task):
        """Submit one image; in ship mode with its local input's bytes (through the object store)."""
        payload = None
        if self.ship and not storage.is_url(task.input):
            try:
                payload = Path(task.input).read_bytes()
            except OSError:
                payload = None  # the worker then fails to read the path, and records why in the usual words
        return self._remote.remote(task, payload, self.ship)

    def close(self) -> None:
        """Shut Ray down if this executor started or joined it."""
        if self._owns_ray:
            self._ray.shutdown()
            self._owns_ray = False


def _cluster_spans_machines(ray) -> bool:
    """True when an alive node of the cluster has another IP address than this (the driver's) machine."""
    here = ray.util.get_node_ip_address()
    return any(node["Alive"] and node["NodeManagerAddress"] != here for node in ray.nodes())


def run_ray_task(task: Task, payload: bytes | None, ship: bool) -> tuple[dict, dict[str, bytes]]:
    """What a Ray worker runs for one image: :func:`run_task`, with shipped files when asked.

    Parameters
    ----------
    task : Task
        The image, as the driver named it.
    payload : bytes or None
        The input file's content when the driver shipped it (its local path is then not read).
    ship : bool
        Write local (non-URL) outputs into a private temporary folder and return their bytes
        instead of writing them under their names.

    Returns
    -------
    record : dict
        The manifest record, naming the driver's paths, with ``ray_node`` (the Ray node id).
    shipped : dict of str to bytes
        Driver path -> encoded file, for the driver to write (:func:`receive_outputs`).
    """
    import ray

    node = ray.get_runtime_context().get_node_id()
    if not ship:
        return {**run_task(task), "ray_node": node}, {}
    with tempfile.TemporaryDirectory(prefix="denoiselab-ship-") as scratch:
        renamed: dict[str, str] = {}

        def local_copy(location: str | None, folder: str) -> str | None:
            if location is None or storage.is_url(location):
                return location
            copy = os.path.join(scratch, folder, storage.basename(location))
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            renamed[copy] = location
            return copy

        source = local_copy(task.input, "in") if payload is not None else task.input
        if payload is not None:
            Path(source).write_bytes(payload)
        work = replace(task, input=source, output=local_copy(task.output, "out"),
                       uncertainty=local_copy(task.uncertainty, "std"))
        record = run_task(work)
        shipped = {}
        if record.get("status") == "ok":
            shipped = {renamed[p]: Path(p).read_bytes() for p in (work.output, work.uncertainty) if p in renamed}
        for key in ("input", "output", "uncertainty"):
            if record.get(key) in renamed:
                record[key] = renamed[record[key]]
        if isinstance(record.get("message"), str):
            for copy, original in renamed.items():
                record["message"] = record["message"].replace(copy, original)
    return {**record, "ray_node": node}, shipped


def receive_outputs(record: dict, shipped: dict[str, bytes]) -> dict:
    """Write the files a worker shipped back, atomically, and return the record (an error record if one fails)."""
    from ..io import atomic_write

    written = []
    try:
        for path, data in shipped.items():
            atomic_write(path, lambda tmp, data=data: tmp.write_bytes(data))
            written.append(path)
    except DenoiselabError as err:
        for path in written:  # the image and its map: both or neither
            Path(path).unlink(missing_ok=True)
        return {**record, "status": "error", "message": str(err)}
    return record


def make_executor(name: str, **options) -> LocalExecutor | RayExecutor:
    """The executor called `name` ("local" or "ray"); `options` go to :class:`RayExecutor`.

    Raises
    ------
    DenoiselabError
        For an unknown name, or the Ray errors of :class:`RayExecutor`.
    """
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(**options)
    raise DenoiselabError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}")
