"""Choose the decoder's settings on a development set of songs.

    python -m chordexp.tune_decoder checkpoint=PATH songs=DEV_DIR \
        [self_transitions=[0.9,0.95,0.97]] [prior_weights=[0,0.3,0.6]] [estimate_tuning=[false,true]]
        [transpositions=[0,1]] [objective=[majmin,sevenths,seg]]

Every audio file under DEV_DIR with a ``.lab`` of the same name beside it is analysed
once per (tuning, transpositions) setting by the model; each (self_transition, prior_weight) pair then only re-runs the
Viterbi decoder. Prints one row per pair (mir_eval, durations pooled) and the pair
with the best mean of the ``objective`` metrics, to pass to ``predict`` or to set as
``decoder.*`` in the training config. Use a development set, never the songs you report.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from chordexp.audio import load_audio
from chordexp.audio_names import find_audio_files
from chordexp.cli import main_guard, parse_args
from chordexp.decode import PRIOR_WEIGHT_RANGE, TRANSPOSITIONS_RANGE, prior_weight_ok, transpositions_ok
from chordexp.errors import UsageError
from chordexp.labfile import load_lab
from chordexp.scoring import pool, score_labels, segments_to_labels

USAGE = __doc__.split("Every audio file")[0].strip()
REPORTED = ("root", "majmin", "majmin_inv", "sevenths", "sevenths_inv", "mirex", "seg")


@dataclass
class TuneArgs:
    checkpoint: str = "???"
    songs: str = "???"
    self_transitions: List[float] = field(default_factory=lambda: [0.9, 0.93, 0.95, 0.97, 0.98])
    prior_weights: List[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75])
    estimate_tuning: List[bool] = field(default_factory=lambda: [False, True])
    transpositions: List[int] = field(default_factory=lambda: [0, 1])
    objective: List[str] = field(default_factory=lambda: ["majmin", "sevenths", "seg"])
    device: str = "cpu"


def tune(
    recognizer, songs: Sequence[Tuple[Path, Path]], self_transitions: Sequence[float], prior_weights: Sequence[float]
) -> Dict[Tuple[float, float], Dict[str, Optional[float]]]:
    """Pooled mir_eval scores of every (self_transition, prior_weight) pair (the
    recogniser's own tuning setting)."""
    analyses = [
        (recognizer.analyse(load_audio(audio, recognizer.sample_rate), recognizer.sample_rate), load_lab(lab))
        for audio, lab in songs
    ]
    results = {}
    for stay in self_transitions:
        for weight in prior_weights:
            scores = {
                i: score_labels(reference, segments_to_labels(recognizer.decode(analysis, stay, weight).segments))
                for i, (analysis, reference) in enumerate(analyses)
            }
            results[(stay, weight)] = pool(scores)[0]
    return results


def find_songs(folder: Path) -> List[Tuple[Path, Path]]:
    pairs = [(audio, audio.with_suffix(".lab")) for audio in find_audio_files(folder)]
    pairs = [(audio, lab) for audio, lab in pairs if lab.is_file()]
    if not pairs:
        raise UsageError(f"songs={folder}: no audio file with a .lab of the same name beside it")
    return pairs


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(TuneArgs, sys.argv[1:] if argv is None else argv)
    for value in args.self_transitions:
        if not 0.0 < value < 1.0:
            raise UsageError(f"self_transitions: {value} is outside (0, 1)")
    for value in args.prior_weights:
        if not prior_weight_ok(value):
            raise UsageError(f"prior_weights: {value} is outside {list(PRIOR_WEIGHT_RANGE)}")
    for value in args.transpositions:
        if not transpositions_ok(value):
            raise UsageError(f"transpositions: {value} is outside {TRANSPOSITIONS_RANGE[0]}..{TRANSPOSITIONS_RANGE[1]}")
    for name in ("self_transitions", "prior_weights", "estimate_tuning", "transpositions"):
        if not getattr(args, name):
            raise UsageError(f"{name}: an empty list; give at least one value to try")
    unknown = [m for m in args.objective if m not in REPORTED]
    if unknown or not args.objective:
        raise UsageError(f"objective: {unknown or 'empty'}; choose from {', '.join(REPORTED)}")
    from chordexp.inference import ChordRecognizer, check_finite_weights

    songs = find_songs(Path(args.songs))
    recognizer = ChordRecognizer.from_checkpoint(args.checkpoint, device=args.device)
    check_finite_weights(recognizer, args.checkpoint)  # NaN weights would "recommend" settings for all-N output
    if recognizer.type_log_prior is None and any(args.prior_weights):
        print("note: the checkpoint holds no chord-type prior; prior_weight has no effect", file=sys.stderr)
    print(f"{len(songs)} songs under {args.songs}; mir_eval, durations pooled")
    print(
        "tuning transpositions self_transition prior_weight " + " ".join(f"{m:>12}" for m in REPORTED) + "    objective"
    )
    best, best_value = None, -1.0
    for tuning in args.estimate_tuning:
        for moves in args.transpositions:
            recognizer.estimate_tuning, recognizer.transpositions = tuning, moves
            for (stay, weight), scores in tune(recognizer, songs, args.self_transitions, args.prior_weights).items():
                value = sum(scores[m] or 0.0 for m in args.objective) / len(args.objective)
                print(
                    f"{str(tuning):>6} {moves:14d} {stay:15.3f} {weight:12.2f} "
                    + " ".join(f"{(scores[m] or 0.0):12.3f}" for m in REPORTED)
                    + f"    {value:.4f}"
                )
                if value > best_value:
                    best, best_value = (tuning, moves, stay, weight), value
    assert best is not None
    print(
        f"best: estimate_tuning={str(best[0]).lower()} transpositions={best[1]} self_transition={best[2]} "
        f"prior_weight={best[3]} (mean of {', '.join(args.objective)}: {best_value:.4f})"
    )
    return 0


def cli() -> None:
    """``chordexp-tune-decoder`` and ``python -m chordexp.tune_decoder``: :func:`main` under ``main_guard``
    (``--help``, one-line errors)."""
    main_guard(main, USAGE)


if __name__ == "__main__":
    cli()
