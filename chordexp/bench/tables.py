"""The bench table of docs/benchmarks.md, generated from the JSON the bench writes, so
the figures in the docs are always a run's own and never copied by hand.

    python -m chordexp.bench.tables [json=docs/benchmarks.json] [doc=docs/benchmarks.md]

re-renders what lies between the two marker comments of ``doc`` from ``json`` (the file
``python -m chordexp.bench`` writes; its ``docs=true`` does both steps).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from chordexp.atomic import atomic_write_text
from chordexp.bench.common import Row, format_table
from chordexp.cli import main_guard, parse_args
from chordexp.errors import UsageError

USAGE = __doc__.strip()

DOCS = Path(__file__).resolve().parents[2] / "docs"
DOC_JSON = DOCS / "benchmarks.json"
DOC_PAGE = DOCS / "benchmarks.md"
BEGIN = "<!-- bench table: generated from benchmarks.json by python -m chordexp.bench.tables; do not edit -->"
END = "<!-- end of the bench table -->"
_NUMBERS = ("value", "baseline", "ratio")  # written as null when not finite


@dataclass
class TablesArgs:
    json: str = str(DOC_JSON)
    doc: str = str(DOC_PAGE)


def rows_of(document: Mapping[str, Any]) -> List[Row]:
    """The rows of a bench JSON document (a null figure was not finite: NaN here)."""
    names = {field.name for field in fields(Row)}
    rows = []
    for result in document["results"]:
        row = {key: value for key, value in result.items() if key in names}
        rows.append(Row(**{**row, **{key: math.nan for key in _NUMBERS if row.get(key) is None}}))
    return rows


def machine_line(machine: Mapping[str, Any]) -> str:
    """Where the figures came from, as the bench prints it above its table."""
    return (
        f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']} "
        f"(threads {machine['torch_threads']}), Python {machine['python']}; load average "
        f"{machine['load_average_start'][0]:.1f} at start, {machine['load_average_end'][0]:.1f} at end"
    )


def targets_line(rows: Sequence[Row]) -> str:
    return f"{sum(row.met is True for row in rows)} of {sum(row.met is not None for row in rows)} targets met"


def render(document: Mapping[str, Any]) -> str:
    """The generated part of the page: the command, the machine, the table, the tally."""
    rows = rows_of(document)
    only = ",".join(document["settings"]["benchmarks"])
    return "\n\n".join(
        [
            f"`python -m chordexp.bench only={only}`, as printed:",
            machine_line(document["machine"]),
            format_table(rows),
            f"{targets_line(rows)}; JSON: [benchmarks.json](benchmarks.json)",
        ]
    )


def with_table(page: str, block: str, where: str = "the page") -> str:
    """``page`` with what lies between the marker comments replaced by ``block``."""
    start, end = page.find(BEGIN), page.find(END)
    if start < 0 or end < start:
        raise UsageError(f"{where}: no bench table markers ({BEGIN} ... {END})")
    return page[: start + len(BEGIN)] + "\n\n" + block + "\n\n" + page[end:]


def read_document(path: Path) -> Dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"json={path}: no such file") from None
    except json.JSONDecodeError as error:
        raise UsageError(f"json={path}: not JSON ({error})") from None
    if not isinstance(document, dict) or not {"machine", "settings", "results"} <= set(document):
        raise UsageError(f"json={path}: not a bench result (want machine, settings and results)")
    return document


def check_page(page: Path = DOC_PAGE) -> None:
    """``page`` exists and has the markers: checked before a run of hours, not after."""
    if not page.is_file():
        raise UsageError(f"doc={page}: no such file (the docs come with a source checkout)")
    with_table(page.read_text(encoding="utf-8"), "", str(page))


def publish(json_path: Path, page: Path = DOC_PAGE, copy_to: Optional[Path] = None) -> None:
    """Re-render the table of ``page`` from ``json_path``; with ``copy_to``, the JSON is
    first copied there (the bench's ``docs=true``: its run becomes the documented one)."""
    check_page(page)
    document = read_document(json_path)
    if copy_to is not None and copy_to.resolve() != json_path.resolve():
        shutil.copyfile(json_path, copy_to)
    atomic_write_text(page, with_table(page.read_text(encoding="utf-8"), render(document), str(page)))


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(TablesArgs, sys.argv[1:] if argv is None else argv, positional=("json",))
    publish(Path(args.json), Path(args.doc))
    return 0


if __name__ == "__main__":
    main_guard(main, USAGE)
