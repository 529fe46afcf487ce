"""Inputs and outputs in object storage: fsspec URLs (``s3://``, ``gs://``, ...) beside local paths.

A *location* is either a local path (a ``str``; ``file://`` URLs are turned into one) or a URL
``protocol://...`` handled by the fsspec package of that protocol (``s3fs`` for ``s3://``:
``pip install 'denoiselab[cloud]'``). The image codecs (:mod:`denoiselab.io`) work on local
files, so a URL input is downloaded into a private temporary folder before it is decoded
(:func:`staged_input`), and a URL output is encoded into one and then uploaded with a single
call (:func:`staged_output`): on S3 one ``PutObject`` (or a multipart upload, which S3 also makes
visible only once complete), so an object appears whole or not at all; a crash leaves no
partial object. Local paths are passed through untouched: they keep their atomic rename.

Credentials come from where the protocol's library looks for them (for S3: the
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` variables, ``~/.aws/credentials``, an instance
role; the endpoint of an S3-compatible server from ``AWS_ENDPOINT_URL`` or
``FSSPEC_S3_ENDPOINT_URL``). denoiselab never takes them as options and never writes them:
every message that leaves this module goes through :func:`redact`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from ..errors import DenoiselabError

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")
_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]+://)[^/@\s]+@")
#: Environment variables whose values are secrets (never shown, whatever a library puts in its message).
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID",
                    "FSSPEC_S3_KEY", "FSSPEC_S3_SECRET", "FSSPEC_S3_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS",
                    "AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_CONNECTION_STRING",
                    "AZURE_STORAGE_SAS_TOKEN")


def is_url(spec: str | os.PathLike[str]) -> bool:
    """True for ``protocol://...`` with a protocol of two or more characters (not ``C:/``), file:// excluded.

    Examples
    --------
    >>> is_url("s3://bucket/a.png"), is_url("raw/a.png"), is_url("file:///tmp/a.png")
    (True, False, False)
    """
    match = _URL.match(os.fspath(spec)) if isinstance(spec, str) else None
    return bool(match) and match.group(1).lower() != "file"


def as_location(spec: str | os.PathLike[str]) -> str:
    """A URL as given, a ``file://`` URL as its local path, a local path made absolute (``~`` expanded).

    Examples
    --------
    >>> as_location("file:///tmp/a.png"), as_location("s3://b/k.png")
    ('/tmp/a.png', 's3://b/k.png')
    """
    text = os.fspath(spec)
    if is_url(text):
        return text
    if text.lower().startswith("file://"):
        text = text[len("file://"):]
    return os.path.abspath(os.path.expanduser(text))


def redact(text: str) -> str:
    """`text` with the values of the secret variables of :data:`SECRET_VARIABLES` and any
    ``user:password@`` of a URL replaced by ``***``.

    Examples
    --------
    >>> redact("cannot read s3://me:pw@bucket/a.png")
    'cannot read s3://***@bucket/a.png'
    """
    text = _USERINFO.sub(r"\1***@", text)
    for name in SECRET_VARIABLES:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def basename(location: str) -> str:
    """The last part of a location's path (``s3://b/raw/a.png`` -> ``a.png``)."""
    return PurePosixPath(location.rstrip("/")).name if is_url(location) else Path(location).name


def join(folder: str, name: str) -> str:
    """`name` inside the folder `folder` (a URL prefix or a local folder)."""
    return f"{folder.rstrip('/')}/{name}" if is_url(folder) else os.path.join(folder, name)


def parent(location: str) -> str:
    """The folder (URL prefix or local folder) that holds `location`."""
    return location.rstrip("/").rsplit("/", 1)[0] if is_url(location) else os.path.dirname(location)


def filesystem(url: str):
    """The fsspec file system of `url` and the path within it.

    Raises
    ------
    DenoiselabError
        If fsspec or the protocol's package is missing, or the protocol is unknown.
    """
    protocol = url.split("://", 1)[0].lower()
    try:
        import fsspec
        from fsspec.core import url_to_fs
    except ImportError as err:
        raise DenoiselabError(
            f"{redact(url)}: URLs need fsspec and the package of {protocol}://; pip install 'denoiselab[cloud]' (s3://)"
        ) from err
    try:
        return url_to_fs(url)
    except ImportError as err:
        package = "s3fs, pip install 'denoiselab[cloud]'" if protocol in ("s3", "s3a") else f"the fsspec package of {protocol}://"
        raise DenoiselabError(f"{redact(url)}: reading {protocol}:// needs {package}") from err
    except ValueError as err:
        known = ", ".join(sorted(p for p in fsspec.available_protocols() if len(p) > 1)[:12])
        raise DenoiselabError(f"{redact(url)}: unknown protocol {protocol!r} (fsspec knows {known}, ...)") from err


def storage_error(url: str, err: BaseException, doing: str) -> DenoiselabError:
    """A one-line, credential-free `DenoiselabError` for an error of the storage library.

    Parameters
    ----------
    url : str
        The location being used.
    err : BaseException
        What the library raised.
    doing : str
        What was being done ("read", "list", "write", ...).
    """
    kind = type(err).__name__
    reason = " ".join(str(err).split())[:300] or kind
    if isinstance(err, PermissionError):
        hint = "access denied: check the credentials (environment, ~/.aws/credentials) and the bucket's permissions"
    elif isinstance(err, FileNotFoundError):
        hint = "no such bucket, folder or object; check the URL"
    elif "connect" in reason.lower() or "endpoint" in reason.lower() or "timeout" in kind.lower():
        hint = "the storage endpoint cannot be reached; check the network and AWS_ENDPOINT_URL"
    else:
        hint = "check the URL and the credentials"
    return DenoiselabError(redact(f"cannot {doing} {url}: {reason} ({hint})"))


def _storage_errors() -> tuple[type[BaseException], ...]:
    """The errors a storage library raises for a bad URL, bucket, key or endpoint (a bare Exception
    is never caught: botocore's connection errors are not OSErrors, so they are named by class)."""
    errors: list[type[BaseException]] = [OSError, ValueError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    except ImportError:
        pass
    try:
        from aiohttp import ClientError as HttpClientError

        errors.append(HttpClientError)
    except ImportError:
        pass
    return tuple(errors)


def check_reachable(url: str, what: str = "output folder") -> None:
    """Fail before any work if the bucket (root) of `url` is missing, denied or unreachable.

    Raises
    ------
    DenoiselabError
        One line: ``cannot list s3://bucket: ... (access denied: ...)``.
    """
    fs, path = filesystem(url)
    root = path.split("/", 1)[0]
    try:
        fs.ls(root, detail=False)
    except _storage_errors() as err:
        raise storage_error(f"{url.split('://', 1)[0]}://{root}", err, f"list (the {what} of {url})") from err


def list_existing(folders: Iterable[str]) -> set[str]:
    """The URLs of the objects directly inside each URL folder (one listing per folder; missing: none)."""
    found: set[str] = set()
    for folder in set(folders):
        fs, path = filesystem(folder)
        try:
            entries = fs.ls(path.rstrip("/"), detail=True, refresh=True)
        except FileNotFoundError:
            continue
        except _storage_errors() as err:
            raise storage_error(folder, err, "list") from err
        found.update(fs.unstrip_protocol(e["name"]) for e in entries if e.get("type") == "file")
    return found


def expand_url(spec: str, extensions: tuple[str, ...]) -> list[str]:
    """A URL file, folder (its images, not recursive, sorted) or glob pattern as sorted object URLs.

    Parameters
    ----------
    spec : str
        ``s3://bucket/a.png``, ``s3://bucket/raw/`` or ``s3://bucket/raw/*.tif`` (``**`` recurses).
    extensions : tuple of str
        Lower-case extensions that a folder's files must have.

    Raises
    ------
    DenoiselabError
        If nothing matches, or the bucket is missing, denied or unreachable.
    """
    fs, path = filesystem(spec)
    protocol_root = spec.split("://", 1)[0]
    try:
        if set("*?[") & set(path):
            matches = sorted(fs.glob(path))
            files = [m for m in matches if fs.isfile(m)] if len(matches) < 10_000 else matches
            if not files:
                check_reachable(spec, "input")
                raise DenoiselabError(f"the pattern {redact(spec)!r} matches no object; check it (quote it)")
        elif fs.isdir(path):
            entries = sorted(fs.ls(path.rstrip("/"), detail=True), key=lambda e: e["name"])
            files = [e["name"] for e in entries if e.get("type") == "file"
                     and PurePosixPath(e["name"]).suffix.lower() in extensions
                     and not PurePosixPath(e["name"]).name.startswith(".")]
            if not files:
                raise DenoiselabError(f"the folder {redact(spec)} holds no image ({', '.join(extensions)})")
        elif fs.isfile(path):
            files = [path]
        else:
            check_reachable(spec, "input")
            raise DenoiselabError(f"cannot read {redact(spec)}: no such object or folder; check the URL")
    except _storage_errors() as err:
        raise storage_error(spec, err, "list") from err
    return [_with_protocol(fs, f, protocol_root) for f in files]


def _with_protocol(fs, path: str, protocol: str) -> str:
    url = fs.unstrip_protocol(path)
    return url if url.startswith(f"{protocol}://") else f"{protocol}://{path}"


def is_folder(url: str) -> bool:
    """True when the URL names an existing folder (prefix) or ends with ``/``."""
    if url.endswith("/"):
        return True
    fs, path = filesystem(url)
    try:
        return fs.isdir(path)
    except _storage_errors() as err:
        raise storage_error(url, err, "look at") from err


def put_bytes(url: str, data: bytes) -> None:
    """Write `data` as the object `url` with one upload call (whole or not at all on S3)."""
    fs, path = filesystem(url)
    try:
        fs.pipe_file(path, data)
    except _storage_errors() as err:
        raise storage_error(url, err, "write") from err


def get_bytes(url: str) -> bytes | None:
    """The content of the object `url`, or None if it does not exist."""
    fs, path = filesystem(url)
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        return None
    except _storage_errors() as err:
        raise storage_error(url, err, "read") from err


def remove(location: str) -> None:
    """Delete a local file or an object; a missing one is fine."""
    if not is_url(location):
        Path(location).unlink(missing_ok=True)
        return
    fs, path = filesystem(location)
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        pass
    except _storage_errors() as err:
        raise storage_error(location, err, "delete") from err


@contextmanager
def _scratch(location: str) -> Iterator[Path]:
    """A private temporary folder holding a file of the same name as `location`; messages naming it name `location`."""
    folder = Path(tempfile.mkdtemp(prefix="denoiselab-"))
    local = folder / basename(location)
    try:
        yield local
    except DenoiselabError as err:
        raise DenoiselabError(redact(str(err).replace(str(local), location))) from err
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def staged_input(location: str) -> Iterator[Path]:
    """A local file holding `location`'s content: the path itself, or a downloaded copy of a URL.

    Raises
    ------
    DenoiselabError
        If the object is missing, denied or unreachable (messages name the URL, not the copy).
    """
    if not is_url(location):
        yield Path(location)
        return
    with _scratch(location) as local:
        data = get_bytes(location)
        if data is None:
            raise DenoiselabError(f"cannot read {redact(location)}: no such object; check the URL")
        local.write_bytes(data)
        yield local


@contextmanager
def staged_output(location: str) -> Iterator[Path]:
    """A local path to write `location` to: the path itself, or a scratch file uploaded on success.

    The upload happens only when the ``with`` block ends without an exception, with one call
    (:func:`put_bytes`), so the object appears whole or not at all.
    """
    if not is_url(location):
        yield Path(location)
        return
    with _scratch(location) as local:
        yield local
        put_bytes(location, local.read_bytes())
