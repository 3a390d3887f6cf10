"""The console commands of ``[project.scripts]`` (``chordexp-train``, ``chordexp-report``, ...).

Each is ``python -m chordexp.<module>`` as a zero-argument callable: the same argv, the
same ``--help`` and the same one-line errors (``chordexp.cli.main_guard``). The module is
imported inside the call, so one command does not load the others.
"""

from __future__ import annotations

from importlib import import_module

from chordexp.cli import main_guard


def _guarded(module_name: str, entry: str = "main") -> None:
    module = import_module(module_name)
    main_guard(getattr(module, entry), module.USAGE)


def train() -> None:
    """``chordexp-train`` = ``python -m chordexp.run`` (Hydra: overrides, -m, --help)."""
    import_module("chordexp.run").cli()


def predict() -> None:
    _guarded("chordexp.predict")


def evaluate() -> None:
    _guarded("chordexp.evaluate", "_entry")  # _entry: main's exit status (missing predictions: 1)


def report() -> None:
    _guarded("chordexp.report")


def bench() -> None:
    _guarded("chordexp.bench.__main__")


def evalset() -> None:
    _guarded("chordexp.evalset")


def baseline() -> None:
    _guarded("chordexp.baseline")


def tune_decoder() -> None:
    _guarded("chordexp.tune_decoder")


def export() -> None:
    _guarded("chordexp.export")


def check_data() -> None:
    _guarded("chordexp.check_data", "_entry")  # _entry: exit 1 when the collection has errors
