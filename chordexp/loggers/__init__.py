"""Experiment trackers: Trainer callbacks that the ``logger`` config group builds.

Each takes ``run_folder`` (where the run writes) and ``run_config`` (the resolved config,
logged as params), plus its own options from ``conf/logger/<name>.yaml``. Resuming a run
continues the same tracker run without repeating points. The heavy libraries (mlflow,
wandb) are imported when training starts; a missing one fails at construction, before
anything is written, with the ``pip install`` to run. See docs/tracking.md.
"""

from chordexp.loggers.base import RunLogger, finish_loggers
from chordexp.loggers.csv_file import CSVLogger
from chordexp.loggers.mlflow_run import MLflowLogger
from chordexp.loggers.tensorboard_events import TensorBoardLogger
from chordexp.loggers.wandb_run import WandbLogger

__all__ = ["RunLogger", "finish_loggers", "TensorBoardLogger", "CSVLogger", "MLflowLogger", "WandbLogger"]
