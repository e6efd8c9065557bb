"""Atomic file writes: the one way promptabr writes results, so nothing is ever half-written.

Every writer goes through :func:`write_atomic`: write a temporary file in the target's
folder, then rename it onto the target. An interrupted job (Ctrl-C, a crash) leaves the old
file or none, never a truncated one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from abr.errors import InputError

__all__ = [
    "MAX_JSON_BYTES",
    "check_output",
    "parse_json",
    "read_json",
    "read_text",
    "sha256_file",
    "write_atomic",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]


def write_atomic(path: str | os.PathLike[str], write: Callable[[Path], Any], *, suffix: str = ".tmp") -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it onto ``path``.

    ``suffix`` is the temporary file's suffix (after ``.tmp``), for writers that pick a format
    from it (matplotlib, PyAV). The file is made world-readable (0644) like an ordinary file.
    """
    path = Path(path)
    # ".tmp" in every temporary name: abr.lock.clean_stale_tmp finds those a killed run left
    suffix = suffix if suffix.startswith(".tmp") else ".tmp" + suffix
    if path.is_dir():
        raise InputError("is a folder; cannot write a file there", path=path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _locked_tmp(path, suffix)
    except OSError as exc:
        raise InputError(f"cannot write here ({type(exc).__name__}: {exc.strerror or exc})", path=path) from None
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)  # releases the lock
    return path


def _locked_tmp(path: Path, suffix: str) -> tuple[int, str]:
    """A new temporary file beside ``path`` (``.NAME.XXXXXXXX.tmp...``), open, with an exclusive
    ``flock`` held until the descriptor closes: the kernel drops it when the writer dies, even by
    ``kill -9``, so :func:`abr.lock.clean_stale_tmp_beside` removes only the temporaries of dead
    writers."""
    while True:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:  # not swept between mkstemp and flock
                return fd, tmp
        except (BlockingIOError, FileNotFoundError):
            pass  # a sweep held or removed it in that instant: take another name
        os.close(fd)


def check_output(path: str | os.PathLike[str], *, folder: bool = False, option: str = "--out") -> Path:
    """Fail before any work (:class:`InputError`) if ``path`` cannot be written: a folder where a
    file is wanted (or a file where a folder is), a file among its parents, or a nearest existing
    folder that refuses new files (read-only, ``/proc``). Creates nothing."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        kind = "a folder" if folder else "a file name"
        raise InputError(f"{option} needs {kind}; this is {'a file' if folder else 'a folder'}", path=path)
    base = path if folder else path.parent
    near = base
    while not near.exists() and near != near.parent:
        near = near.parent
    if not near.is_dir():
        raise InputError(f"{option}: cannot create it, {near} is a file", path=path)
    try:
        with tempfile.TemporaryFile(dir=near):
            pass
    except OSError as exc:
        raise InputError(f"{option}: cannot write in {near} ({exc.strerror or exc})", path=path) from None
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    return write_atomic(path, lambda p: p.write_text(text))


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    return write_atomic(path, lambda p: p.write_bytes(data))


def write_json_atomic(path: str | os.PathLike[str], doc: Any, *, indent: int | None = 1) -> Path:
    return write_text_atomic(path, json.dumps(doc, indent=indent) + "\n")


def read_text(path: str | os.PathLike[str], kind: str) -> str:
    """The text of a ``kind`` file (``"ladder"``, ``"trace"``...); :class:`InputError` naming it if unreadable."""
    path = Path(path)
    try:
        return path.read_text()
    except FileNotFoundError:
        raise InputError(f"{kind} file not found", path=path) from None
    except IsADirectoryError:
        raise InputError(f"expected a {kind} file, got a folder", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {kind} file ({exc.__class__.__name__}: {exc})", path=path) from None


#: Largest JSON file :func:`read_json` reads (a typo'd path to a multi-GB dump fails at once).
MAX_JSON_BYTES = 256 << 20


def read_json(path: str | os.PathLike[str], kind: str, *, max_bytes: int | None = None) -> Any:
    """The document in the ``kind`` JSON file at ``path`` (``"ladder"``, ``"device profile"``...).

    One :class:`InputError` naming the file for every way it can be unusable: missing, a folder,
    unreadable, larger than ``max_bytes`` (default :data:`MAX_JSON_BYTES`), not UTF-8, not JSON,
    or nested too deeply.
    """
    max_bytes = MAX_JSON_BYTES if max_bytes is None else max_bytes
    path = Path(path)
    if path.is_dir():
        raise InputError(f"expected a {kind} file, got a folder", path=path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(f"{kind} file too large ({size:,} bytes; the limit is {max_bytes:,})", path=path)
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{kind} file not found", path=path) from None
    except OSError as exc:
        why = f"{exc.__class__.__name__}: {exc.strerror or exc}"
        raise InputError(f"cannot read {kind} file ({why})", path=path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{kind} file is not UTF-8 text (bad byte at offset {exc.start})", path=path) from None
    return parse_json(text, path, kind)


def parse_json(text: str, path: str | os.PathLike[str], kind: str) -> Any:
    """``text``, read from the ``kind`` file ``path``, as JSON; :class:`InputError` naming the file
    (and the line) if it is not JSON or is nested too deeply."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON in {kind} file ({exc.msg})", path=path, line=exc.lineno) from None
    except RecursionError:
        raise InputError(f"{kind} file: JSON nested too deeply", path=path) from None
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        raise InputError(f"invalid JSON in {kind} file ({exc})", path=path) from None


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (provenance of videos, weights, sdists)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
