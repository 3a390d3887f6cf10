"""Check a collection of annotated songs before training on it.

    python -m chordexp.check_data root=AUDIO_ROOT [annotations=ANN_ROOT] [unknown_chords=map]
                                  [end_tolerance=5.0] [gap_tolerance=0.1]

Reads every song the folder datasets would find (``chordexp.data.collection``: audio
under ``root``, each with a ``.lab`` or ``.jams`` beside it or at the same relative path
under ``annotations``), decodes its audio and its annotation, and prints: the number of
songs and hours of audio, audio that fails to decode, annotations that cannot be read,
overlapping intervals, gaps between intervals (longer than ``gap_tolerance`` s),
labels outside the vocabulary with what they map to (``unknown_chords``: map or skip,
as in training), the duration per chord type, songs without an annotation, annotation
files no audio pairs with, and songs whose annotation ends more than ``end_tolerance`` s
from the end of the audio.
Exit status: 0 when nothing is an error, 1 when something is (audio that fails to decode,
an unreadable annotation, overlapping intervals), 2 for bad arguments. Nothing is written.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import List, Optional

from chordexp.cli import exiting, main_guard, parse_args

USAGE = __doc__.strip()


@dataclass
class CheckArgs:
    root: str = "???"
    annotations: Optional[str] = None
    unknown_chords: str = "map"
    end_tolerance: float = 5.0
    gap_tolerance: float = 0.1


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(CheckArgs, sys.argv[1:] if argv is None else argv)
    from chordexp.data.collection_check import check_collection, format_report

    report = check_collection(args.root, args.annotations, args.unknown_chords, args.end_tolerance, args.gap_tolerance)
    print(format_report(report))
    return 1 if report.errors else 0


_entry = exiting(main)  # 1 when the check found problems


def cli() -> None:
    """``chordexp-check-data`` and ``python -m chordexp.check_data``: :func:`main` under ``main_guard``
    (``--help``, one-line errors; exit status 1 when the check found problems)."""
    main_guard(_entry, USAGE)


if __name__ == "__main__":
    cli()
