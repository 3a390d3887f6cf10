"""metrics.json with a monitor and song metrics: best_/final_ keys, optimized_metric checks."""

from __future__ import annotations

import math

import pytest

from chordexp.errors import ConfigValueError
from chordexp.experiment import run_folder
from chordexp.experiment.sweep_objective import check_optimized_metric, objective

HISTORY = {
    "train_loss": [3.0, 2.0, 1.5],
    "val_loss": [2.5, 2.0, 2.2],
    "val_chord_type_acc": [10.0, 20.0, 30.0],
    "val_root_acc": [1.0, 2.0, 3.0],
    "val_bass_note_acc": [4.0, 5.0, 6.0],
    "learning_rate": [1e-3, 1e-3, 1e-4],
}


def test_default_monitor_adds_only_monitor_and_its_best_value():
    metrics = run_folder.run_metrics(
        HISTORY, best_epoch=2, best_val_loss=2.0, stopped_early=False, wall_time_s=1.0, num_parameters=10
    )
    assert tuple(metrics) == run_folder.METRIC_KEYS
    assert (metrics["monitor"], metrics["best_monitor_value"], metrics["best_val_loss"]) == ("val_loss", 2.0, 2.0)


def test_song_metrics_get_best_and_final_keys_and_the_monitor_its_value():
    history = {**HISTORY, "val_majmin": [0.5, 0.6, 0.8], "val_root": [0.7, math.nan, 0.9]}
    metrics = run_folder.run_metrics(
        history,
        best_epoch=3,
        best_val_loss=2.0,
        stopped_early=False,
        wall_time_s=1.0,
        num_parameters=10,
        monitor="val_majmin",
    )
    keys = list(metrics)
    assert keys[:7] == [
        "final_train_loss",
        "final_val_loss",
        "final_val_chord_type_acc",
        "final_val_root_acc",
        "final_val_bass_note_acc",
        "final_val_majmin",
        "final_val_root",
    ]
    assert keys[7:13] == [
        "best_val_loss",
        "best_val_chord_type_acc",
        "best_val_root_acc",
        "best_val_bass_note_acc",
        "best_val_majmin",
        "best_val_root",
    ]
    assert (metrics["best_val_majmin"], metrics["final_val_majmin"], metrics["best_val_root"]) == (0.8, 0.8, 0.9)
    assert (metrics["monitor"], metrics["best_monitor_value"]) == ("val_majmin", 0.8)
    assert metrics["best_val_chord_type_acc"] == 30.0  # at best_epoch, the monitor's choice
    assert metrics["best_val_loss"] == 2.0  # the best validation loss, not epoch 3's 2.2
    assert objective(metrics, "best_val_majmin") == 0.8
    no_epoch = run_folder.run_metrics(
        {k: [] for k in history},
        best_epoch=0,
        best_val_loss=math.inf,
        stopped_early=False,
        wall_time_s=0.0,
        num_parameters=1,
        monitor="val_majmin",
    )
    assert math.isnan(no_epoch["best_val_majmin"]) and math.isnan(no_epoch["best_monitor_value"])


def test_optimized_metric_accepts_numeric_and_song_metric_keys_only():
    for key in ("best_val_loss", "best_monitor_value", "final_val_root_acc", "best_val_majmin", "final_val_seg"):
        check_optimized_metric(key)
    for key in ("monitor", "val_los", "val_majmin", "best_majmin"):
        with pytest.raises(ConfigValueError, match=f"optimized_metric='{key}' is not a numeric metrics.json key"):
            check_optimized_metric(key)
    with pytest.raises(ValueError, match="optimized_metric best_val_majmn is not in this run's metrics.json"):
        objective({"best_val_loss": 1.0}, "best_val_majmn")  # a typo of a song metric: caught at the end
