"""Where outputs may go: can the run folder be made (asked before Hydra makes it), and
does a transcription's path stay inside its output folder.

Hydra creates the run folder (``hydra.run.dir``, or ``hydra.sweep.dir`` in a sweep)
before the task starts, and a folder that cannot be created ends in a traceback from
inside Hydra. ``python -m chordexp.run`` asks first: the nearest existing ancestor of
each folder given on the command line (``outputs/`` when none is) must be a folder in
which a subfolder can be created (tried with a temporary one, removed at once, so
nothing is left behind and the answer is right for root and read-only file systems
alike). A value with an interpolation is checked up to its first ``${``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

from chordexp.cli import UsageError

RUN_DIR_KEYS = ("hydra.run.dir", "hydra.sweep.dir")
DEFAULT_ROOT = "outputs"
#: Flags after which Hydra prints something and makes no run folder.
NO_FOLDER_FLAGS = ("--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "--resolve",
                   "--shell-completion", "-sc")


def check_output_dirs(argv: Sequence[str]) -> None:
    """Raise UsageError (one line naming the key) when a run folder of ``argv`` cannot be created."""
    if any(arg.partition("=")[0] in NO_FOLDER_FLAGS for arg in argv):
        return
    given = [(key, value) for key, _, value in (arg.lstrip("+").partition("=") for arg in argv)
             if key in RUN_DIR_KEYS]
    for key, value in given or [("hydra.run.dir", DEFAULT_ROOT + "/")]:
        check_creatable(key, _unquote(value))


def check_creatable(key: str, value: str) -> None:
    """UsageError unless the folder ``value`` (given as ``key``) exists or can be created."""
    fixed = value.split("${", 1)[0]
    path = Path(fixed).expanduser() if fixed.endswith("/") or "${" not in value else Path(fixed).expanduser().parent
    existing = path if str(path) else Path(".")
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{key}={value}: cannot create the run folder: {existing} is not a folder")
    try:
        probe = tempfile.mkdtemp(prefix=".chordexp-write-test-", dir=existing)
    except OSError as error:
        raise UsageError(f"{key}={value}: cannot create the run folder: {existing} is not writable "
                         f"({error.strerror})") from None
    os.rmdir(probe)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def contained_target(output: Path, relative: Path) -> Path:
    """``output / relative``, refused (UsageError naming it) where an absolute or ``..``
    component or a symbolic link (a folder or the file itself) would put it outside
    ``output``: a transcription never writes anywhere but the folder asked for."""
    target = output / relative
    inside = not relative.is_absolute() and ".." not in relative.parts
    try:
        inside = inside and target.resolve().is_relative_to(output.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    if not inside:
        raise UsageError(f"{target}: would be written outside output={output} (an absolute or '..' path, or a "
                         f"symbolic link leading elsewhere); nothing written there")
    return target
