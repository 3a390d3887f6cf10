"""A lock file that names the live process holding something, and outlives no process.

``LockFile(path).acquire()`` creates ``path`` atomically (written in full to a temporary
file beside it, then hard-linked to its name, which fails if it exists; ``O_CREAT|O_EXCL``
where links are not supported). Its JSON names the owner: pid, host, the process's start
time, since when, and its ``sys.argv``. :meth:`LockFile.release` removes it, only in the
process that took it (a forked child never does).

A stale lock, left by a process that was killed (``kill -9``, a power cut), does not
block: when its pid is not running on this host (or is now another process, told by its
start time), it is taken away with a warning. A lock from another host cannot be checked
and blocks until removed by hand. Plain Python, no Hydra: the messages of the errors are
the subclass's (``chordexp.experiment.run_lock.RunLock`` names a run folder).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from chordexp.errors import UsageError


class LockError(UsageError):
    """A lock held by a live process, or one that cannot be read or taken."""


@dataclass
class LockOwner:
    pid: int
    host: str
    process_start: Optional[str] = None  # /proc/<pid>/stat start time (ticks since boot)
    since: Optional[str] = None

    def describe(self) -> str:
        when = f" since {self.since}" if self.since else ""
        return f"pid {self.pid} on {self.host}{when}"

    def same_as(self, other: "LockOwner") -> bool:
        return (self.pid, self.host, self.since) == (other.pid, other.host, other.since)


def process_start(pid: int) -> Optional[str]:
    """The start time of process ``pid`` (Linux ``/proc``), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def process_alive(owner: LockOwner) -> bool:
    """Whether ``owner``'s process still runs (on this host; a zombie counts as dead)."""
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except OSError as error:
        if not isinstance(error, PermissionError):  # PermissionError: someone else's process, it exists
            return True
    with contextlib.suppress(OSError):  # no /proc (not Linux): a zombie cannot be told apart
        stat = Path(f"/proc/{owner.pid}/stat").read_text()
        if stat[stat.rfind(")") + 2 :].split()[0] == "Z":
            return False
    now = process_start(owner.pid)
    return not (owner.process_start and now and now != owner.process_start)  # the pid was reused


def read_owner(path: Path) -> Optional[LockOwner]:
    """The owner a lock file names; None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
        return LockOwner(int(data["pid"]), str(data["host"]), data.get("process_start"), data.get("since"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_stale(owner: LockOwner) -> bool:
    """A lock whose process is gone: its host is this one and its pid is not running."""
    return owner.host == socket.gethostname() and not process_alive(owner)


def live_owner(path: Path) -> Optional[LockOwner]:
    """The owner of the lock file ``path`` when it is a live process (or one that cannot
    be checked from here); None for no lock, an unreadable one or a stale one."""
    owner = read_owner(path)
    return owner if owner is not None and not is_stale(owner) else None


class LockFile:
    """The lock file ``path``: :meth:`acquire` or an error; :meth:`release`.

    The errors come from :meth:`in_use`, :meth:`unreadable` and :meth:`contended`, and
    the warning about a stale lock names its owner ``holder``: a subclass words them for
    what it locks."""

    #: What the owner of a lock is called in the warning about a stale one.
    holder = "process"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.owner: Optional[LockOwner] = None

    def acquire(self) -> None:
        for _ in range(5):
            if self._create():
                return
            owner = read_owner(self.path)
            if owner is None:
                if not self.path.exists():
                    continue  # released meanwhile: try again
                raise self.unreadable()
            if not is_stale(owner):
                raise self.in_use(owner)
            self._remove_stale(owner)
        raise self.contended()

    def check_not_in_use(self) -> None:
        """The :meth:`in_use` error when a live process holds the lock (nothing is changed)."""
        owner = live_owner(self.path)
        if owner is not None:
            raise self.in_use(owner)

    def in_use(self, owner: LockOwner) -> Exception:
        return LockError(f"{self.path} is held by a running process ({owner.describe()})")

    def unreadable(self) -> Exception:
        return LockError(f"the lock {self.path} cannot be read; if no process is using it, remove that file")

    def contended(self) -> Exception:
        return LockError(f"could not take the lock {self.path}; another process keeps taking it")

    def release(self) -> None:
        """Remove the lock if this process holds it (a forked child never removes it)."""
        owner, self.owner = self.owner, None
        if owner is None or owner.pid != os.getpid():
            return
        current = read_owner(self.path)
        if current is not None and current.same_as(owner):
            with contextlib.suppress(OSError):
                self.path.unlink()

    def _create(self) -> bool:
        pid = os.getpid()
        owner = LockOwner(pid, socket.gethostname(), process_start(pid), time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        text = (
            json.dumps(
                {
                    "pid": owner.pid,
                    "host": owner.host,
                    "process_start": owner.process_start,
                    "since": owner.since,
                    "argv": sys.argv,
                }
            )
            + "\n"
        )
        tmp = self.path.with_name(f"{self.path.name}.{pid}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, text.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, self.path)  # atomic, whole content, fails if the lock exists
            except FileExistsError:
                return False
            except OSError as error:
                if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                    raise
                try:  # no hard links here: exclusive create, then write
                    fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    return False
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        self.owner = owner
        return True

    def _remove_stale(self, owner: LockOwner) -> None:
        """Take the stale lock away by renaming it (atomic), so that two processes removing
        the same stale lock at once cannot remove a fresh one; a fresh one is put back."""
        aside = self.path.with_name(f"{self.path.name}.stale.{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        taken = read_owner(aside)
        if taken is not None and taken.same_as(owner):
            print(
                f"warning: removed the stale lock {self.path} of a {self.holder} that is gone ({owner.describe()})",
                file=sys.stderr,
            )
        else:  # a fresh lock was taken meanwhile: it is not ours to remove
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
        with contextlib.suppress(OSError):
            aside.unlink()
