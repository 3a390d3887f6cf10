"""An independent evaluation set: MIDI songs rendered by FluidSynth, with exact chord labels.

    python -m chordexp.evalset output=DIR [style=clean|band] [split=test|dev] [songs=12] [seed=0]
                               [seconds=S (band)] [soundfont=PATH] [format=flac]

style=clean (the default): the short songs described below. style=band: ~60 s band
songs (chord instruments, bass, drums, a lead melody, detuned, mastered; see
``chordexp.evalset_songs.band_songs``). split=dev draws every song from a random stream disjoint
from split=test (the default), so settings chosen on dev are never tuned on test.

Our training data comes from our own synthesiser; scoring a model only on more of the
same would flatter it. This renders short songs (30-60 s) with software we did not
write: the progressions become General MIDI files (written with ``mido``), which the
``fluidsynth`` command line renders with a sampled SoundFont (MuseScore General, else
FluidR3 GM). For each song DIR gets ``NAME.mid``, ``NAME.flac`` (or ``.wav``) and the
reference ``NAME.lab``; plus ``manifest.json`` (tempo, key, instruments, progressions)
and ``README.txt`` (how it was made, the SoundFont and its licence).

Songs use common pop, rock, blues and jazz progressions covering all 31 chord types of
the vocabulary (triads, sevenths, sus, 6, 9, 11, 13, altered dominants, inversions),
voiced in full, with 1-2 accompaniment parts (piano, electric piano, organ, guitar,
strings, pads: block chords, comping, strums, arpeggios), a bass instrument playing the
chord's bass note, sometimes drums and a melody, and ``N`` stretches (a silent or
count-in intro, some mid-song breaks, the release tail). Chord times are exact: they
are the MIDI file's own beat times under its tempo.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from chordexp.cli import main_guard, parse_args
from chordexp.errors import UsageError
from chordexp.evalset_songs.band_songs import build_band
from chordexp.evalset_songs.clean_songs import build_clean
from chordexp.evalset_songs.material import split_seed
from chordexp.evalset_songs.rendering import check_tools
from chordexp.output_dirs import make_output_folder

USAGE = __doc__.split("Our training data")[0].strip()


@dataclass
class EvalsetArgs:
    output: str = "???"
    style: str = "clean"
    split: str = "test"
    songs: int = 12
    seed: int = 0
    seconds: Optional[float] = None  # band songs' rough length (default 54-64 s)
    soundfont: Optional[str] = None
    format: str = "flac"
    sample_rate: int = 44100


def build(args: EvalsetArgs) -> list:
    """Plan, write MIDI and labels, render; returns the songs (``Song`` or ``BandSong``)."""
    if args.songs < 1:
        raise UsageError(f"songs must be >= 1, got {args.songs}")
    if args.format not in ("flac", "wav"):
        raise UsageError(f"format must be flac or wav, got {args.format!r}")
    if args.style not in ("clean", "band"):
        raise UsageError(f"style must be clean or band, got {args.style!r}")
    split_seed([], args.split)
    if args.seconds is not None and (args.style != "band" or not 5 <= args.seconds <= 600):
        raise UsageError(f"seconds={args.seconds}: only style=band takes a length, of 5-600 s")
    soundfont, package = check_tools(args.soundfont)
    output = Path(args.output)
    make_output_folder(output)
    if args.style == "band":
        band = build_band(
            output, args.songs, args.seed, args.split, args.seconds, soundfont, package, args.format, args.sample_rate
        )
        print(f"wrote {len(band)} band songs to {output} (SoundFont {soundfont})")
        return band
    return build_clean(output, args.songs, args.seed, args.split, soundfont, package, args.format, args.sample_rate)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(EvalsetArgs, sys.argv[1:] if argv is None else argv)
    build(args)
    return 0


def cli() -> None:
    """``chordexp-evalset`` and ``python -m chordexp.evalset``: :func:`main` under ``main_guard``
    (``--help``, one-line errors)."""
    main_guard(main, USAGE)


if __name__ == "__main__":
    cli()
