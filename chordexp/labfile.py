"""MIREX ``.lab`` chord annotation files: read them strictly, write them plainly.

A ``.lab`` file holds ``start end label`` per line (seconds, Harte labels); reading
goes through ``mir_eval.io.load_labeled_intervals`` with every problem reported as one
line naming the file and line. Used by evaluation (references and estimates), the
folder dataset (annotations) and the transcribers (output).
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from chordexp.atomic import atomic_write_text
from chordexp.errors import UserError

Labels = Tuple[np.ndarray, List[str]]  # intervals (n, 2) seconds, n Harte labels


class LabFileError(UserError, ValueError):
    """A ``.lab`` file that cannot be read; the message is ``PATH:LINE: what is wrong``."""


_MIR_EVAL_ROW = re.compile(r" at .*:(\d+):")

#: The largest ``.lab`` read: a song's has hundreds of lines (a few kB); a frame-wise
#: annotation at 100 frames a second of a half-hour recording stays under both limits.
MAX_LAB_BYTES = 16_000_000
MAX_LAB_LINES = 200_000


def load_lab(path: str | Path, disjoint: bool = False) -> Labels:
    """``.lab`` -> ``(intervals (n, 2), labels)`` via ``mir_eval.io.load_labeled_intervals``.

    Blank lines are skipped (mir_eval rejects them); everything mir_eval would only warn
    about (negative times, empty or backwards intervals) and every label mir_eval cannot
    parse raises LabFileError naming the file and line. ``disjoint=True`` (evaluation:
    mir_eval's segmentation scores need it) also refuses an interval that starts before
    the previous one ends.
    """
    path = Path(path)
    data = read_bounded(path)
    import mir_eval

    try:
        raw = data.decode("utf-8-sig")  # a byte-order mark (Windows editors write one) is not data
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise LabFileError(f"{path}:{line}: not UTF-8 text") from None
    lines = raw.splitlines()
    # A comment in place of each blank line keeps mir_eval's row numbers equal to ours.
    text = "".join(("#\n" if not line.strip() else line + "\n") for line in lines)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # we check the intervals ourselves, below
            intervals, labels = mir_eval.io.load_labeled_intervals(io.StringIO(text))
    except ValueError as error:
        message = str(error)
        row = _MIR_EVAL_ROW.search(message)
        what = re.sub(r" found$", "", message.split(" at ")[0]) if row else message.splitlines()[0]
        raise LabFileError(f"{path}:{row.group(1) if row else '?'}: {what} (want 'start end label')") from None
    if not labels:
        raise LabFileError(f"{path}: holds no chord intervals")
    data_rows = [i + 1 for i, line in enumerate(lines) if line.strip() and not line.startswith("#")]
    check_intervals(path, intervals, data_rows)
    if disjoint:
        for i in range(1, len(intervals)):
            if intervals[i, 0] < intervals[i - 1, 1]:
                raise LabFileError(
                    f"{path}:{data_rows[i]}: starts at {intervals[i, 0]}, before the previous interval "
                    f"ends ({intervals[i - 1, 1]}); intervals must not overlap"
                )
    check_labels(path, labels, data_rows)
    return intervals, list(labels)


def read_bounded(path: Path) -> bytes:
    """The bytes of a ``.lab``; LabFileError, in one line naming the file, its size and
    the limit, for one over ``MAX_LAB_BYTES`` or ``MAX_LAB_LINES`` (a 10-million-line
    file took 4 GB to parse): found from the file's size, or (a pipe) by reading at
    most one byte past the limit, never by reading it all."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_LAB_BYTES:
                raise LabFileError(_too_large(path, f"{_megabytes(size)}"))
            data = handle.read(MAX_LAB_BYTES + 1)
    except FileNotFoundError:
        raise LabFileError(f"{path}: no such file") from None
    except OSError as error:
        raise LabFileError(f"{path}: cannot read ({error.strerror})") from None
    if len(data) > MAX_LAB_BYTES:
        raise LabFileError(_too_large(path, f"more than {_megabytes(MAX_LAB_BYTES)}"))
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    if lines > MAX_LAB_LINES:
        raise LabFileError(
            f"{path}: {lines:,} lines, over the {MAX_LAB_LINES:,} a .lab may hold (a song's chord annotation "
            f"has hundreds); not a chord annotation, not parsed"
        )
    return data


def _too_large(path: Path, size: str) -> str:
    return (
        f"{path}: {size}, over the {_megabytes(MAX_LAB_BYTES)} a .lab may hold (a song's chord annotation "
        f"is a few kB); not a chord annotation, not read"
    )


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def check_intervals(path: Path, intervals: np.ndarray, rows: List[int]) -> None:
    """Finite, non-negative, non-empty intervals in order of start: LabFileError naming
    ``path`` and the line (``rows[i]``) otherwise; shared with JAMS reading."""
    for i, (start, end) in enumerate(intervals):
        if not (math.isfinite(start) and math.isfinite(end)):
            raise LabFileError(f"{path}:{rows[i]}: times must be finite numbers, got {start} {end}")
        if start < 0:
            raise LabFileError(f"{path}:{rows[i]}: negative start time {start}")
        if end <= start:
            raise LabFileError(f"{path}:{rows[i]}: end {end} is not after start {start}")
        if i and start < intervals[i - 1, 0]:
            raise LabFileError(
                f"{path}:{rows[i]}: start {start} is before the previous line's start; sort the file by time"
            )


def check_labels(path: Path, labels: List[str], rows: List[int]) -> None:
    """Labels mir_eval can parse: LabFileError naming ``path`` and the line otherwise."""
    import mir_eval

    for i, label in enumerate(labels):
        try:
            mir_eval.chord.encode(label)
        except (mir_eval.chord.InvalidChordException, ValueError, KeyError):
            raise LabFileError(f"{path}:{rows[i]}: {label!r} is not a chord label mir_eval can parse") from None


def write_lab(
    path: Path, segments: Sequence[Tuple[float, float, str]], decimals: int = 3, comment: Optional[str] = None
) -> None:
    """MIREX ``.lab``: ``start end label`` per line, seconds (milliseconds by default),
    after ``comment`` as a ``#`` line when given; written atomically."""
    head = "" if comment is None else "# " + " ".join(comment.lstrip("# ").split()) + "\n"
    lines = (f"{start:.{decimals}f}\t{end:.{decimals}f}\t{label}\n" for start, end, label in segments)
    atomic_write_text(path, head + "".join(lines))
