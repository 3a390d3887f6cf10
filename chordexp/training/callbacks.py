"""Hooks through which run-level tools (TensorBoard, plots, signal handling) follow a
``Trainer`` without the training loop knowing about them.

The trainer calls ``on_step`` only at its ``log_every`` points, where it already syncs
with the device, so a callback adds no synchronisation to the steps in between.

Each hook gets the calling ``chordexp.training.trainer.Trainer`` as ``trainer``; it is
typed ``Any`` because the trainer module imports this one (a callback that reads the
trainer's state may annotate its own hooks with ``Trainer``).
"""

from __future__ import annotations

from typing import Any, Mapping


class Callback:
    """Base class: override the hooks you need; the defaults do nothing on purpose."""

    def on_train_start(self, trainer: Any) -> None:
        """Before the first epoch of ``train()`` (also after a resume)."""

    def on_step(self, trainer: Any, step: int, metrics: Mapping[str, float]) -> None:
        """At a log point: ``step`` is the global batch count (1-based, over all epochs);
        ``metrics`` holds the batch's four losses and ``learning_rate``."""

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: Mapping[str, float]) -> None:
        """After an epoch's validation and checkpoints: ``train_<loss>``, ``val_<loss>``,
        ``val_<task>_acc``, ``learning_rate`` and ``epoch_seconds``; with a song validator
        also its metrics as ``val_<name>``."""

    def on_train_end(self, trainer: Any) -> None:
        """When ``train()`` returns or raises (then the history is as far as it got)."""
