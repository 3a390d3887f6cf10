"""What the clean and the band songs of the evaluation set share: the progressions, chord
events and MIDI notes, voicings, transposition, the split's seeds and the reference labels.

Chord times are exact: they are the MIDI file's own beat times under its tempo
(``TICKS_PER_BEAT`` ticks a beat), so the ``.lab`` a song gets needs no alignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Protocol, Tuple

import mido

from chordexp.chords import CHORD_INTERVALS, CHORD_TYPES, format_label, parse_label
from chordexp.errors import UsageError

TICKS_PER_BEAT = 480
BEATS_PER_BAR = 4

#: Progressions written in C major or A minor (transposed per song), and the chord
#: lengths in beats they are played with.
PROGRESSIONS: Dict[str, Tuple[str, Tuple[int, ...]]] = {
    "pop_axis": ("C:maj G:maj A:min F:maj", (4, 2)),
    "canon": ("C:maj G:maj/3 A:min E:min/5 F:maj C:maj/3 F:maj G:maj", (2, 4)),
    "doo_wop": ("C:maj A:min F:maj G:7", (4,)),
    "descending_bass": ("C:maj C:maj7/7 A:min A:min7/b7 F:maj C:maj/3 D:min7 G:7", (2, 4)),
    "secondary_dominants": ("C:maj E:7/3 A:min C:7/b7 F:maj F#:dim7 C:maj/5 G:7", (2, 4)),
    "diatonic_circle": ("C:maj F:maj B:dim E:min A:min D:min G:7 C:maj", (2, 4)),
    "augmented": ("C:maj C:aug C:maj6 C:7 F:maj F:min6 C:maj/5 G:7", (2, 4)),
    "sus": ("C:sus2 C:maj F:maj(9) G:sus4 G:maj", (4, 2)),
    "ii_v_i": ("D:min7 G:7 C:maj7 C:maj6", (4, 2)),
    "turnaround": ("C:maj7 A:7(b9) D:min9 G:13", (4, 2)),
    "rhythm_changes": ("C:maj6(9) A:min7 D:min7 G:9", (2, 4)),
    "neo_soul": ("C:maj9 A:min9 D:min11 G:sus4(b7) G:11", (4,)),
    "ballad": ("D:min13 G:13 C:maj13 C:maj6(9)", (4,)),
    "blues": ("C:7 F:9 C:7 C:7(#9) G:9 F:7 C:7 G:aug(b7)", (4,)),
    "rock": ("C:5 Bb:5 F:5 C:5 A:1 C:5", (4, 2)),
    "line_cliche": ("A:min A:minmaj7 A:min7 A:min6", (4,)),
    "minor_ii_v_i": ("B:hdim7 E:7(b9) A:min6 A:min(9)", (4, 2)),
    "andalusian": ("A:min G:maj F:maj E:7", (4, 2)),
    "minor_pop": ("A:min F:maj C:maj G:maj/3", (4,)),
    "passing_diminished": ("C:maj C#:dim7 D:min7 G:7", (4, 2)),
}
MINOR_PROGRESSIONS = {"line_cliche", "minor_ii_v_i", "andalusian", "minor_pop"}
DRUM_CHANNEL = 9


@dataclass
class ChordEvent:
    """A chord (or ``N``) from ``start`` for ``beats`` beats (integers)."""

    start: int
    beats: int
    label: str


Note = Tuple[int, int, int, int, int]  # start tick, end tick, pitch, velocity, channel
Segment = Tuple[float, float, str]


def transpose(label: str, semitones: int) -> str:
    if label == "N":
        return label
    root, chord_type, bass = parse_label(label)
    return format_label((root + semitones) % 12, chord_type, (bass + semitones) % 12)


#: Extra seed word of the dev split (test keeps the original ``[seed, index]`` streams).
DEV_TAG = 0xDE7
SPLITS = ("test", "dev")


def split_seed(words: List[int], split: str) -> List[int]:
    """Seed words of a split: dev appends DEV_TAG, so no dev song repeats a test song
    (a non-zero word: SeedSequence treats trailing zeros as absent)."""
    if split not in SPLITS:
        raise UsageError(f"split must be test or dev, got {split!r}")
    return words + ([DEV_TAG] if split == "dev" else [])


def merge_repeats(chords: List[ChordEvent]) -> List[ChordEvent]:
    """Adjacent N events become one (chords repeat on purpose: they are re-struck)."""
    merged: List[ChordEvent] = []
    for event in chords:
        if merged and event.label == "N" and merged[-1].label == "N":
            merged[-1].beats += event.beats
        else:
            merged.append(ChordEvent(event.start, event.beats, event.label))
    return merged


def voicing(label: str, low: int = 48) -> List[int]:
    """All the chord's tones as MIDI pitches, root in ``low..low+11``; for an inversion the
    tones below the bass tone move up an octave, so the bass tone is the lowest."""
    root, chord_type, bass = parse_label(label)
    base = low + (root - low) % 12
    pitches = [base + i for i in CHORD_INTERVALS[CHORD_TYPES[chord_type]]]
    if chord_type == CHORD_TYPES.index("1"):
        pitches = [base, base + 12]
    if bass != root:
        bass_pitch = next(p for p in pitches if p % 12 == bass)
        pitches = sorted(p + 12 if p < bass_pitch else p for p in pitches)
    return pitches


def bass_pitch(label: str) -> int:
    """The chord's bass note in the bass register, E1..D#2 (MIDI 28..39)."""
    return 28 + (parse_label(label)[2] - 28) % 12


def tempo_track(name: str, tempo_us: int, total_beats: float):
    """A type-1 MIDI file's first track: the song's name, tempo and 4/4 metre, ending with
    the song (a ``mido.MidiTrack``)."""
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("track_name", name=name, time=0))
    meta.append(mido.MetaMessage("set_tempo", tempo=tempo_us, time=0))
    meta.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    meta.append(mido.MetaMessage("end_of_track", time=beats_to_ticks(total_beats)))
    return meta


def beats_to_ticks(beats: float) -> int:
    return int(round(beats * TICKS_PER_BEAT))


class TimedSong(Protocol):
    """What :func:`song_segments` reads of a song (a clean ``Song`` or a ``BandSong``)."""

    chords: List[ChordEvent]

    @property
    def beat_seconds(self) -> float: ...

    @property
    def total_beats(self) -> int: ...


def song_segments(song: TimedSong, duration: Optional[float] = None) -> List[Segment]:
    """Reference segments in seconds: each chord event at its beat times; ``N`` from the
    last chord's end to ``duration`` (default: the MIDI file's end)."""
    beat = song.beat_seconds
    segments = [(e.start * beat, (e.start + e.beats) * beat, e.label) for e in song.chords]
    end = song.total_beats * beat if duration is None else duration
    last_end = segments[-1][1]
    if end > last_end:
        segments.append((last_end, end, "N"))
    return [(s, min(e, end), label) for s, e, label in segments if s < end]


class BeatTimeline:
    """Timing every song of the set shares (a mixin of the clean and band song
    dataclasses): ``tempo_us`` per beat, chords placed in beats, a tail after the last."""

    tempo_us: int
    chords: List[ChordEvent]
    tail_beats: int

    @property
    def beat_seconds(self) -> float:
        return self.tempo_us / 1e6

    @property
    def total_beats(self) -> int:
        return self.chords[-1].start + self.chords[-1].beats + self.tail_beats
