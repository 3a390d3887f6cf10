"""Cross-validation in the run report: each metric's mean and spread over the folds.

A multirun ``python -m chordexp.run -m data.num_folds=5 data.fold=0,1,2,3,4 ...`` gives
one run per fold. When the report's runs differ in ``data.fold``, the runs that differ
only in it (same values of every other differing override) form one group, and each
validation metric is summarised over the group's runs as mean ± standard deviation
(sample std, ``n - 1``; 0 for a single run). Runs without a value (failed, incomplete)
are left out of that metric's figures and the group's ``folds`` column counts the runs
that have one.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

FOLD_KEY = "data.fold"


def finite_number(value: Any) -> Optional[float]:
    """``value`` as a finite float, or None (missing, NaN, not a number): how report and
    this summary read a table cell."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def summarise_folds(rows: Sequence[Dict[str, Any]], metrics: Sequence[str]) -> List[Dict[str, Any]]:
    """One dict per group of runs differing only in ``data.fold`` (none when no run sets it).

    Keys: ``group`` (``"k=v k=v"`` of the other differing overrides, ``"all"`` when there are
    none), ``folds`` (the fold values seen, sorted), ``n`` (the most runs any metric has a
    value from) and per metric ``(mean, std, count)``, or None without values. ``rows``
    are :func:`chordexp.report.collect_runs` rows (``overrides``: the differing overrides).
    """
    if not rows or FOLD_KEY not in rows[0]:
        return []
    others = [key for key in dict.fromkeys(k for row in rows for k in row.get("overrides", {})) if key != FOLD_KEY]
    groups: Dict[Tuple[Any, ...], List[Dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(key) for key in others), []).append(row)
    summaries = []
    for values, members in groups.items():
        label = " ".join(f"{k}={v}" for k, v in zip(others, values) if v is not None) or "all"
        summary: Dict[str, Any] = {
            "group": label,
            "folds": sorted({str(r.get(FOLD_KEY)) for r in members}, key=_fold_order),
        }
        counted = 0
        for name in metrics:
            numbers = [n for n in (finite_number(r.get(name)) for r in members) if n is not None]
            summary[name] = _mean_std(numbers)
            counted = max(counted, len(numbers))
        summary["n"] = counted
        summaries.append(summary)
    return summaries


def _fold_order(value: str) -> Tuple[int, Any]:
    return (0, int(value)) if value.lstrip("-").isdigit() else (1, value)


def _mean_std(numbers: Sequence[float]) -> Optional[Tuple[float, float, int]]:
    if not numbers:
        return None
    mean = sum(numbers) / len(numbers)
    if len(numbers) < 2:
        return mean, 0.0, 1
    var = sum((x - mean) ** 2 for x in numbers) / (len(numbers) - 1)
    return mean, math.sqrt(var), len(numbers)


def format_fold_table(summaries: Sequence[Dict[str, Any]], metrics: Sequence[str]) -> str:
    """Aligned text: a row per group, ``mean ± std`` per metric with values."""
    shown = [name for name in metrics if any(s.get(name) for s in summaries)]
    head = ["group", "folds", *shown]
    cells = [
        [
            s["group"],
            str(s["n"]),
            *("-" if s[name] is None else f"{s[name][0]:.4f} ± {s[name][1]:.4f}" for name in shown),
        ]
        for s in summaries
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    title = f"over folds ({FOLD_KEY}; mean ± sample std over the runs of each group):"
    return "\n".join([title, line(head), line(["-" * w for w in widths]), *(line(c) for c in cells)])


def fold_report(rows: Sequence[Dict[str, Any]]) -> Optional[str]:
    """The over-folds table of report rows (their ``best_val_*`` / ``final_val_*``
    columns), or None when the runs do not differ in ``data.fold``."""
    metrics = [key for key in (rows[0] if rows else {}) if key.startswith(("best_val_", "final_val_"))]
    summaries = summarise_folds(rows, metrics)
    return format_fold_table(summaries, metrics) if summaries else None
