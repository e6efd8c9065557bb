"""One writer per output folder: a lock file naming its owner, and stale temporary files swept.

A long job (``sim.train``, ``sim.whatif``) holds :func:`folder_lock` on its ``--out`` folder for
its whole run. The lock is ``OUT/.promptabr.lock``: the file holds the owner's PID, host and
command, and the owner holds an exclusive ``flock`` on it. The kernel drops a ``flock`` when its
holder dies (even by ``kill -9``), so a lock left by a dead process is stale by construction and
the next run takes it over; a live owner makes the second run fail at once with one line naming
the folder and the owner's PID. The lock is re-entrant within one process. A folder the lock
created is removed again if the run fails before writing anything into it.

Once the lock is held, no one else writes in the folder, so the temporary files of
:func:`abr.io.write_atomic` found there (``.NAME.XXXX.tmp``) are leftovers of a killed run:
:func:`clean_stale_tmp` removes them. A single output file (``sim.run --out FILE``) has no
folder lock: :func:`clean_stale_tmp_beside` removes the temporaries of ``FILE`` whose writer is
dead, which it tells by the ``flock`` every :func:`abr.io.write_atomic` holds on its temporary
file while it writes.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from abr.errors import InputError

__all__ = ["LOCK_NAME", "clean_stale_tmp", "clean_stale_tmp_beside", "folder_lock"]

LOCK_NAME = ".promptabr.lock"
_HELD: dict[Path, int] = {}  # folder -> nesting depth, for this process


def _owner(path: Path) -> str:
    try:
        doc = json.loads(path.read_text())
        return f"PID {doc['pid']} on {doc['host']} ({doc['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def folder_lock(folder: str | os.PathLike[str], command: str = "") -> Iterator[Path]:
    """Hold the lock of ``folder`` (created if needed) for the ``with`` block.

    :raises InputError: another live process holds it, or ``folder`` cannot be a folder.
    """
    folder = Path(folder)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError("--out must be a folder; this is a file", path=folder) from None
    except OSError as exc:
        raise InputError(f"cannot create the output folder ({exc.strerror or exc})", path=folder) from None
    key = folder.resolve()
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield folder / LOCK_NAME
        finally:
            _HELD[key] -= 1
        return
    path = folder / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(f"cannot create a lock file in the output folder ({exc.strerror or exc})",
                             path=folder) from None  # fmt: skip
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(
                f"in use by {_owner(path)}: two runs cannot write one folder; wait for it, stop it, or choose "
                "another --out",
                path=folder,
            ) from None
        try:  # the previous owner may have removed the file between our open and flock: retry on the new one
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    doc = {"pid": os.getpid(), "host": socket.gethostname(), "command": command or " ".join(sys.argv[:1])}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(doc) + "\n").encode(), 0)
    _HELD[key] = 1
    failed = True
    try:
        clean_stale_tmp(folder)
        yield path
        failed = False
    finally:
        del _HELD[key]
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
        if failed and created:  # a run that failed before writing anything leaves no folder behind
            try:
                folder.rmdir()
            except OSError:
                pass


def clean_stale_tmp(folder: str | os.PathLike[str], depth: int = 2) -> list[Path]:
    """Remove the temporary files :func:`abr.io.write_atomic` leaves when killed (``.NAME.*.tmp``
    and ``.NAME.*.tmp.*``) in ``folder`` and its subfolders up to ``depth`` levels. Call only while
    holding :func:`folder_lock`, when nobody else writes there."""
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        name = entry.name
        if entry.is_dir() and not entry.is_symlink():
            if depth > 0:
                removed += clean_stale_tmp(entry, depth - 1)
        elif name.startswith(".") and name != LOCK_NAME and (name.endswith(".tmp") or ".tmp." in name):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def clean_stale_tmp_beside(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files :func:`abr.io.write_atomic` made for ``path`` (``.NAME.`` and
    ``tempfile``'s 8 characters, then ``.tmp`` and any suffix) whose writer is no longer alive:
    one that still runs holds an exclusive ``flock`` on its file, so only files whose lock can be
    taken are removed. Other files, and other names' temporaries, are left alone."""
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}.") + r"[a-z0-9_]{8}\.tmp(\..*)?", re.DOTALL)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(entry.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # BlockingIOError: its writer is alive; or it went away meanwhile
            pass
        finally:
            os.close(fd)
    return removed
