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
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from chordexp.errors import ConfigValueError, debug_requested, is_user_error, one_line
from chordexp.experiment.objective import objective
from chordexp.experiment.task import run_dir, train
from chordexp.training.distributed import broadcast_object, current_context, launched_by_torchrun
from chordexp.training.stop_signals import exit_status
from chordexp.training.trainer import TrainingInterrupted

log = logging.getLogger(__name__)


def run_task(cfg: DictConfig) -> Optional[float]:
    """``train(cfg)``, then its ``optimized_metric``; whatever happens, log the failure,
    say where the run folder is and close the log files."""
    folder = run_dir()
    announce_run_folder(folder)
    try:
        metrics = train(cfg)
        return objective(metrics, cfg.optimized_metric) if metrics else None  # {}: a DDP rank other than 0
    except ConfigValueError as err:
        log.error("invalid config: %s", err)
        if HydraConfig.get().mode == RunMode.RUN:
            raise SystemExit(2) from None
        raise
    except TrainingInterrupted as err:
        log.error("stopped: %s; continue with: python -m chordexp.run resume=%s", err, folder)
        if HydraConfig.get().mode == RunMode.RUN:
            raise SystemExit(exit_status(err.reason)) from None
        raise
    except KeyboardInterrupt:
        log.error("interrupted; continue with: python -m chordexp.run resume=%s", folder)
        raise
    except Exception as err:
        report_failure(err)
        if HydraConfig.get().mode == RunMode.RUN and is_user_error(err) and not debug_requested():
            raise SystemExit(2) from None  # bad input or environment: 2, as every entry point
        raise
    finally:
        log.info("run folder: %s", folder)
        close_log_files()


def report_failure(err: BaseException) -> None:
    """Log a failed run: one line (``run failed: <what>``) for an error of the input or the
    environment, the traceback for anything else or when ``CHORDEXP_DEBUG`` asks for it."""
    if is_user_error(err) and not debug_requested():
        log.error("run failed: %s", one_line(err))
    else:
        log.exception("run failed: %s", one_line(err))


def announce_run_folder(folder: Path) -> None:
    """Under DDP rank 0 tells the other ranks (waiting in ``chordexp.run.cli``) its run folder."""
    if launched_by_torchrun():
        context = current_context()
        if context is not None and context.is_main:
            broadcast_object(str(folder))


def close_log_files() -> None:
    """Flush every log handler and close the log files (``run.log``): a sweep's next job
    opens its own."""
    for handler in logging.getLogger().handlers:
        handler.flush()
        if isinstance(handler, logging.FileHandler):
            handler.close()
