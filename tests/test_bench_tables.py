"""The bench table of docs/benchmarks.md is generated from docs/benchmarks.json: a
hand-edit of either one alone fails here; ``python -m chordexp.bench.tables`` fixes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chordexp.bench.common import Row, format_table, ratio, write_json
from chordexp.bench.tables import BEGIN, DOC_JSON, DOC_PAGE, END, publish, render, rows_of, with_table
from chordexp.errors import UsageError


def _document(tmp_path: Path) -> dict:
    rows = [
        Row(
            benchmark="demo",
            measure="a thing",
            value=2.0,
            unit="s",
            baseline_name="plain",
            baseline=1.0,
            baseline_unit="s",
            ratio=ratio(2.0, 1.0),
            ratio_of="thing / plain",
            target_op="<=",
            target=3.0,
        ),
        Row(
            benchmark="demo",
            measure="never",
            value=1.0,
            unit="s",
            baseline_name="zero",
            baseline=0.0,
            baseline_unit="s",
            ratio=ratio(1.0, 0.0),
            ratio_of="thing / zero",
        ),
    ]
    machine = {
        "cpu": "CPU",
        "cores": 2,
        "torch": "2",
        "torch_threads": 2,
        "python": "3",
        "load_average_start": [0.5, 0.4, 0.3],
        "load_average_end": [1.5, 1.0, 0.5],
    }
    write_json(tmp_path / "bench.json", rows, machine, {"benchmarks": ["demo"]})
    return json.loads((tmp_path / "bench.json").read_text())


def test_the_documented_table_is_the_one_its_json_makes():
    page = DOC_PAGE.read_text(encoding="utf-8")
    document = json.loads(DOC_JSON.read_text(encoding="utf-8"))
    assert with_table(page, render(document)) == page, (
        "docs/benchmarks.md's table differs from docs/benchmarks.json: run python -m chordexp.bench.tables"
    )


def test_rows_read_back_as_the_bench_printed_them(tmp_path):
    document = _document(tmp_path)
    rows = rows_of(document)
    assert [row.met for row in rows] == [True, None]
    assert "| demo: never | 1 s | zero: 0 s | nan | - | info |" in format_table(rows)  # inf was written as null
    block = render(document)
    assert "Machine: CPU, 2 cores, torch 2 (threads 2), Python 3; load average 0.5 at start, 1.5 at end" in block
    assert block.endswith("1 of 1 targets met; JSON: [benchmarks.json](benchmarks.json)")


def test_publish_rewrites_between_the_markers_only(tmp_path):
    _document(tmp_path)
    page = tmp_path / "page.md"
    page.write_text(f"# Title\n\nbefore\n\n{BEGIN}\nstale\n{END}\n\nafter\n")
    publish(tmp_path / "bench.json", page, copy_to=tmp_path / "copy.json")
    text = page.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith(f"{END}\n\nafter\n")
    assert "stale" not in text and "| demo: a thing | 2 s |" in text
    assert (tmp_path / "copy.json").read_bytes() == (tmp_path / "bench.json").read_bytes()
    publish(tmp_path / "bench.json", page)
    assert page.read_text() == text  # idempotent


def test_a_page_without_markers_or_a_bad_json_is_a_one_line_error(tmp_path):
    _document(tmp_path)
    page = tmp_path / "page.md"
    page.write_text("# no markers\n")
    with pytest.raises(UsageError, match="no bench table markers"):
        publish(tmp_path / "bench.json", page)
    page.write_text(f"{BEGIN}\n{END}\n")
    (tmp_path / "other.json").write_text('{"rows": []}')
    with pytest.raises(UsageError, match="not a bench result"):
        publish(tmp_path / "other.json", page)
    with pytest.raises(UsageError, match="no such file"):
        publish(tmp_path / "missing.json", page)
