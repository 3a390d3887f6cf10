"""The report over cross-validation folds: mean ± std of each metric per group of fold runs."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from chordexp.experiment.fold_summary import fold_report, summarise_folds
from chordexp.report import collect_runs, main

LOSSES = {"adamw": [1.0, 1.2, 0.8], "sgd": [2.0, 2.5, 3.0]}
ACCS = {"adamw": [0.5, 0.6, 0.7], "sgd": [0.3, 0.3, 0.3]}


def make_run(folder: Path, overrides: list, metrics: dict = None) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "run.log").write_text("")
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


@pytest.fixture()
def folds(tmp_path) -> Path:
    """A multirun ``optimizer=adamw,sgd data.fold=0,1,2`` (six runs) as hand-made folders."""
    job = 0
    for optimizer in LOSSES:
        for fold in range(3):
            make_run(
                tmp_path / str(job),
                [f"optimizer={optimizer}", "data.num_folds=3", f"data.fold={fold}"],
                {
                    "best_val_loss": LOSSES[optimizer][fold],
                    "best_val_chord_type_acc": ACCS[optimizer][fold],
                    "epochs_run": 3,
                },
            )
            job += 1
    return tmp_path


def test_runs_differing_only_in_the_fold_are_one_group_with_mean_and_std(folds):
    metrics = ["best_val_loss", "best_val_chord_type_acc"]
    summaries = {s["group"]: s for s in summarise_folds(collect_runs(folds), metrics)}
    assert set(summaries) == {"optimizer=adamw", "optimizer=sgd"}
    for optimizer in LOSSES:
        summary = summaries[f"optimizer={optimizer}"]
        assert summary["folds"] == ["0", "1", "2"] and summary["n"] == 3
        mean, std, count = summary["best_val_loss"]
        assert count == 3 and mean == pytest.approx(statistics.mean(LOSSES[optimizer]))
        assert std == pytest.approx(statistics.stdev(LOSSES[optimizer]))
        assert summary["best_val_chord_type_acc"][:2] == pytest.approx(
            (statistics.mean(ACCS[optimizer]), statistics.stdev(ACCS[optimizer]))
        )


def test_a_failed_fold_is_left_out_of_the_figures(tmp_path):
    make_run(tmp_path / "0", ["data.fold=0"], {"best_val_loss": 1.0})
    make_run(tmp_path / "1", ["data.fold=1"], {"best_val_loss": 3.0})
    make_run(tmp_path / "2", ["data.fold=2"])  # no metrics.json: failed or still running
    (summary,) = summarise_folds(collect_runs(tmp_path), ["best_val_loss"])
    assert summary["group"] == "all" and summary["folds"] == ["0", "1", "2"] and summary["n"] == 2
    assert summary["best_val_loss"] == pytest.approx((2.0, 2**0.5, 2))


def test_runs_without_folds_get_no_fold_table(tmp_path):
    make_run(tmp_path / "0", ["optimizer=adamw"], {"best_val_loss": 1.0})
    make_run(tmp_path / "1", ["optimizer=sgd"], {"best_val_loss": 2.0})
    assert fold_report(collect_runs(tmp_path)) is None


def test_the_report_command_prints_the_fold_table(folds, capsys):
    main([f"runs={folds}"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    start = lines.index("over folds (data.fold; mean ± sample std over the runs of each group):")
    head, _, adamw, sgd = lines[start + 1 : start + 5]
    assert head.split()[:4] == ["group", "folds", "best_val_loss", "best_val_chord_type_acc"]
    assert adamw.split()[:5] == ["optimizer=adamw", "3", "1.0000", "±", "0.2000"]
    assert sgd.split()[:5] == ["optimizer=sgd", "3", "2.5000", "±", "0.5000"]
