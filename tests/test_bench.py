"""``python -m chordexp.bench``: argument errors, the table and JSON writer (fast), and
a miniature end-to-end run (slow). Times are never asserted: only that every
benchmark reports finite figures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from chordexp.bench.__main__ import BENCHMARKS, BenchArgs, check_args, main, select
from chordexp.bench.common import Row, alternate, format_table, ratio, write_json
from chordexp.errors import UsageError


def _row(value: float = 2.0, baseline: float = 1.0, op: str | None = "<=", target: float | None = 3.0) -> Row:
    return Row(
        benchmark="demo",
        measure="a thing",
        value=value,
        unit="s",
        baseline_name="plain",
        baseline=baseline,
        baseline_unit="s",
        ratio=ratio(value, baseline),
        ratio_of="thing / plain",
        target_op=op,
        target=target,
        samples={"s": [value]},
    )


# ----------------------------------------------------------------- arguments
def test_select_keeps_running_order_and_accepts_all():
    assert select("all") == list(BENCHMARKS)
    assert select("memory, trainer") == ["trainer", "memory"]


@pytest.mark.parametrize("only", ["trainers", "trainer,gpus", ",", ""])
def test_unknown_benchmark_names_are_one_line_errors(only):
    with pytest.raises(UsageError, match="valid: all or a comma-separated list") as info:
        select(only)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "argv, match",
    [
        (["repeats=-1"], "repeats=-1 must be >= 1"),
        (["repeats=abc"], "could not be converted"),
        (["nonsense=1"], "nonsense"),
        (["quick"], "not of the form key=value"),
        (["only=cpu"], "unknown benchmark 'cpu'"),
        (["docs=true", "quick=true"], "quick figures mean nothing"),
    ],
)
def test_bad_arguments_raise_usage_errors_before_anything_runs(argv, match):
    with pytest.raises(UsageError, match=match):
        main(argv)


def test_output_must_not_be_a_folder(tmp_path):
    with pytest.raises(UsageError, match="is a folder"):
        check_args(BenchArgs(output=str(tmp_path)))


def test_command_line_error_is_one_line_and_exit_code_2():
    done = subprocess.run(
        [sys.executable, "-m", "chordexp.bench", "only=bogus"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error: only='bogus'")


# -------------------------------------------------------------- table, JSON
def test_rows_know_whether_their_target_is_met():
    assert _row(2.0, 1.0, "<=", 3.0).met is True
    assert _row(4.0, 1.0, "<=", 3.0).met is False
    assert _row(2.0, 1.0, ">=", 3.0).met is False
    assert _row(op=None, target=None).met is None
    assert _row(1.0, 0.0, "<=", 3.0).met is False  # an infinite ratio never meets a target


def test_table_has_one_line_per_row_with_figure_baseline_ratio_target_and_verdict():
    table = format_table([_row(2.0), _row(5.0), _row(op=None, target=None)])
    lines = table.splitlines()
    assert lines[0].startswith("| benchmark | measured | baseline (same run) | ratio | target | met |")
    assert len(lines) == 2 + 3
    assert "| demo: a thing | 2 s | plain: 1 s | 2 (thing / plain) | <= 3 | yes |" in lines[2]
    assert lines[3].endswith("| **no** |") and lines[4].endswith("| - | info |")


def test_json_holds_machine_settings_rows_and_no_non_finite_numbers(tmp_path):
    path = tmp_path / "sub" / "bench.json"
    write_json(path, [_row(2.0), _row(1.0, 0.0)], {"cpu": "x"}, {"quick": True})
    data = json.loads(path.read_text())
    assert data["machine"] == {"cpu": "x"} and data["settings"] == {"quick": True}
    assert data["all_targets_met"] is False
    first, second = data["results"]
    assert first["met"] is True and first["ratio"] == 2.0 and first["samples"] == {"s": [2.0]}
    assert second["ratio"] is None and second["met"] is False


def test_alternate_swaps_the_order_every_repeat():
    calls = []
    a, b = alternate(lambda: calls.append("a") or 1.0, lambda: calls.append("b") or 2.0, 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert a == [1.0] * 3 and b == [2.0] * 3


# ------------------------------------------------------------- end to end
@pytest.mark.slow
def test_quick_bench_reports_every_benchmark_with_finite_numbers(tmp_path):
    output = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "chordexp.bench", "quick=true", f"output={output}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(output.read_text())
    assert data["settings"]["quick"] is True
    assert {row["benchmark"] for row in data["results"]} == set(BENCHMARKS)
    for row in data["results"]:
        for key in ("value", "baseline", "ratio"):
            assert isinstance(row[key], (int, float)) and math.isfinite(row[key]), (row["measure"], key)
        assert row["met"] in (True, False, None)
    assert "| benchmark | measured |" in done.stdout
    assert not list(Path(tmp_path).glob("outputs"))  # the training runs stay in their temporary folders
