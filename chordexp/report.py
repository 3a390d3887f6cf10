"""Compare the runs under a folder: one table row per run, a CSV and the validation curves.

    python -m chordexp.report [runs=]FOLDER [sort=best_val_loss] [descending=false] [csv=PATH] [plot=PATH]

Every folder under FOLDER holding ``.hydra/config.yaml`` is a run (FOLDER itself may be
one; a run's own subfolders are not searched). A row holds the run's path relative to
FOLDER, the overrides (``.hydra/overrides.yaml``) whose values differ between the runs
found, its status and its validation metrics from ``metrics.json``. Status:
``pruned`` (an Optuna search's pruner stopped it: pruned.json), ``finished``
(metrics.json present), ``failed`` (no metrics.json and run.log says
"run failed" or "invalid config"), ``incomplete`` otherwise; for runs without
metrics.json, epochs_run and final_val_loss come from history.json when there is one.
Rows are sorted by ``sort`` (a numeric column; runs lacking a value come last), printed
as an aligned table and written as CSV (default FOLDER/report.csv); the val_loss and
val_chord_type_acc curves of every run with a history.json are drawn into one PNG
(default FOLDER/report.png). Neither replaces a file the report reads, any other run
record, ``.lab`` or audio file (refused before anything is written), nor each other.
When the runs differ in ``data.fold`` (cross-validation), a second table gives each
validation metric's mean ± std over the folds (``chordexp.experiment.fold_summary``).
"""

from __future__ import annotations

import csv as csv_module
import io
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, cast

import yaml

from chordexp.atomic import atomic_write_bytes, atomic_write_text
from chordexp.cli import main_guard, parse_args
from chordexp.errors import UsageError
from chordexp.experiment.fold_summary import finite_number, fold_report
from chordexp.experiment.run_folder import read_json
from chordexp.output_dirs import check_not_an_input
from chordexp.scoring import SONG_METRICS

USAGE = __doc__.strip()

#: Metric columns of a row, in table order; all come from metrics.json.
METRIC_COLUMNS = (
    "best_val_loss",
    "best_val_chord_type_acc",
    "best_val_root_acc",
    "best_val_bass_note_acc",
    "final_val_loss",
    "best_epoch",
    "epochs_run",
    "wall_time_s",
)
#: Song-mode columns (mir_eval scores of the validation songs at the best epoch), shown
#: when any run has them.
SONG_COLUMNS = tuple(f"best_val_{name}" for name in SONG_METRICS)
#: Keys every row carries that are not table columns: the run's absolute folder and
#: its differing overrides as a dict (for labels).
EXTRA_KEYS = ("folder", "overrides")
#: Curves drawn by :func:`plot_curves`, one panel each.
PLOTTED = ("val_loss", "val_chord_type_acc")
FAILURE_MARKS = ("run failed", "invalid config")


# --------------------------------------------------------------------------- collecting


def find_run_folders(folder: Path) -> List[Path]:
    """Run folders (holding ``.hydra/config.yaml``) at or under ``folder``, in natural order."""
    found = []
    for root, dirs, _ in os.walk(folder):
        if (Path(root) / ".hydra" / "config.yaml").is_file():
            found.append(Path(root))
            dirs[:] = []  # checkpoints/, songs/: no runs inside a run
        else:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(found, key=lambda p: _natural_key(p.relative_to(folder).as_posix()))


def _natural_key(text: str) -> List[Any]:
    """``"10"`` after ``"2"``: digit runs compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)]


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    """The JSON object in ``path``; None when it is missing or unreadable (with a warning)."""
    data = read_json(path)
    if data is None and path.is_file():
        print(f"warning: ignoring unreadable {path}: not a readable JSON object", file=sys.stderr)
    return data


def read_overrides(run: Path) -> Dict[str, str]:
    """``.hydra/overrides.yaml`` as ``{key: value}`` (``+``/``++``/``~`` prefixes dropped)."""
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    overrides: Dict[str, str] = {}
    try:
        items = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        items = None
        print(f"warning: ignoring unreadable {path}: not a YAML list of overrides", file=sys.stderr)
    if items is not None and not isinstance(items, list):
        print(f"warning: ignoring {path}: a {type(items).__name__}, not a list of overrides", file=sys.stderr)
        items = None
    for item in items or []:
        key, _, value = str(item).partition("=")
        overrides[key.lstrip("+~")] = value if "=" in str(item) else "<deleted>"
    return overrides


def run_status(run: Path) -> str:
    if (run / "pruned.json").is_file():  # chordexp.experiment.optuna_trial.PRUNED_FILE: the search's pruner stopped it
        return "pruned"
    if (run / "metrics.json").is_file():
        return "finished"
    log = run / "run.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    return "failed" if any(mark in text for mark in FAILURE_MARKS) else "incomplete"


def collect_runs(folder: Path) -> List[Dict[str, Any]]:
    """One dict per run under ``folder``, in natural path order.

    Keys: ``path`` (relative to ``folder``), one per differing override key (string
    value, None where a run lacks it), ``status``, :data:`METRIC_COLUMNS` (None where
    unknown) and :data:`EXTRA_KEYS`. Raises UsageError for a missing folder or one
    without runs.
    """
    folder = Path(folder)
    if not folder.exists():
        raise UsageError(f"runs={folder}: no such folder")
    if not folder.is_dir():
        raise UsageError(f"runs={folder} is a file, not a folder of runs")
    runs = find_run_folders(folder)
    if not runs:
        raise UsageError(f"runs={folder} holds no run folder (a folder with .hydra/config.yaml)")

    overrides = [read_overrides(run) for run in runs]
    keys = list(dict.fromkeys(key for run in overrides for key in run))
    differing = [key for key in keys if len({run.get(key) for run in overrides}) > 1]

    all_metrics = [_read_json(run / "metrics.json") or {} for run in runs]
    song_columns = [name for name in SONG_COLUMNS if any(name in metrics for metrics in all_metrics)]
    rows = []
    for run, run_overrides, metrics in zip(runs, overrides, all_metrics):
        row: Dict[str, Any] = {"path": run.relative_to(folder).as_posix()}
        row.update({key: run_overrides.get(key) for key in differing})
        row["status"] = run_status(run)
        row.update({name: metrics.get(name) for name in (*METRIC_COLUMNS, *song_columns)})
        if not metrics:
            history = _read_json(run / "history.json") or {}
            val_loss = history.get("val_loss") or []
            row["epochs_run"] = len(val_loss) if "val_loss" in history else None
            row["final_val_loss"] = val_loss[-1] if val_loss else None
        row["folder"] = str(run.resolve())
        row["overrides"] = {key: run_overrides.get(key) for key in differing if key in run_overrides}
        rows.append(row)
    return rows


def columns(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """The table and CSV columns of ``rows`` (their keys minus :data:`EXTRA_KEYS`)."""
    return [key for key in rows[0] if key not in EXTRA_KEYS] if rows else []


# --------------------------------------------------------------------------- sorting


def sortable_columns(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """The metric columns and the override columns whose given values are all numbers."""
    song = [key for key in columns(rows) if key in SONG_COLUMNS]
    overrides = [key for key in columns(rows) if key not in ("path", "status", *METRIC_COLUMNS, *SONG_COLUMNS)]
    numeric = [
        key
        for key in overrides
        if all(finite_number(row[key]) is not None for row in rows if row[key] is not None)
        and any(row[key] is not None for row in rows)
    ]
    return [*METRIC_COLUMNS, *song, *numeric]


def sort_rows(rows: Sequence[Dict[str, Any]], column: str, descending: bool = False) -> List[Dict[str, Any]]:
    """``rows`` ordered by ``column``; rows without a finite value keep their order, last."""
    valid = sortable_columns(rows)
    if column not in valid:
        raise UsageError(f"sort={column} is not a numeric column; valid: {', '.join(valid)}")
    known = [row for row in rows if finite_number(row[column]) is not None]
    unknown = [row for row in rows if finite_number(row[column]) is None]
    # every known row has a finite number there
    return sorted(known, key=lambda row: cast(float, finite_number(row[column])), reverse=descending) + unknown


# --------------------------------------------------------------------------- output


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def format_table(rows: Sequence[Dict[str, Any]]) -> str:
    """Aligned text table: text columns left-aligned, numbers right-aligned."""
    names = columns(rows)
    cells = [[_cell(row[name]) for name in names] for row in rows]
    widths = [max(len(name), *(len(line[i]) for line in cells)) for i, name in enumerate(names)]
    numeric = [name in METRIC_COLUMNS or name in SONG_COLUMNS for name in names]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(names), line(["-" * w for w in widths]), *(line(c) for c in cells)])


def write_csv(rows: Sequence[Dict[str, Any]], path: Path) -> Path:
    """``rows`` as CSV (columns of :func:`columns`; missing values empty, floats in full)."""
    path = Path(path)
    names = columns(rows)
    handle = io.StringIO(newline="")
    writer = csv_module.DictWriter(handle, fieldnames=names)
    writer.writeheader()
    for row in rows:
        writer.writerow({name: "" if row[name] is None else row[name] for name in names})
    atomic_write_text(path, handle.getvalue())  # a new file: a hard link to anything else stays as it was
    return path


def run_label(row: Dict[str, Any]) -> str:
    """``"0 optimizer=adamw"``: the run's path and its differing overrides."""
    return " ".join([row["path"], *(f"{k}={v}" for k, v in row.get("overrides", {}).items())])


def plot_curves(runs: Sequence[Dict[str, Any]], path: Path) -> Optional[Path]:
    """One PNG, a panel per :data:`PLOTTED` curve, a line per run with a history.json.

    ``runs`` are rows of :func:`collect_runs`. Returns ``path``, or None (nothing
    written) when no run has a history. Uses matplotlib's Agg canvas, no pyplot state.
    """
    read = [(row, _read_json(Path(row["folder"]) / "history.json")) for row in runs]
    histories = [(row, history) for row, history in read if history]
    if not histories:
        return None
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(11, 4.5), layout="constrained")
    axes = figure.subplots(1, len(PLOTTED))
    for ax, name in zip(axes, PLOTTED):
        for row, history in histories:
            values = history.get(name) or []
            ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=run_label(row))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize="small", loc="best")
    path = Path(path)
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=100)
    atomic_write_bytes(path, image.getvalue())
    return path


# --------------------------------------------------------------------------- command line


def check_outputs(rows: Sequence[Dict[str, Any]], csv_path: Path, plot_path: Path) -> None:
    """UsageError (one line) when ``csv=`` or ``plot=`` would replace a file the report
    reads (a run's ``metrics.json``, ``history.json``, ``run.log``, ``.hydra/``...), any
    other run record, ``.lab`` or audio file, or when both name the same file."""
    inputs = [path for row in rows for path in _run_inputs(Path(row["folder"]))]
    for key, path in (("csv", csv_path), ("plot", plot_path)):
        check_not_an_input(key, path, inputs, "an input of this report")
    if csv_path.resolve() == plot_path.resolve():
        raise UsageError(f"csv={csv_path} and plot={plot_path} name the same file; give them different names")


def _run_inputs(run: Path) -> List[Path]:
    """The files of ``run`` the report reads."""
    names = (".hydra/config.yaml", ".hydra/overrides.yaml", "metrics.json", "history.json", "run.log")
    return [run / name for name in names if (run / name).exists()]


@dataclass
class ReportArgs:
    runs: str = "???"
    sort: str = "best_val_loss"
    descending: bool = False
    csv: Optional[str] = None
    plot: Optional[str] = None


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(ReportArgs, sys.argv[1:] if argv is None else argv, positional=("runs",))
    folder = Path(args.runs)
    rows = sort_rows(collect_runs(folder), args.sort, args.descending)
    csv_path = Path(args.csv) if args.csv else folder / "report.csv"
    plot_path = Path(args.plot) if args.plot else folder / "report.png"
    check_outputs(rows, csv_path, plot_path)
    print(format_table(rows))
    folds = fold_report(rows)  # runs differing in data.fold: mean ± std of each metric over the folds
    if folds:
        print(folds)
    print(f"wrote {write_csv(rows, csv_path)}")
    plot = plot_curves(rows, plot_path)
    print(f"wrote {plot}" if plot else "no run has a history.json: no plot")


def cli() -> None:
    """``chordexp-report`` and ``python -m chordexp.report``: :func:`main` under ``main_guard``
    (``--help``, one-line errors)."""
    main_guard(main, USAGE)


if __name__ == "__main__":
    cli()
