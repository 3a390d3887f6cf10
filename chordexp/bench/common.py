"""What every benchmark shares: timing, the result row, the table and the JSON file.

A benchmark returns ``Row``s: its measured figure, a baseline measured in the same
run (or a fixed figure the target names), their ratio and the target on that ratio,
so every line of the table reads the same way and the JSON keeps the raw samples.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy
import torch

#: Comparison operators a target may use.
TARGET_OPS: Dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
}


@dataclass
class Row:
    """One line of the bench table.

    ``ratio`` is what the target is checked on: usually ``value / baseline`` (or its
    inverse where faster means a smaller time), as ``ratio_of`` says; ``target_op``
    None marks an informational row with no target.
    """

    benchmark: str
    measure: str
    value: float
    unit: str
    baseline_name: str
    baseline: float
    baseline_unit: str
    ratio: float
    ratio_of: str
    target_op: Optional[str] = None
    target: Optional[float] = None
    note: str = ""
    samples: Dict[str, List[float]] = field(default_factory=dict)

    @property
    def met(self) -> Optional[bool]:
        if self.target_op is None or self.target is None:
            return None
        return bool(math.isfinite(self.ratio) and TARGET_OPS[self.target_op](self.ratio, self.target))

    def to_json(self) -> Dict[str, Any]:
        data = asdict(self)
        data["met"] = self.met
        return data


def ratio(a: float, b: float) -> float:
    """``a / b``, infinite for ``b == 0`` (a ratio never raises)."""
    return a / b if b else math.inf


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_timed(fn: Callable[[], Any]) -> float:
    """CPU seconds the calling thread spent in one call of ``fn``: the cost on one core,
    which, unlike wall time, other processes on a shared machine do not inflate."""
    start = time.thread_time()
    fn()
    return time.thread_time() - start


def alternate(first: Callable[[], float], second: Callable[[], float], repeats: int) -> tuple:
    """Run two timed measurements ``repeats`` times each, alternating which goes first
    (A B, B A, A B, ...) so that drift of the machine falls on both alike."""
    a_times: List[float] = []
    b_times: List[float] = []
    for i in range(repeats):
        if i % 2 == 0:
            a_times.append(first())
            b_times.append(second())
        else:
            b_times.append(second())
            a_times.append(first())
    return a_times, b_times


def paired_ratio(a_times: Sequence[float], b_times: Sequence[float]) -> float:
    """Median of ``a / b`` over the pairs that ran next to each other: on a shared
    machine whose load drifts, each pair saw the same conditions."""
    return median([ratio(a, b) for a, b in zip(a_times, b_times)])


def machine_info() -> Dict[str, Any]:
    """Where the figures came from: CPU, cores, Python, torch and numpy versions."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):  # no /proc (macOS): keep platform's name
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }


def _fmt(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return f"{value} {unit}".strip()
    magnitude = abs(value)
    text = f"{value:.3g}" if magnitude < 100 else f"{value:,.0f}"
    return f"{text} {unit}".strip()


def format_table(rows: Sequence[Row]) -> str:
    """The bench table as Markdown (it goes into the README as printed)."""
    header = ("benchmark", "measured", "baseline (same run)", "ratio", "target", "met")
    lines = [header]
    for row in rows:
        target = "-" if row.target_op is None else f"{row.target_op} {row.target:g}"
        met = {None: "info", True: "yes", False: "**no**"}[row.met]
        lines.append(
            (
                f"{row.benchmark}: {row.measure}",
                _fmt(row.value, row.unit),
                f"{row.baseline_name}: {_fmt(row.baseline, row.baseline_unit)}",
                f"{row.ratio:.3g} ({row.ratio_of})" if math.isfinite(row.ratio) else str(row.ratio),
                target,
                met,
            )
        )
    out = ["| " + " | ".join(cells) + " |" for cells in lines]
    out.insert(1, "|" + "|".join("---" for _ in header) + "|")
    return "\n".join(out)


def write_json(path: Path, rows: Sequence[Row], machine: Dict[str, Any], settings: Dict[str, Any]) -> None:
    """The table and its raw samples as JSON (non-finite numbers become null)."""
    document = {
        "machine": machine,
        "settings": settings,
        "all_targets_met": all(row.met is not False for row in rows),
        "results": [row.to_json() for row in rows],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(document), indent=2) + "\n")


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such numbers are written as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def echo(message: str) -> None:
    """Progress lines go to stderr, so stdout holds the table alone."""
    print(message, file=sys.stderr, flush=True)


class one_core:
    """Context: the calling thread pinned to one CPU and torch to one thread, so a
    figure is 'per core'. Restores both on exit."""

    def __enter__(self) -> "one_core":
        self._threads = torch.get_num_threads()
        self._affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        torch.set_num_threads(1)
        if self._affinity:
            os.sched_setaffinity(0, {min(self._affinity)})
        return self

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self._threads)
        if self._affinity:
            os.sched_setaffinity(0, self._affinity)
