"""Score ``.lab`` chord transcriptions against reference ``.lab`` files with mir_eval.

    python -m chordexp.evaluate predictions=DIR references=DIR [output=FILE.json] [allow_missing=false]

Files are paired by their path relative to each folder without ``.lab`` (so the nested
output of ``chordexp.predict`` pairs with a nested reference tree), then without the audio
extension predict keeps where two inputs would collide (``a.wav.lab`` and ``a.flac.lab``
pair with ``a.lab``), then by file name alone where that is unique. ``output`` (default
PREDICTIONS/evaluation.json) never replaces an input ``.lab``, any other ``.lab`` or audio
file, or a run's record: that is refused before anything is scored. Each pair is scored
with ``mir_eval.chord``'s comparison functions exactly as ``mir_eval.chord.evaluate``
does (the estimate is cropped or padded with ``N`` to the reference span). The aggregate
POOLS DURATIONS across songs: every metric is (seconds judged correct) / (seconds judged)
over all files, so a long song weighs more than a short one; it is not a mean of per-song
scores. Segmentation scores are pooled the same way, weighted by each reference's span.
Intervals of a reference or a prediction must not overlap (one line naming the file and
line if they do).

Besides mir_eval's metrics there is ``exact``: the fraction of reference time whose
label is in our 32-type vocabulary (``chordexp.chords.parse_label``) where the estimate
has the same (root, chord type, bass) triple. mir_eval drops extensions above the octave
(``C:9`` scores like ``C:7`` there); ``exact`` does not.

A reference without a prediction is a failure (exit status 1) unless
``allow_missing=true``; a prediction without a reference is reported and skipped.
The Python API: :func:`chordexp.scoring.evaluate_pair`, :func:`chordexp.scoring.evaluate_dirs`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, cast

from chordexp.cli import exiting, main_guard, parse_args
from chordexp.errors import UsageError
from chordexp.output_dirs import check_not_an_input
from chordexp.scoring import evaluate_dirs, find_labs, format_table

USAGE = __doc__.split("Besides mir_eval")[0].strip()


@dataclass
class EvaluateArgs:
    predictions: str = "???"
    references: str = "???"
    output: Optional[str] = None
    allow_missing: bool = False


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(EvaluateArgs, sys.argv[1:] if argv is None else argv)
    output = Path(args.output) if args.output else Path(args.predictions) / "evaluation.json"
    inputs = [*find_labs(args.predictions, "predictions").values(), *find_labs(args.references, "references").values()]
    check_not_an_input("output", output, inputs, "an input of this evaluation")  # before anything is scored
    result = evaluate_dirs(args.predictions, args.references)
    missing_predictions = cast(List[str], result["missing_predictions"])  # names, see evaluate_dirs
    missing_references = cast(List[str], result["missing_references"])
    if missing_references:
        print(
            f"warning: {len(missing_references)} prediction(s) have no reference and are skipped: "
            f"{', '.join(missing_references)}",
            file=sys.stderr,
        )
    if not result["files"]:
        raise UsageError(
            f"no prediction in predictions={args.predictions} matches a reference .lab in references={args.references}"
        )
    print(format_table(result))
    from chordexp.experiment.run_folder import write_json

    write_json(output, result)
    print(f"wrote {output}")
    if missing_predictions:
        level = "warning" if args.allow_missing else "error"
        print(
            f"{level}: {len(missing_predictions)} reference(s) have no prediction"
            f"{'' if args.allow_missing else ' (allow_missing=true to accept)'}: "
            f"{', '.join(missing_predictions)}",
            file=sys.stderr,
        )
        if not args.allow_missing:
            return 1
    return 0


_entry = exiting(main)  # 1 when references have no prediction (unless allow_missing)


def cli() -> None:
    """``chordexp-evaluate`` and ``python -m chordexp.evaluate``: :func:`main` under ``main_guard``
    (``--help``, one-line errors; exit status 1 when references have no prediction)."""
    main_guard(_entry, USAGE)


if __name__ == "__main__":
    cli()
