"""Which files a batch reads and writes: expanding inputs, naming outputs, checking targets early."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from ..errors import DenoiselabError
from . import storage

#: Extensions (lower case) picked up from folders and allowed for outputs.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: ``--format`` value -> output extension.
FORMATS = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "tif": ".tif", "tiff": ".tif"}
_GLOB_CHARS = set("*?[")


def is_pattern(spec: str) -> bool:
    """True if `spec` holds a glob wildcard (``*``, ``?`` or ``[``) and (a local path) names no existing file."""
    if storage.is_url(spec):
        return bool(_GLOB_CHARS & set(spec.split("://", 1)[1]))
    return bool(_GLOB_CHARS & set(spec)) and not os.path.lexists(os.path.expanduser(spec))


def is_batch(specs: Sequence[str], output: str | os.PathLike[str]) -> bool:
    """Tell whether ``denoise`` runs as a batch (output folder + manifest) or on one file.

    A batch is: more than one input, any folder or glob pattern among them, or an output that is
    an existing folder (a URL: a prefix holding objects, or ending with ``/``). One plain file
    to one file path is not a batch.

    Parameters
    ----------
    specs : sequence of str
        The inputs as typed: files, folders or glob patterns; local paths or URLs.
    output : str or path-like
        The ``-o`` value.
    """
    if len(specs) != 1 or _is_folder(os.fspath(output)):
        return True
    spec = specs[0]
    return is_pattern(spec) or _is_folder(spec)


def _is_folder(spec: str) -> bool:
    location = storage.as_location(spec)
    return storage.is_folder(location) if storage.is_url(location) else Path(location).is_dir()


def expand_inputs(specs: Iterable[str]) -> list[Path | str]:
    """Turn files, folders and glob patterns into a list of image files, in a stable order.

    Parameters
    ----------
    specs : iterable of str
        Each one is a file (taken as it is, whatever its extension: the content decides the
        format), a folder (its files ending in .png, .jpg, .jpeg, .tif or .tiff, any case, not
        recursive, sorted by name; hidden files skipped) or a glob pattern (``*``, ``?``,
        ``[...]``; ``**`` recurses; matches sorted; folders among the matches expanded as
        above; hidden files only when the pattern names them). A URL (``s3://bucket/raw/*.tif``)
        is expanded the same way by its storage (patterns remotely; ``file://`` is a local path).

    Returns
    -------
    list of Path or str
        Absolute paths (Path) and object URLs (str), in the order of `specs`, each once (the
        first time it appears).

    Raises
    ------
    DenoiselabError
        If a path does not exist, a folder holds no image, or a pattern matches nothing.
    """
    found: list[Path | str] = []
    seen: set[Path | str] = set()

    def add(path: Path | str) -> None:
        absolute = path if isinstance(path, str) else Path(os.path.abspath(path))
        key = absolute if isinstance(absolute, str) else absolute.resolve()
        if key not in seen:
            seen.add(key)
            found.append(absolute)

    for spec in specs:
        if storage.is_url(spec):
            for url in storage.expand_url(spec, IMAGE_EXTENSIONS):
                add(url)
            continue
        if spec.lower().startswith("file://"):
            spec = storage.as_location(spec)
        path = Path(spec).expanduser()
        if is_pattern(spec):
            matches = sorted(glob.glob(os.path.expanduser(spec), recursive=True))
            if not matches:
                raise DenoiselabError(f"the pattern {spec!r} matches no file; check it (quote it so the shell leaves it alone)")
            for match in map(Path, matches):
                for file in _folder_images(match) if match.is_dir() else [match]:
                    add(file)
        elif path.is_dir():
            images = _folder_images(path)
            if not images:
                raise DenoiselabError(
                    f"the folder {path} holds no image ({', '.join(IMAGE_EXTENSIONS)}); subfolders are not searched, "
                    f"use a pattern such as '{path}/**/*.png'"
                )
            for file in images:
                add(file)
        elif os.path.lexists(path):
            add(path)
        else:
            raise DenoiselabError(f"cannot read {path}: no such file or folder; check the path")
    return found


def _folder_images(folder: Path) -> list[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError as err:
        raise DenoiselabError(f"cannot list the folder {folder}: {err.strerror or err}") from err
    return [p for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()]


def output_name(input_path: Path | str, fmt: str | None) -> str:
    """The output file name for `input_path`: same stem; extension from `fmt`, else the input's.

    Parameters
    ----------
    input_path : Path or str
        The input image (a path or a URL).
    fmt : {"png", "jpg", "tif"} or None
        The output format (``--format``); None keeps the input's extension (lower case), or
        ``.png`` when the input's extension is not an image one.

    Examples
    --------
    >>> output_name(Path("raw/a.TIF"), None), output_name(Path("raw/a.jpeg"), "png"), output_name(Path("x.dat"), None)
    ('a.tif', 'a.png', 'x.png')
    """
    input_path = PurePosixPath(storage.basename(input_path)) if isinstance(input_path, str) else input_path
    if fmt is not None:
        return input_path.stem + FORMATS[fmt]
    suffix = input_path.suffix.lower()
    return input_path.stem + (suffix if suffix in IMAGE_EXTENSIONS else ".png")


def plan_outputs(inputs: Sequence[Path | str], out_dir: Path | str, fmt: str | None) -> list[Path | str]:
    """One output path in `out_dir` per input, checked for clashes before anything runs.

    Parameters
    ----------
    inputs : sequence of Path or str
        The input files (absolute paths, or URLs as str).
    out_dir : Path or str
        The output folder (a local folder, or a URL prefix as str).
    fmt : {"png", "jpg", "tif"} or None
        As in :func:`output_name`.

    Returns
    -------
    list of Path or str
        Absolute output paths (URLs when `out_dir` is one), in the order of `inputs`.

    Raises
    ------
    DenoiselabError
        If two inputs would get the same output name, or an output would overwrite an input.
    """
    outputs: list[Path | str] = []
    taken: dict[str, Path | str] = {}
    remote = isinstance(out_dir, str) and storage.is_url(out_dir)
    input_paths = {p if isinstance(p, str) else p.resolve() for p in inputs}
    input_ids = {file_id for p in inputs if not isinstance(p, str) and (file_id := _file_id(p)) is not None}
    for path in inputs:
        name = output_name(path, fmt)
        target: Path | str = storage.join(out_dir, name) if remote else Path(os.path.abspath(Path(out_dir) / name))
        key = name if remote else os.path.normcase(name)
        if key in taken:
            raise DenoiselabError(
                f"{taken[key]} and {path} would both be written to {target}; rename one, or run them into different "
                "folders"
            )
        taken[key] = path
        if target in input_paths or (not remote and (target.resolve() in input_paths or _file_id(target) in input_ids)):
            raise DenoiselabError(
                f"the output {target} would overwrite an input; choose another output folder (or --format)"
            )
        outputs.append(target)
    return outputs


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file, so hard links and symlinks compare equal; None if missing."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def check_output(path: Path | str, *, protect: Iterable[Path | str] = (), what: str = "output") -> None:
    """Fail early, before any computing, if `path` cannot be written as an image.

    Parameters
    ----------
    path : Path or str
        The file to be written: its extension must be an image one, its folder must exist and
        be writable, and it must not be a folder. A URL (str) is only checked for its
        extension and against `protect` (its bucket: :func:`denoiselab.batch.storage.check_reachable`).
    protect : iterable of Path or str, optional
        Files it must not be (the inputs).
    what : str, optional
        How to name the file in messages ("output", "uncertainty map").

    Raises
    ------
    DenoiselabError
        With a one-line message saying what to change.
    """
    from ..io import same_file

    suffix = PurePosixPath(storage.basename(str(path))).suffix
    if suffix.lower() not in IMAGE_EXTENSIONS:
        raise DenoiselabError(
            f"cannot write the {what} {storage.redact(str(path))}: unknown extension {suffix or '(none)'!r}; "
            f"use one of {', '.join(IMAGE_EXTENSIONS)}"
        )
    if isinstance(path, str) and storage.is_url(path):
        if path in {str(p) for p in protect}:
            raise DenoiselabError(f"refusing to overwrite the input {path} with the {what}; choose another URL")
        return
    path = Path(path)
    protect = [p for p in protect if not (isinstance(p, str) and storage.is_url(p))]
    for other in protect:
        if same_file(path, other):
            raise DenoiselabError(f"refusing to overwrite the input {other} with the {what}; choose another path")
    check_folder_writable(path)


def check_folder_writable(path: Path) -> None:
    """Raise DenoiselabError unless `path`'s folder exists and is writable and `path` is no folder."""
    folder = path.parent
    if not folder.is_dir():
        raise DenoiselabError(f"cannot write {path}: the folder {folder} does not exist; create it first (mkdir -p {folder})")
    if path.is_dir():
        raise DenoiselabError(f"cannot write {path}: it is a folder; give a file name such as {path / 'out.png'}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DenoiselabError(f"cannot write {path}: the folder {folder} is not writable; choose a writable output folder")


def make_folder(folder: Path, what: str = "output folder") -> Path:
    """Create `folder` (and its parents) if missing; raise DenoiselabError if it cannot be one."""
    if folder.exists() and not folder.is_dir():
        raise DenoiselabError(f"the {what} {folder} is a file; give a folder (several inputs make several outputs)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DenoiselabError(f"cannot create the {what} {folder}: {err.strerror or err}; choose another folder") from err
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DenoiselabError(f"the {what} {folder} is not writable; choose a writable folder")
    return folder
