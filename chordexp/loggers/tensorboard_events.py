"""``logger=tensorboard``: the TensorBoardCallback of ``chordexp.experiment.tracking`` under the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from chordexp.experiment.tracking import TensorBoardCallback
from chordexp.loggers.base import inside


class TensorBoardLogger(TensorBoardCallback):
    """Event files in ``<run_folder>/<log_dir>`` (layout and resume: ``chordexp.experiment.tracking``)."""

    def __init__(self, run_folder: Path, run_config: Mapping[str, Any], log_dir: str = "tensorboard") -> None:
        super().__init__(inside(run_folder, log_dir, "logger.tensorboard.log_dir", folder="tensorboard"), run_config)
