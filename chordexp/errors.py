"""What a user sees when a command fails: one line naming the key or file, no traceback.

Every entry point reports errors caused by its input or environment (a bad value, a
missing, corrupt or unwritable file, a checkpoint that does not fit, a full disk, a
data item that cannot be loaded, a DataLoader worker that died) as one line and a
non-zero exit status. Anything else is a bug and keeps its traceback. Which is which
is the error's class (:class:`UserError` and its subclasses, OSError), never the file
that raised it.
``CHORDEXP_DEBUG=1`` shows the traceback of every error. Plain Python, no torch.
"""

from __future__ import annotations

import importlib
import os
import re
import signal
from typing import ClassVar, Optional

DEBUG_ENV = "CHORDEXP_DEBUG"

#: torch's message when a DataLoader worker process vanished (a signal, the OOM killer).
_WORKER_DIED = re.compile(r"DataLoader worker \(pid")
#: torch's message for an exception raised inside a worker and re-raised in the main process.
_WORKER_CAUGHT = re.compile(r"^Caught (\w+) (in DataLoader worker process \d+)\.\s*\nOriginal Traceback")
_QUALIFIED_ERROR = re.compile(r"^([\w.]+\.\w+): ", re.MULTILINE)  # "chordexp.x.SongError: ..." lines
_MODULE_PREFIX = re.compile(r"^[\w.]+\.(\w+: )")  # "chordexp.data.x.ItemLoadError: " -> "ItemLoadError: "


class ChordexpError(Exception):
    """Base of the errors chordexp raises on purpose."""


class UserError(ChordexpError):
    """Bad input or environment (a value, a file, a checkpoint, a full disk), or a known
    outcome of training whose message says it all: every entry point shows it as one line
    and exits with status 2. Each subclass also subclasses the built-in it stands for
    (``class AudioError(UserError, ValueError)``), so ``except ValueError`` still catches it."""

    #: The class name leads the one line (``NonFiniteLossError: ...``): what logs and searches look for.
    name_in_line: ClassVar[bool] = False


class TrainingInterrupted(ChordexpError, RuntimeError):
    """``request_stop`` was called (e.g. by a signal): training stopped at a safe point,
    with ``last.pt`` holding the last completed epoch. ``reason`` is what was passed to
    ``request_stop`` (a signal's name such as ``'SIGTERM'``). Not the user's error: the
    run is resumable, and ends with :func:`signal_exit_status`."""

    def __init__(self, message: str, reason: Optional[str] = None) -> None:
        super().__init__(message)
        self.reason = reason


def signal_exit_status(signal_name: Optional[str]) -> int:
    """The conventional shell status of a process ended by ``signal_name`` (else 1)."""
    try:
        return 128 + int(signal.Signals[signal_name]) if signal_name else 1
    except KeyError:
        return 1


class UsageError(UserError, ValueError):
    """Bad command-line input: the message names the key or path and what is wrong."""


class ConfigValueError(UserError, ValueError):
    """A config value that composes but cannot work; the message names the key."""


def _is_user_error_class(qualified: str) -> bool:
    """``'chordexp.data.item_errors.ItemLoadError'`` names a UserError class: how an error
    re-raised by a DataLoader worker (only its name and message survive) is recognised."""
    module, _, name = qualified.rpartition(".")
    if not module.startswith("chordexp"):
        return False
    try:
        cls = getattr(importlib.import_module(module), name, None)
    except ImportError:
        return False
    return isinstance(cls, type) and issubclass(cls, UserError)


def debug_requested() -> bool:
    """``CHORDEXP_DEBUG`` is set (to anything but ``0``): show full tracebacks."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def is_user_error(error: BaseException) -> bool:
    """True for errors caused by the input or the environment, reported as one line:
    every :class:`UserError` (chordexp's checks of values, files, checkpoints, datasets),
    OSError (missing, unreadable or unwritable files), a UserError that a DataLoader
    worker raised (torch re-raises it as text when it cannot rebuild the class) and a
    worker that died. Anything else, a ValueError from a library included, is a bug."""
    error = unwrap(error)
    if isinstance(error, (UserError, OSError)):
        return True
    message = str(error)
    if _WORKER_DIED.search(message):
        return True
    if _WORKER_CAUGHT.match(message):
        named = _QUALIFIED_ERROR.findall(message)
        return bool(named) and _is_user_error_class(named[-1])
    return False


def one_line(error: BaseException) -> str:
    """The error as one line that names the key or file and what is wrong."""
    error = unwrap(error)
    message = str(error)
    caught = _WORKER_CAUGHT.match(message)
    if caught:
        last = [line for line in message.splitlines() if line.strip()][-1].strip()
        return caught.group(2) + ": " + _MODULE_PREFIX.sub(r"\1", last)
    if _WORKER_DIED.search(message):
        return (
            f"{first_line(message)}: a DataLoader worker process died (killed by a signal, often the "
            f"out-of-memory killer); lower data.num_workers or data.batch_size, or set data.num_workers=0 "
            f"to see a failing item's own error"
        )
    if isinstance(error, OSError) and error.filename is not None and type(error).__str__ is OSError.__str__:
        where = f"{error.filename} -> {error.filename2}" if error.filename2 is not None else str(error.filename)
        return f"{where}: {error.strerror or type(error).__name__}"
    if isinstance(error, UserError) and error.name_in_line:
        return f"{type(error).__name__}: {first_line(message)}"
    return first_line(message) or type(error).__name__


def unwrap(error: BaseException) -> BaseException:
    """The error a component raised, out of Hydra's ``InstantiationException`` around it
    ("Error in call to target ...": the message that matters is the component's own)."""
    while type(error).__name__ == "InstantiationException" and error.__cause__ is not None:
        error = error.__cause__
    return error


def first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""
