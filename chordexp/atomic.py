"""Atomic file writes: a crash or a full disk never leaves a half-written file in place
of a good one.

Data goes to a temporary file in the target's folder (same file system, so the rename
is atomic), is flushed and fsynced, renamed over the target, and the folder is fsynced
so the rename itself survives a power cut. Any failure removes the temporary file and
leaves the previous target untouched; a full disk (ENOSPC, EDQUOT) becomes a
:class:`DiskFullError` whose one-line message names the file and says so. No torch
here: run-folder JSON and checkpoints share this code.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Union

from chordexp.errors import UserError

PathLike = Union[str, os.PathLike]

#: errno values that mean "no room left": the device, or the user's quota.
DISK_FULL_ERRNOS = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None)


class DiskFullError(UserError, OSError):
    """A write failed for lack of space; the message names the file and what survived."""

    def __init__(self, code: int, message: str, filename: str) -> None:
        super().__init__(code, message, filename)
        self.message = message

    def __str__(self) -> str:
        return self.message


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via temp file + flush + fsync + ``os.replace`` + folder fsync."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    except OSError as error:
        if error.errno in DISK_FULL_ERRNOS:
            raise _disk_full(path, error) from None
        raise
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    _fsync_folder(path.parent)
    remove_stale_temps(path)


def atomic_write_text(path: PathLike, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temps(path: PathLike) -> None:
    """Delete temporary files a killed writer of ``path`` left behind (they are never read)."""
    path = Path(path)
    for stale in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters bracketed, so it matches only itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a write may be partial)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _disk_full(path: Path, error: OSError) -> DiskFullError:
    assert error.errno is not None  # only called for an errno in DISK_FULL_ERRNOS
    name = errno.errorcode.get(error.errno, str(error.errno))
    kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
    return DiskFullError(
        error.errno,
        f"cannot write {path}: no space left on device ({name}); {kept}; free some space and try again",
        str(path),
    )
