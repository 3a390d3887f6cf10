"""Training: the Trainer engine, LR schedulers, metrics and checkpoint files."""

from chordexp.config import TrainingConfig
from chordexp.training.callbacks import Callback
from chordexp.training.checkpoint import CheckpointError
from chordexp.training.metrics import (
    MetricsTracker,
    compute_confusion_matrix,
    compute_per_class_metrics,
    compute_topk_accuracy,
)
from chordexp.training.trainer import NonFiniteLossError, Trainer, TrainingInterrupted

__all__ = [
    "Trainer",
    "TrainingConfig",
    "Callback",
    "MetricsTracker",
    "CheckpointError",
    "NonFiniteLossError",
    "TrainingInterrupted",
    "compute_topk_accuracy",
    "compute_confusion_matrix",
    "compute_per_class_metrics",
]
