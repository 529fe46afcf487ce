"""``manifest.jsonl``: one JSON line per finished image, appended as each finishes; the batch's memory.

A line is appended (and flushed to disk with fsync) only after the image's output file is
complete, so after a crash or ``kill -9`` every "ok" line names a whole file. A line cut short
by the crash is dropped when the manifest is opened again. While a batch runs it holds an
exclusive lock on the manifest (``flock``; released by the system even on ``kill -9``), so a
second batch on the same folder stops at once instead of interleaving with it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from ..errors import DenoiselabError

MANIFEST_NAME = "manifest.jsonl"


def read_manifest(path: str | os.PathLike[str]) -> list[dict]:
    """All complete records of a manifest, oldest first (a missing file gives []).

    Parameters
    ----------
    path : str or path-like
        The ``manifest.jsonl`` file.

    Returns
    -------
    list of dict
        One per line that parses as a JSON object; a torn or foreign line is skipped.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as err:
        raise DenoiselabError(f"cannot read the manifest {path}: {err.strerror or err}") from err
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


def is_done(record: dict | None, *, output: str, settings: dict, uncertainty: str | None) -> bool:
    """Whether an image needs no work: its last record is "ok" for the same output, options and
    uncertainty map, and those files still exist. Failed images are tried again."""
    if record is None or record.get("status") != "ok":
        return False
    if record.get("output") != output or record.get("settings") != settings or record.get("uncertainty") != uncertainty:
        return False
    return all(os.path.isfile(p) for p in filter(None, (output, uncertainty)))


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
