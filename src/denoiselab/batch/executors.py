"""Where batch images are denoised: in this process (``local``) or over a Ray cluster (``ray``).

An executor has one method, ``map_unordered(tasks)``, yielding ``(task, record)`` as each image
finishes, in any order. Workers only denoise and write the image files; the driver (the process
that called :func:`denoiselab.batch.run_batch`) writes every manifest line, so the manifest has
one writer whatever the number of machines.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from ..errors import DenoiselabError
from .job import Task, error_record, run_task

EXECUTORS = ("local", "ray")


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

    Raises
    ------
    DenoiselabError
        If the ``ray`` package is missing or the cluster cannot be reached.

    Notes
    -----
    Every node must have denoiselab installed (the same version, with its weights) and see the
    input and output paths under the same names (a shared file system such as NFS): workers read
    the inputs and write the outputs themselves; only the small records travel back.
    """

    name = "ray"

    def __init__(self, *, address: str | None = None, gpus_per_task: float | None = None, cpus_per_task: float = 1.0,
                 max_in_flight: int | None = None, use_gpu: bool = True):
        try:
            import ray
        except ImportError as err:
            raise DenoiselabError(
                "--executor ray needs the ray package; install it with pip install 'denoiselab[ray]'"
            ) from err
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
        self._remote = ray.remote(run_task).options(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=1)

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
                    pending[self._remote.remote(task)] = task
                if not pending:
                    return
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                task = pending.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as err:
                    message = " ".join(f"the Ray worker failed: {type(err).__name__}: {err}".split())[:500]
                    record = error_record(task, message, bug=True)
                yield task, record
        finally:  # the caller stopped early (an error, Ctrl-C): do not leave work running on the cluster
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        """Shut Ray down if this executor started or joined it."""
        if self._owns_ray:
            self._ray.shutdown()
            self._owns_ray = False


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
