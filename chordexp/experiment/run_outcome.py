"""How a run ends: the training task's result for a sweeper, or its failure reported in
the words and with the exit status every entry point uses.

A bad config value, and every other error of the input or the environment (a missing
or corrupt file, an unknown or absent device, a checkpoint that does not fit, a full
disk: ``chordexp.errors.is_user_error``), is one line: in a single run it exits with
status 2 (bad input, as every entry point) without a traceback; in a sweep it fails
that job (Hydra reports it after the other jobs). So is a non-finite loss
(``NonFiniteLossError: ... at epoch E, batch B``). A stopped run (a signal) says how to
continue it and exits with the signal's status. Other errors are bugs and log their
traceback; so does every error with ``CHORDEXP_DEBUG=1``.

Light on purpose (no torch): ``chordexp.run.main`` enters :class:`RunEnding` before the
experiment layer loads, so a bad value is refused at once, under the same policy.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import TracebackType
from typing import Any, Dict, Literal, Optional, Type

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from chordexp.config import TrainingConfig
from chordexp.errors import (
    ConfigValueError,
    TrainingInterrupted,
    debug_requested,
    is_user_error,
    one_line,
    signal_exit_status,
)
from chordexp.experiment.sweep_objective import objective

log = logging.getLogger(__name__)


def run_dir() -> Path:
    """The run folder Hydra chose (``hydra.run.dir``, or a sweep's job folder)."""
    return Path(HydraConfig.get().runtime.output_dir)


class RunEnding:
    """``with RunEnding(cfg) as ending: ... ending.finish(metrics)``: whatever happens in the
    block, log the failure as the policy above says, say where the run folder is and
    close the log files. ``ending.value`` is the ``optimized_metric`` for a sweeper."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.folder = run_dir()
        self.value: Optional[float] = None

    def __enter__(self) -> "RunEnding":
        return self

    def finish(self, metrics: Dict[str, Any]) -> None:
        """The run's metrics.json content -> ``value`` (``{}``: a DDP rank other than 0)."""
        self.value = objective(metrics, self.cfg.optimized_metric) if metrics else None

    def __exit__(
        self, kind: Optional[Type[BaseException]], err: Optional[BaseException], tb: Optional[TracebackType]
    ) -> Literal[False]:
        try:
            if err is not None:
                self._report(err)
            return False  # the error goes on (a sweep's job fails), unless _report exited
        finally:
            log.info("run folder: %s", self.folder)
            close_log_files()

    def _report(self, err: BaseException) -> None:
        single_run = HydraConfig.get().mode == RunMode.RUN
        if isinstance(err, ConfigValueError):
            log.error("invalid config: %s", err)
            if single_run:
                raise SystemExit(2) from None
        elif isinstance(err, TrainingInterrupted):
            if self._resumable():
                log.error("stopped: %s; continue with: python -m chordexp.run resume=%s", err, self.folder)
            else:
                self._nothing_to_resume(str(err.reason or "a stop request"))
            if single_run:
                raise SystemExit(signal_exit_status(err.reason)) from None
        elif isinstance(err, SystemExit) and isinstance(err.code, int) and err.code > 128:
            try:
                name = signal.Signals(err.code - 128).name
            except ValueError:
                name = f"signal {err.code - 128}"
            if self._resumable():
                log.error("stopped by %s; continue with: python -m chordexp.run resume=%s", name, self.folder)
            else:
                self._nothing_to_resume(name)
        elif isinstance(err, KeyboardInterrupt):
            log.error("interrupted; continue with: python -m chordexp.run resume=%s", self.folder)
        elif isinstance(err, Exception):
            report_failure(err)
            if single_run and is_user_error(err) and not debug_requested():
                raise SystemExit(2) from None  # bad input or environment: 2, as every entry point

    def _resumable(self) -> bool:
        return (
            Path(self.folder) / str(self.cfg.trainer.get("checkpoint_dir", TrainingConfig.checkpoint_dir)) / "last.pt"
        ).is_file()

    def _nothing_to_resume(self, reason: str) -> None:
        kept = (
            sorted(p.name + ("/" if p.is_dir() else "") for p in Path(self.folder).iterdir())
            if Path(self.folder).is_dir()
            else []
        )
        log.error(
            "stopped by %s before the first epoch ended: there is no checkpoint, so nothing can be resumed; "
            "the folder keeps %s; start again with: python -m chordexp.run rerun=%s",
            reason,
            ", ".join(kept) or "nothing",
            self.folder,
        )


def report_failure(err: BaseException) -> None:
    """Log a failed run: one line (``run failed: <what>``) for an error of the input or the
    environment, the traceback for anything else or when ``CHORDEXP_DEBUG`` asks for it."""
    if is_user_error(err) and not debug_requested():
        log.error("run failed: %s", one_line(err))
    else:
        log.error("run failed: %s", one_line(err), exc_info=err)


def close_log_files() -> None:
    """Flush every log handler and close the log files (``run.log``): a sweep's next job
    opens its own."""
    for handler in logging.getLogger().handlers:
        handler.flush()
        if isinstance(handler, logging.FileHandler):
            handler.close()
