"""``manifest.jsonl``: one JSON line per finished image, appended as each finishes; the batch's memory.

A line is appended (and flushed to disk with fsync) only after the image's output file is
complete, so after a crash or ``kill -9`` every "ok" line names a whole file. A line cut short
by the crash is dropped when the manifest is opened again. While a batch runs it holds an
exclusive lock on the manifest (``flock``; released by the system even on ``kill -9``), so a
second batch on the same folder stops at once instead of interleaving with it.

An output folder in object storage (a URL) cannot be appended to or locked, so its manifest
(:class:`RemoteManifest`) is a local journal, appended and fsynced the same way under
``$DENOISELAB_STATE_DIR`` (default ``~/.cache/denoiselab/manifests``), one per output URL, and
mirrored to ``<url>/manifest.jsonl`` with one upload when the batch starts, every few seconds
while it runs and when it ends. Opening it merges the remote copy into the journal, so a batch
resumes on this machine (nothing lost, even after ``kill -9``) or on another one (what the last
upload held).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import DenoiselabError
from . import storage

MANIFEST_NAME = "manifest.jsonl"


def read_manifest(path: str | os.PathLike[str]) -> list[dict]:
    """All complete records of a manifest, oldest first (a missing file gives []).

    Parameters
    ----------
    path : str or path-like
        The ``manifest.jsonl`` file, a local path or a URL.

    Returns
    -------
    list of dict
        One per line that parses as a JSON object; a torn or foreign line is skipped.
    """
    if storage.is_url(os.fspath(path)):
        return parse_records((storage.get_bytes(os.fspath(path)) or b"").decode("utf-8", errors="replace"))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as err:
        raise DenoiselabError(f"cannot read the manifest {path}: {err.strerror or err}") from err
    return parse_records(text)


def parse_records(text: str) -> list[dict]:
    """The JSON-object lines of a manifest's text, in order (torn or foreign lines skipped)."""
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def latest_records(records: Iterable[dict]) -> dict[str, dict]:
    """The last record of each input (a later run's line supersedes an earlier one)."""
    latest: dict[str, dict] = {}
    for record in records:
        if isinstance(record.get("input"), str):
            latest[record["input"]] = record
    return latest


def is_done(record: dict | None, *, output: str, settings: dict, uncertainty: str | None,
            exists: Callable[[str], bool] = os.path.isfile) -> bool:
    """Whether an image needs no work: its last record is "ok" for the same output, options and
    uncertainty map, and those files still exist (`exists`: a local file test by default; a
    lookup in one listing for URLs). Failed images are tried again."""
    if record is None or record.get("status") != "ok":
        return False
    if record.get("output") != output or record.get("settings") != settings or record.get("uncertainty") != uncertainty:
        return False
    return all(exists(p) for p in filter(None, (output, uncertainty)))


class Manifest:
    """The open, locked manifest of one output folder; use as a context manager.

    Parameters
    ----------
    folder : str or path-like
        The batch's output folder (must exist); the manifest is ``folder/manifest.jsonl``.

    Raises
    ------
    DenoiselabError
        If another batch holds the lock, or the file cannot be opened for appending.

    Examples
    --------
    >>> import tempfile
    >>> with Manifest(tempfile.mkdtemp()) as m:
    ...     m.append({"input": "/a.png", "status": "ok"})
    ...     len(m.records)
    1
    """

    def __init__(self, folder: str | os.PathLike[str]):
        self.path = Path(folder) / MANIFEST_NAME
        self.location: Path | str = self.path  # where users find it (a URL for a RemoteManifest)
        try:
            self._fh = open(self.path, "a+b")  # noqa: SIM115 - held open (and locked) until close()
        except OSError as err:
            raise DenoiselabError(
                f"cannot open the manifest {self.path}: {err.strerror or err}; choose a writable output folder"
            ) from err
        try:
            self._lock()
            self._drop_torn_tail()
            self.records = read_manifest(self.path)
        except BaseException:
            self._fh.close()
            raise

    def _lock(self) -> None:
        if sys.platform == "win32":  # no flock; one batch per folder is then the user's to ensure
            return
        import fcntl

        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise DenoiselabError(
                f"another denoiselab batch is writing to {self.path.parent} (its manifest is locked); "
                "wait for it to finish or choose another output folder"
            ) from err

    def _drop_torn_tail(self) -> None:
        """Cut a last line that a crash left without its newline (it was never complete)."""
        self._fh.seek(0, os.SEEK_END)
        size = self._fh.tell()
        if size == 0:
            return
        self._fh.seek(max(0, size - 1))
        if self._fh.read(1) == b"\n":
            return
        self._fh.seek(0)
        data = self._fh.read()
        self._fh.truncate(data.rfind(b"\n") + 1)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def append(self, record: dict) -> None:
        """Add one record as a JSON line and flush it to disk (fsync) before returning.

        Raises
        ------
        DenoiselabError
            If the line cannot be written (e.g. disk full).
        """
        line = (json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")
        try:
            self._fh.seek(0, os.SEEK_END)
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as err:
            raise DenoiselabError(
                f"cannot append to the manifest {self.path}: {err.strerror or err}; free some space and run again "
                "(finished images are kept)"
            ) from err
        self.records.append(record)

    def close(self) -> None:
        """Release the lock and close the file."""
        self._fh.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def state_dir() -> Path:
    """Where the local journals of URL outputs live: ``$DENOISELAB_STATE_DIR``, else
    ``$XDG_CACHE_HOME/denoiselab/manifests`` (default ``~/.cache/denoiselab/manifests``)."""
    if os.environ.get("DENOISELAB_STATE_DIR"):
        return Path(os.environ["DENOISELAB_STATE_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "denoiselab" / "manifests"


class RemoteManifest(Manifest):
    """The manifest of an output folder in object storage: a locked local journal mirrored to the folder.

    Parameters
    ----------
    folder_url : str
        The output folder's URL; the manifest is ``<folder_url>/manifest.jsonl``.
    mirror_seconds : float, optional
        Upload the journal at most this often while records are appended (default 5 s),
        and always when opened and closed.

    Raises
    ------
    DenoiselabError
        If the journal cannot be opened or locked (another batch on this output on this
        machine), or the remote manifest cannot be read or written (bucket missing, access
        denied, endpoint unreachable): checked when opened, before any work.
    """

    def __init__(self, folder_url: str, *, mirror_seconds: float = 5.0):
        self.url = storage.join(folder_url, MANIFEST_NAME)
        journal = state_dir() / hashlib.sha256(self.url.encode("utf-8")).hexdigest()[:24]
        try:
            journal.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DenoiselabError(f"cannot create the manifest journal folder {journal}: {err.strerror or err}; "
                                  "set DENOISELAB_STATE_DIR to a writable folder") from err
        super().__init__(journal)
        self.location = self.url
        self.mirror_seconds = mirror_seconds
        try:
            remote = read_manifest(self.url)
            merged = merge_records(remote, self.records)
            if merged != self.records:
                self._rewrite(merged)
            self.upload()
        except BaseException:
            super().close()
            raise

    def _rewrite(self, records: list[dict]) -> None:
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.records = list(records)

    def upload(self) -> None:
        """Copy the journal to the manifest URL (one upload of the whole file)."""
        self._fh.seek(0)
        storage.put_bytes(self.url, self._fh.read())
        self._uploaded = time.monotonic()

    def append(self, record: dict) -> None:
        """Append to the journal (fsynced); upload it when the last upload is `mirror_seconds` old."""
        super().append(record)
        if time.monotonic() - self._uploaded >= self.mirror_seconds:
            self.upload()

    def close(self) -> None:
        """Upload the journal a last time, then release the lock."""
        try:
            if not self._fh.closed:
                self.upload()
        finally:
            super().close()


def merge_records(first: list[dict], second: list[dict]) -> list[dict]:
    """`first`, then the records of `second` that `first` lacks, in order (two copies of one append-only log).

    Examples
    --------
    >>> merge_records([{"a": 1}, {"b": 2}], [{"a": 1}, {"c": 3}])
    [{'a': 1}, {'b': 2}, {'c': 3}]
    """
    seen = {json.dumps(r, sort_keys=True) for r in first}
    return first + [r for r in second if json.dumps(r, sort_keys=True) not in seen]


def remove_stale_temp_files(targets: Iterable[Path]) -> list[Path]:
    """Delete the temporary files a killed run left beside `targets` and return them.

    :func:`denoiselab.io.atomic_write` writes ``<folder>/.<name>.<8 hex digits>.tmp`` and renames
    it over ``<folder>/<name>``; a run killed in between leaves the temp file. Call this only
    while holding the folder's manifest lock (no other batch is writing there).

    Parameters
    ----------
    targets : iterable of Path
        The files this batch writes.
    """
    removed = []
    by_folder: dict[Path, set[str]] = {}
    for target in targets:
        by_folder.setdefault(target.parent, set()).add(target.name)
    for folder, names in by_folder.items():
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            match = re.fullmatch(r"\.(.+)\.[0-9a-f]{8}\.tmp", entry.name)
            if match and match.group(1) in names:
                try:
                    entry.unlink()
                    removed.append(entry)
                except OSError:
                    pass  # not ours to fight over; the next write uses a fresh name anyway
    return removed
