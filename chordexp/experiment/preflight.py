"""The composed config's values checked before anything is built: light, so that
``python -m chordexp.run`` refuses a bad value before torch and the experiment layer
load (``chordexp.run.main``), and ``chordexp.experiment.task.train`` checks the same way."""

from __future__ import annotations

from omegaconf import DictConfig

from chordexp.config import TrainingConfig
from chordexp.experiment.schemas import to_training_config
from chordexp.experiment.sweep_objective import check_optimized_metric


def checked_training_config(cfg: DictConfig) -> TrainingConfig:
    """``cfg``'s TrainingConfig, every value checked (ConfigValueError names the key), and
    its ``optimized_metric`` one a sweeper can read from metrics.json."""
    config = to_training_config(cfg)
    check_optimized_metric(cfg.optimized_metric)
    return config
