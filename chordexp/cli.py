"""Hydra-style ``key=value`` arguments for the small entry points (predict, evaluate, ...).

Training goes through ``@hydra.main`` (config groups, sweeps, run folders); the tools
that only need a handful of typed options parse ``key=value`` into a dataclass with
OmegaConf, so they take the same syntax, validate keys and types the same way, and
start fast. Errors are one line naming the key, raised as ``UsageError``.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Sequence, Type, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from chordexp.errors import UsageError, debug_requested, is_user_error, one_line

T = TypeVar("T")
_KEY = re.compile(r"[A-Za-z_][\w.]*")  # what may stand before the = of key=value


def parse_args(schema: Type[T], argv: Sequence[str], positional: Sequence[str] = ()) -> T:
    """``['input=a.wav', 'batch_size=8']`` -> ``schema(input='a.wav', batch_size=8)``.

    Missing required fields (``???`` in the schema), unknown keys and wrong types raise
    UsageError. ``--help`` is handled by :func:`main_guard`. ``positional`` names the
    keys that bare arguments (no ``key=``) fill, in order: with ``('runs',)``,
    ``report outputs/multirun`` is ``report runs=outputs/multirun``.
    """
    argv = with_positional_keys(argv, positional)
    for arg in argv:
        if "=" not in arg or arg.startswith("="):
            raise UsageError(f"argument {arg!r} is not of the form key=value")
    try:
        base = OmegaConf.structured(schema)
        merged = OmegaConf.merge(base, OmegaConf.from_dotlist(list(argv)))
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise UsageError(f"missing required argument(s): {', '.join(k + '=...' for k in missing)}")
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        first_line = str(error).strip().splitlines()[0]
        raise UsageError(first_line) from None


def with_positional_keys(argv: Sequence[str], keys: Sequence[str]) -> list:
    """Bare arguments become ``key=value`` for ``keys`` in order; a key given both ways,
    or more bare arguments than keys, is a UsageError. Bare: no ``=``, or none after a
    key name (``outputs/lr=0.1`` is a path)."""
    if not keys:
        return list(argv)
    bare = [arg for arg in argv if _is_bare(arg)]
    if not bare:
        return list(argv)
    if len(bare) > len(keys):
        raise UsageError(
            f"argument {bare[len(keys)]!r} is not of the form key=value (bare arguments: {', '.join(keys)})"
        )
    named = dict(zip(keys, bare))
    for arg in argv:
        key = arg.split("=", 1)[0]
        if not _is_bare(arg) and key in named:
            raise UsageError(f"{key} given twice: {named[key]!r} and {arg!r}")
    filled = iter(named.items())
    return ["{}={}".format(*next(filled)) if _is_bare(arg) else arg for arg in argv]


def _is_bare(arg: str) -> bool:
    return "=" not in arg or _KEY.fullmatch(arg.split("=", 1)[0]) is None


def exiting(main):
    """``main(argv) -> status`` as an entry for :func:`main_guard` whose non-zero result
    is the process's exit status (a finished check that found problems: 1)."""

    def entry(argv) -> None:
        status = main(argv)
        if status:
            raise SystemExit(status)

    return entry


#: A command whose reader closed the pipe ends as one killed by SIGPIPE would: 128 + 13.
SIGPIPE_STATUS = 141


def main_guard(main, usage: str) -> None:
    """Run ``main(argv)``; turn errors of the input or the environment (bad arguments,
    missing, corrupt or unwritable files, checkpoints that do not fit, a full disk:
    ``chordexp.errors.is_user_error``) into one line on stderr and exit code 2. Other
    errors are bugs and keep their traceback.

    Set ``CHORDEXP_DEBUG=1`` to see the full traceback instead.
    """
    argv = sys.argv[1:]
    try:
        if any(a in ("-h", "--help") for a in argv):
            print(usage)
            sys.stdout.flush()
            raise SystemExit(0)
        main(argv)
    except BrokenPipeError:  # the reader left (``--help | head``): stop quietly, as SIGPIPE would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush has nowhere to fail
        raise SystemExit(SIGPIPE_STATUS) from None
    except (ValueError, OSError, RuntimeError) as error:
        if debug_requested() or not (isinstance(error, UsageError) or is_user_error(error)):
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        raise SystemExit(2) from None
