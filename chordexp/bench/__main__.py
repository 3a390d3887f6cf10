"""Run the benchmarks, print one table, write it as JSON.

    python -m chordexp.bench [output=outputs/bench.json] [only=trainer,data,...] [quick=false] [repeats=N]
                             [docs=false]

``only``: a comma-separated subset of startup, trainer, data, songs, collection, frontend, transcribe,
memory, predict_memory, gpu (default: all, in that order; gpu is skipped with one line without a CUDA GPU).
``quick=true`` runs a miniature of every benchmark (seconds, figures meaningless: for tests).
``repeats``: timed repetitions (default 5, quick 1); figures are medians. ``docs=true``: this
run becomes the documented one: its JSON is copied to docs/benchmarks.json and the table of
docs/benchmarks.md is generated from it. Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from chordexp.cli import main_guard, parse_args
from chordexp.errors import UsageError

USAGE = __doc__.strip()

#: name -> module whose ``run(sizes) -> List[Row]`` is the benchmark, in running order.
BENCHMARKS: Dict[str, str] = {
    "startup": "chordexp.bench.startup",
    "trainer": "chordexp.bench.trainer_overhead",
    "data": "chordexp.bench.data_throughput",
    "songs": "chordexp.bench.song_data",
    "collection": "chordexp.bench.collection",
    "frontend": "chordexp.bench.cqt",
    "transcribe": "chordexp.bench.transcription",
    "memory": "chordexp.bench.memory",
    "predict_memory": "chordexp.bench.predict_memory",
    "gpu": "chordexp.bench.gpu",  # one line and no rows without a CUDA GPU
}


@dataclass
class BenchArgs:
    output: str = "outputs/bench.json"
    only: str = "all"
    quick: bool = False
    repeats: int = 0  # 0: 5, or 1 with quick=true
    docs: bool = False


def select(only: str) -> List[str]:
    """Benchmark names from ``only`` (comma-separated, or ``all``), in running order."""
    if only.strip() == "all":
        return list(BENCHMARKS)
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown or not names:
        raise UsageError(
            f"only={only!r}: unknown benchmark {unknown[0] if unknown else '(none)'!r}; "
            f"valid: all or a comma-separated list of {', '.join(BENCHMARKS)}"
        )
    return [name for name in BENCHMARKS if name in names]


def check_args(args: BenchArgs) -> List[str]:
    """Validate the arguments before anything runs; returns the benchmarks to run."""
    if args.repeats < 0:
        raise UsageError(f"repeats={args.repeats} must be >= 1 (or 0 for the default)")
    if not args.output.strip():
        raise UsageError("output= must name a file")
    output = Path(args.output)
    if output.is_dir():
        raise UsageError(f"output={args.output}: is a folder; name a file such as bench.json")
    if args.docs and args.quick:
        raise UsageError("docs=true with quick=true: quick figures mean nothing, the docs keep a full run's")
    return select(args.only)


def main(argv: Optional[List[str]] = None, echo: Callable[[str], None] = print) -> int:
    from chordexp.bench.common import format_table, machine_info, write_json
    from chordexp.bench.sizes import sizes_for
    from chordexp.bench.tables import DOC_JSON, check_page, machine_line, publish, targets_line

    args = parse_args(BenchArgs, sys.argv[1:] if argv is None else argv)
    names = check_args(args)
    if args.docs:
        check_page()
    sizes = sizes_for(args.quick, args.repeats)
    machine = machine_info()
    machine["load_average_start"] = list(os.getloadavg())
    rows = []
    started = time.perf_counter()
    for name in names:
        print(f"== {name}", file=sys.stderr, flush=True)
        for row in importlib.import_module(BENCHMARKS[name]).run(sizes):
            met = {None: "info", True: "met", False: "NOT met"}[row.met]
            print(
                f"   {row.measure}: {row.value:.4g} {row.unit} vs {row.baseline_name} {row.baseline:.4g} "
                f"{row.baseline_unit}: ratio {row.ratio:.3g} ({row.ratio_of}), target {row.target_op or '-'} "
                f"{'' if row.target is None else f'{row.target:g}'} {met}",
                file=sys.stderr,
                flush=True,
            )
            rows.append(row)
    machine["load_average_end"] = list(os.getloadavg())
    settings = {
        "benchmarks": names,
        "quick": args.quick,
        **asdict(sizes),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    write_json(Path(args.output), rows, machine, settings)
    if args.docs:
        publish(Path(args.output), copy_to=DOC_JSON)
    echo(machine_line(machine) + "\n")
    echo(format_table(rows))
    echo(f"\n{targets_line(rows)}; JSON: {args.output}")
    return 0


def cli() -> None:
    """``chordexp-bench`` and ``python -m chordexp.bench``: :func:`main` under ``main_guard``
    (``--help``, one-line errors)."""
    main_guard(main, USAGE)


if __name__ == "__main__":
    cli()
