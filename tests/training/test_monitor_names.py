"""The monitorable names and the "loss is minimised" rule have one home
(``chordexp.config_checks``); the trainer, the run-config check and Optuna read it."""

from __future__ import annotations

import pytest

from chordexp.config import MONITORS, minimised, monitor_direction
from chordexp.experiment.optuna_trial import direction_for
from chordexp.training.metrics import TASKS
from chordexp.training.monitor import HISTORY_KEYS
from chordexp.training.trainer import MONITORS as TRAINER_MONITORS


def test_the_monitors_are_the_validation_keys_of_the_history():
    assert MONITORS == ("val_loss", *(f"val_{task}_acc" for task in TASKS)) == TRAINER_MONITORS
    assert HISTORY_KEYS == ("train_loss", *MONITORS, "learning_rate")


@pytest.mark.parametrize("name", [*MONITORS, "val_majmin", "val_song_loss", "train_loss", "epochs_run"])
def test_auto_mode_optuna_and_the_rule_agree(name):
    assert monitor_direction(name, "auto") == ("min" if minimised(name) else "max")
    if name != "epochs_run":  # a cost Optuna minimises besides the losses
        assert direction_for(name) == {"min": "minimize", "max": "maximize"}[monitor_direction(name, "auto")]
    assert monitor_direction(name, "max") == "max" and monitor_direction(name, "min") == "min"
