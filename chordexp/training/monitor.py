"""Monitoring and early stopping: which validation metric a run follows, its best epoch
(what ``best.pt`` holds) and when patience runs out.

The monitorable names and the "a name with loss in it is minimised" rule live in
``chordexp.config_checks`` (the run-config check reads them too); this module applies them.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping

from chordexp.config import MONITORS, TrainingConfig, monitor_direction
from chordexp.errors import ConfigValueError

#: The training history's keys, in order (a song validator adds ``val_<name>`` after them).
HISTORY_KEYS = ("train_loss", *MONITORS, "learning_rate")


class Monitor:
    """Follows ``config.monitor`` (a validation history key: ``name``), minimised or
    maximised per ``config.monitor_mode`` (``'auto'``: ``monitor_direction``; ``mode``):
    ``best_value`` and ``best_epoch`` (0 = none yet), and ``epochs_without_improvement``
    against ``config.patience`` (<= 0: never stops) with ``config.min_delta``.

    ``best_val_loss`` always means the best validation loss: with the default monitor the
    loss of ``best_epoch``; with another monitor the lowest val_loss of any epoch.

    With ``song_metrics`` (a song validator) ``val_<name>`` may be monitored too; whether
    the validator returns ``<name>`` is checked at the first ``update``.
    """

    def __init__(self, config: TrainingConfig, *, song_metrics: bool) -> None:
        name, self.config = config.monitor, config
        if name not in MONITORS and (not song_metrics or not str(name).startswith("val_")):
            raise ConfigValueError(
                f"monitor={name!r} is not a validation metric; valid: {', '.join(MONITORS)}"
                + ("" if song_metrics else " (val_<name> needs a song_validator that returns <name>)")
            )
        self.name, self.mode = name, monitor_direction(name, config.monitor_mode)
        self.checked = not song_metrics  # with song metrics, checked at the first validation
        self.best_value = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0
        self.epochs_without_improvement = 0
        self.best_val_loss = math.inf

    def update(self, epoch: int, values: Mapping[str, float]) -> bool:
        """Take an epoch's validation ``values`` (history keys -> value); whether the
        monitored one improved on the best so far by more than ``min_delta``."""
        if not self.checked:  # the first validation tells which names exist
            names = [key for key in values if key.startswith("val_")]
            if self.name not in names:
                raise ConfigValueError(f"monitor={self.name!r} is not a validation metric; valid: {', '.join(names)}")
            self.checked = True
        value = float(values.get(self.name, math.nan))  # NaN (a missing value) never improves
        if self.mode == "min":
            improved = value < self.best_value - self.config.min_delta
        else:
            improved = value > self.best_value + self.config.min_delta
        if improved:
            self.best_value, self.best_epoch, self.epochs_without_improvement = value, epoch, 0
        else:
            self.epochs_without_improvement += 1
        val_loss = values["val_loss"]
        if self.name == "val_loss" and self.mode == "min":  # the seed's meaning: the best epoch's loss
            if improved:
                self.best_val_loss = val_loss
        elif val_loss < self.best_val_loss:
            self.best_val_loss = val_loss
        return improved

    @property
    def patience_ran_out(self) -> bool:
        return 0 < self.config.patience <= self.epochs_without_improvement

    def stop_line(self, epoch: int) -> str:
        """Why a run stops after ``epoch``: patience ran out, or else a callback ended it
        (an Optuna pruner, which says why itself)."""
        best = f"best {self.best_value:.4f} at epoch {self.best_epoch}"
        if self.patience_ran_out:
            return (
                f"early stopping after epoch {epoch}: no {self.name} improvement for "
                f"{self.epochs_without_improvement} epochs ({best})"
            )
        return f"stopping after epoch {epoch}: a callback ended the run ({best})"

    def state_dict(self) -> Dict[str, Any]:
        """This monitor's entries of a checkpoint."""
        return {
            "best_val_loss": float(self.best_val_loss),
            "monitor": self.name,
            "monitor_mode": self.mode,
            "best_monitor_value": float(self.best_value),
            "best_epoch": self.best_epoch,
            "epochs_without_improvement": self.epochs_without_improvement,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best_val_loss = float(state["best_val_loss"])
        self.best_value = float(state["best_monitor_value"])
        self.best_epoch = int(state["best_epoch"])
        self.epochs_without_improvement = int(state["epochs_without_improvement"])
