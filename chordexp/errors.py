"""What a user sees when a command fails: one line naming the key or file, no traceback.

Every entry point reports errors caused by its input or environment (a bad value, a
missing, corrupt or unwritable file, a checkpoint that does not fit, a full disk, a
data item that cannot be loaded, a DataLoader worker that died) as one line and a
non-zero exit status. Anything else is a bug and keeps its traceback.
``CHORDEXP_DEBUG=1`` shows the traceback of every error. Plain Python, no torch.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

DEBUG_ENV = "CHORDEXP_DEBUG"
PACKAGE_DIR = Path(__file__).resolve().parent

#: torch's message when a DataLoader worker process vanished (a signal, the OOM killer).
_WORKER_DIED = re.compile(r"DataLoader worker \(pid")
#: torch's message for an exception raised inside a worker and re-raised in the main process.
_WORKER_CAUGHT = re.compile(r"^Caught (\w+) (in DataLoader worker process \d+)\.\s*\nOriginal Traceback")
_QUALIFIED_ERROR = re.compile(r"^([\w.]+\.\w+): ", re.MULTILINE)  # "chordexp.x.SongError: ..." lines
_MODULE_PREFIX = re.compile(r"^[\w.]+\.(\w+: )")  # "chordexp.data.x.ItemLoadError: " -> "ItemLoadError: "
_TRACEBACK_FILE = re.compile(r'^\s*File "([^"]+)", line \d+', re.MULTILINE)
#: Classes whose name leads their line: it is what logs and searches look for.
_NAME_IN_LINE = frozenset({"NonFiniteLossError"})


class ChordexpError(Exception):
    """Base of the errors chordexp raises on purpose."""


class UserError(ChordexpError):
    """Bad input or environment (a value, a file, a checkpoint, a full disk), or a known
    outcome of training whose message says it all: every entry point shows it as one line
    and exits with status 2. Each subclass also subclasses the built-in it stands for
    (``class AudioError(UserError, ValueError)``), so ``except ValueError`` still catches it."""


class UsageError(UserError, ValueError):
    """Bad command-line input: the message names the key or path and what is wrong."""


class ConfigValueError(UserError, ValueError):
    """A config value that composes but cannot work; the message names the key."""


def _is_user_error_class(qualified: str) -> bool:
    """``'chordexp.data.item_errors.ItemLoadError'`` names a UserError class: how an error
    re-raised by a DataLoader worker (only its name and message survive) is recognised."""
    import importlib

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
    every :class:`UserError`, OSError (missing, unreadable or unwritable files), ValueErrors that
    chordexp raised itself (its validation: config values, devices, audio, .lab files,
    checkpoints, datasets), items that failed to load and DataLoader workers that died.
    ValueErrors from deep inside a library are not: they are bugs until shown otherwise."""
    error = unwrap(error)
    if isinstance(error, (UserError, OSError)):
        return True
    message = str(error)
    if _WORKER_DIED.search(message):
        return True
    caught = _WORKER_CAUGHT.match(message)
    if caught:
        raised_in = _TRACEBACK_FILE.findall(message)
        named = _QUALIFIED_ERROR.findall(message)
        return (bool(named) and _is_user_error_class(named[-1])) or (
            caught.group(1).endswith("ValueError") and bool(raised_in) and _in_package(raised_in[-1]))
    return isinstance(error, ValueError) and _raised_here(error)


def one_line(error: BaseException) -> str:
    """The error as one line that names the key or file and what is wrong."""
    error = unwrap(error)
    message = str(error)
    caught = _WORKER_CAUGHT.match(message)
    if caught:
        last = [line for line in message.splitlines() if line.strip()][-1].strip()
        return caught.group(2) + ": " + _MODULE_PREFIX.sub(r"\1", last)
    if _WORKER_DIED.search(message):
        return (f"{first_line(message)}: a DataLoader worker process died (killed by a signal, often the "
                f"out-of-memory killer); lower data.num_workers or data.batch_size, or set data.num_workers=0 "
                f"to see a failing item's own error")
    if isinstance(error, OSError) and error.filename is not None and type(error).__str__ is OSError.__str__:
        where = f"{error.filename} -> {error.filename2}" if error.filename2 is not None else str(error.filename)
        return f"{where}: {error.strerror or type(error).__name__}"
    if type(error).__name__ in _NAME_IN_LINE:
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


def _raised_here(error: BaseException) -> bool:
    """The innermost frame of ``error``'s traceback is chordexp code (a ``raise`` of ours)."""
    tb = error.__traceback__
    last: Optional[str] = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return last is not None and _in_package(last)


def _in_package(filename: str) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(PACKAGE_DIR)
    except (OSError, ValueError):
        return False
