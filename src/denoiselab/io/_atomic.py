"""Atomic file writes (temp file in the same folder, fsync, ``os.replace``) and file identity."""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from ..errors import DenoiselabError
from ._common import as_path, describe_os_error

_PERMISSION_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Tell whether two paths name the same file.

    Parameters
    ----------
    a, b : str or path-like
        Paths; symbolic links are followed and ``~`` is expanded.

    Returns
    -------
    bool
        When both exist: True if they have the same device and inode (``os.stat``), which also
        catches hard links and symlinks. Otherwise: True if their resolved absolute paths are equal.

    Examples
    --------
    >>> same_file("a/../b.png", "b.png")
    True
    """
    pa, pb = as_path(a), as_path(b)
    try:
        sa, sb = os.stat(pa), os.stat(pb)
    except (OSError, ValueError):  # missing, dangling link, or a NUL in the path
        return pa.resolve() == pb.resolve()
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _create_temp(folder: Path, name: str) -> Path:
    """Create an empty ``.name.XXXXXXXX.tmp`` next to the target (mode 0o666 minus the umask)."""
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "could not find a free temporary file name", str(folder))


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Persist the rename on POSIX; best effort (not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_error(target: Path, err: OSError) -> DenoiselabError:
    """Translate an OSError raised while writing `target` into a one-line user error."""
    if err.errno == errno.ENOSPC or err.errno == getattr(errno, "EDQUOT", None):
        return DenoiselabError(
            f"disk full while writing {target}: no file was written; free some space or choose another folder"
        )
    if err.errno in _PERMISSION_ERRNOS or isinstance(err, PermissionError):
        return DenoiselabError(
            f"cannot write {target}: the folder {target.parent} is not writable "
            f"({describe_os_error(err)}); choose a writable output folder"
        )
    return DenoiselabError(
        f"cannot write {target}: {describe_os_error(err)}; no file was written, check the output path and disk"
    )


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Write a file so that `path` holds either its old content or the complete new one.

    `write` is called with a temporary path ``.<name>.XXXXXXXX.tmp`` in the same folder as
    `path`; the temp file is then flushed to disk (``fsync``) and renamed over `path` with
    ``os.replace``, which is atomic on POSIX and Windows within one file system. On any failure
    (including ``KeyboardInterrupt``) the temp file is removed and `path` is left untouched.

    Parameters
    ----------
    path : str or path-like
        The target file. Its folder must exist; it is never created.
    write : callable (Path) -> None
        Writes the complete file to the path it is given (it exists and is empty).

    Returns
    -------
    Path
        The target path.

    Raises
    ------
    DenoiselabError
        If the folder is missing or not writable, `path` is a folder, or the disk is full
        (any OSError from `write` becomes a one-line message). Other exceptions from `write`
        propagate unchanged, after the temp file is removed.

    Notes
    -----
    The new file gets the default permissions (0o666 minus the umask), not those of the file it
    replaces. A symbolic link at `path` is replaced by a regular file, not followed.
    """
    target = as_path(path)
    folder = target.parent
    if not folder.is_dir():
        raise DenoiselabError(
            f"cannot write {target}: the folder {folder} does not exist; create it first (mkdir -p {folder})"
        )
    if target.is_dir():
        raise DenoiselabError(f"cannot write {target}: it is a folder; give a file name such as {target / 'out.png'}")
    try:
        tmp = _create_temp(folder, target.name)
    except OSError as err:
        raise _write_error(target, err) from err
    done = False
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, target)
        done = True
    except OSError as err:
        raise _write_error(target, err) from err
    finally:
        if not done:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass  # nothing more we can do; the original error is the one to report
    _fsync_folder(folder)
    return target
