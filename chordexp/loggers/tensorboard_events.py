"""``logger=tensorboard``: the TensorBoardCallback of ``chordexp.tracking`` under the run folder."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from chordexp.loggers.base import inside
from chordexp.tracking import TensorBoardCallback


class TensorBoardLogger(TensorBoardCallback):
    """Event files in ``<run_folder>/<log_dir>`` (layout and resume: ``chordexp.tracking``)."""

    def __init__(self, run_folder: Path, run_config: Mapping[str, Any], log_dir: str = "tensorboard") -> None:
        super().__init__(inside(run_folder, log_dir, "logger.tensorboard.log_dir"), run_config)
