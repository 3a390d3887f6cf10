"""The run report: rows, CSV and curves from a real two-job sweep and hand-made run folders."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chordexp.errors import UsageError
from chordexp.report import collect_runs, columns, format_table, plot_curves, sort_rows, write_csv

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweep(run_cli, tmp_path_factory) -> Path:
    """``experiment=smoke optimizer=adamw,sgd`` through the real CLI, run once for the module."""
    cwd = tmp_path_factory.mktemp("report")
    folder = cwd / "sweep"
    done = run_cli(["-m", "experiment=smoke", "optimizer=adamw,sgd", f"hydra.sweep.dir={folder}"], cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def report_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "chordexp.report", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def make_run(folder: Path, overrides: list, log: str = "", history: dict = None) -> Path:
    """A run folder by hand: ``.hydra/`` with config and overrides, a run.log, maybe a history."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "run.log").write_text(log)
    if history is not None:
        (folder / "history.json").write_text(json.dumps(history))
    return folder


def test_each_sweep_job_is_a_row_with_its_override_and_metrics(sweep):
    rows = collect_runs(sweep)
    assert [row["path"] for row in rows] == ["0", "1"]
    assert [row["optimizer"] for row in rows] == ["adamw", "sgd"]
    assert "experiment" not in columns(rows)  # equal in every run: no column
    for row in rows:
        metrics = json.loads((sweep / row["path"] / "metrics.json").read_text())
        assert row["status"] == "finished"
        for name in (
            "best_val_loss",
            "best_val_chord_type_acc",
            "best_val_root_acc",
            "best_val_bass_note_acc",
            "final_val_loss",
            "best_epoch",
            "epochs_run",
            "wall_time_s",
        ):
            assert row[name] == metrics[name], name
        assert row["epochs_run"] == 3


def test_csv_holds_the_same_rows_as_the_report(sweep, tmp_path):
    rows = collect_runs(sweep)
    path = write_csv(rows, tmp_path / "out" / "report.csv")
    with path.open(newline="") as handle:
        read = list(csv.DictReader(handle))
    assert len(read) == len(rows)
    for row, line in zip(rows, read):
        assert list(line) == columns(rows)
        assert line["path"] == row["path"] and line["optimizer"] == row["optimizer"]
        assert line["status"] == "finished"
        assert float(line["best_val_loss"]) == row["best_val_loss"]  # full precision
        assert int(line["best_epoch"]) == row["best_epoch"]


def test_plot_is_a_png_with_a_curve_per_run(sweep, tmp_path):
    path = plot_curves(collect_runs(sweep), tmp_path / "curves.png")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_sorting_orders_rows_by_a_metric_either_way(sweep):
    rows = collect_runs(sweep)
    up = sort_rows(rows, "best_val_loss")
    down = sort_rows(rows, "best_val_loss", descending=True)
    assert [r["best_val_loss"] for r in up] == sorted(r["best_val_loss"] for r in rows)
    assert [r["path"] for r in down] == [r["path"] for r in reversed(up)]
    with pytest.raises(UsageError, match="valid: best_val_loss"):
        sort_rows(rows, "optimizer")


def test_failed_and_incomplete_runs_are_told_apart_and_sorted_last(tmp_path):
    history = {"val_loss": [3.0, 2.5], "val_chord_type_acc": [10.0, 20.0]}
    make_run(tmp_path / "multirun" / "0", ["optimizer.lr=1e-3"], log="[ERROR] - run failed\nTraceback ...")
    make_run(tmp_path / "multirun" / "2", ["optimizer.lr=1e-4"], log="epoch 2/5 ...", history=history)
    make_run(tmp_path / "multirun" / "10", ["optimizer.lr=1e-2"], log="[ERROR] - invalid config: x")
    rows = collect_runs(tmp_path)
    assert [r["path"] for r in rows] == ["multirun/0", "multirun/2", "multirun/10"]  # natural order
    assert [r["status"] for r in rows] == ["failed", "incomplete", "failed"]
    assert rows[1]["epochs_run"] == 2 and rows[1]["final_val_loss"] == 2.5
    assert rows[0]["best_val_loss"] is None and rows[0]["epochs_run"] is None
    assert [r["path"] for r in sort_rows(rows, "final_val_loss")] == ["multirun/2", "multirun/0", "multirun/10"]
    assert [r["path"] for r in sort_rows(rows, "optimizer.lr")] == ["multirun/2", "multirun/0", "multirun/10"]
    assert "-" in format_table(rows)  # unknown values shown, not crashing
    png = plot_curves(rows, tmp_path / "curves.png")  # only the incomplete run has curves
    assert png.read_bytes().startswith(b"\x89PNG")
    assert plot_curves(rows[:1], tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def test_cli_prints_the_table_and_writes_csv_and_png_beside_the_runs(sweep, tmp_path):
    done = report_cli(f"runs={sweep}", "sort=best_val_loss", "descending=true", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["path", "optimizer", "status"]
    losses = [
        json.loads((sweep / line.split()[0] / "metrics.json").read_text())["best_val_loss"] for line in lines[2:4]
    ]
    assert losses == sorted(losses, reverse=True)
    assert (sweep / "report.csv").is_file() and (sweep / "report.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "args, message",
    [
        (["runs=missing"], "runs=missing: no such folder"),
        (["runs=empty"], "runs=empty holds no run folder"),
        (["runs=one", "sort=bogus"], "sort=bogus is not a numeric column; valid: best_val_loss"),
        (["sort=best_val_loss"], "missing required argument(s): runs=..."),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    make_run(tmp_path / "one", ["optimizer=sgd"], log="run failed")
    done = report_cli(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr
    assert not (tmp_path / "one" / "report.csv").exists()


def test_song_mode_runs_show_their_song_scores_and_sort_by_them(tmp_path):
    """Runs with mir_eval validation scores get best_val_<metric> columns; clip runs show '-'."""
    songs = {"best_val_majmin": 0.81, "best_val_sevenths": 0.7, "best_val_seg": 0.9}
    for name, scale, overrides in (("a", 1.0, ["data=songs", "seed=0"]), ("b", 1.1, ["data=songs", "seed=1"])):
        run = make_run(tmp_path / name, overrides)
        (run / "metrics.json").write_text(
            json.dumps({"best_val_loss": 1.0, **{k: v * scale for k, v in songs.items()}})
        )
    make_run(tmp_path / "c", ["data=synthetic", "seed=2"])
    rows = collect_runs(tmp_path)
    assert {"best_val_majmin", "best_val_sevenths", "best_val_seg"} <= set(columns(rows))
    assert "best_val_root" not in columns(rows)  # no run has it
    assert rows[0]["best_val_majmin"] == pytest.approx(0.81) and rows[2]["best_val_majmin"] is None
    ordered = sort_rows(rows, "best_val_majmin", descending=True)
    assert [row["path"] for row in ordered] == ["b", "a", "c"]
    assert "best_val_majmin" in format_table(rows).splitlines()[0]


@pytest.mark.parametrize("text", ["- a=1\n  - : [unclosed\n", "just a scalar\n", "{a: 1}\n"])
def test_a_broken_overrides_file_is_a_warning_not_a_traceback(tmp_path, capsys, text):
    from chordexp.report import read_overrides

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(text)
    assert read_overrides(run) == {}
    assert "warning: ignoring" in capsys.readouterr().err
