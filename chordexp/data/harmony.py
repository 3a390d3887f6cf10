"""Chord progressions in a realistic harmonic language, drawn from a generator.

A song's chords are not independent draws: they move within a key (diatonic, mostly
functional steps such as ii -> V -> I), borrow from the parallel mode, tonicise with
secondary dominants, repeat in loops, and change on beats at the song's harmonic
rhythm. Real pop is about 60-70 % plain major/minor triads by duration; sevenths,
suspensions and extended colours fill most of the rest; inversions are ~10 %.
Everything is drawn from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from chordexp.chords import CHORD_INTERVALS, CHORD_TYPE_INDEX, NO_CHORD

Triple = Tuple[int, int, int]  # (chord_type, root, bass_note)

#: Scale degrees of each mode: (semitones above the tonic, base quality).
DEGREES: Dict[str, Tuple[Tuple[int, str], ...]] = {
    "major": ((0, "maj"), (2, "min"), (4, "min"), (5, "maj"), (7, "dom"), (9, "min"), (11, "dim")),
    "minor": ((0, "min"), (2, "dim"), (3, "maj"), (5, "min"), (7, "dom"), (8, "maj"), (10, "maj")),
}
#: Where each degree (0-based index into DEGREES) tends to go next: functional harmony.
MOVES: Dict[str, Tuple[Tuple[float, ...], ...]] = {
    #            I    ii   iii  IV   V    vi   vii
    "major": (
        (0.0, 1.0, 0.4, 2.5, 2.5, 2.0, 0.2),  # I
        (0.5, 0.0, 0.2, 0.6, 3.0, 0.3, 0.4),  # ii
        (0.4, 0.3, 0.0, 1.5, 0.5, 2.0, 0.1),  # iii
        (2.0, 0.8, 0.3, 0.0, 2.5, 0.8, 0.2),  # IV
        (3.0, 0.3, 0.3, 1.0, 0.0, 1.5, 0.1),  # V
        (0.8, 1.2, 0.5, 2.5, 1.5, 0.0, 0.1),  # vi
        (2.5, 0.1, 0.5, 0.2, 0.5, 0.6, 0.0),
    ),  # vii
    #            i    ii   III  iv   V    VI   VII
    "minor": (
        (0.0, 0.4, 1.5, 2.0, 1.5, 2.0, 2.0),
        (0.6, 0.0, 0.2, 0.3, 3.0, 0.2, 0.2),
        (0.8, 0.2, 0.0, 1.5, 0.5, 1.5, 1.5),
        (1.5, 0.6, 0.4, 0.0, 2.0, 0.8, 1.2),
        (3.0, 0.1, 0.3, 0.5, 0.0, 1.5, 0.2),
        (1.0, 0.5, 1.0, 1.5, 1.0, 0.0, 2.0),
        (1.5, 0.1, 1.5, 0.5, 0.5, 1.0, 0.0),
    ),
}
#: Colours of each base quality: (chord type, weight). The plain triad dominates.
COLOURS: Dict[str, Tuple[Tuple[str, float], ...]] = {
    "maj": (
        ("maj", 66.0),
        ("maj7", 8.0),
        ("sus4", 4.0),
        ("sus2", 3.0),
        ("maj(9)", 4.0),
        ("maj6", 3.0),
        ("5", 3.0),
        ("maj9", 2.0),
        ("maj6(9)", 1.5),
        ("maj13", 1.0),
        ("aug", 1.0),
        ("1", 0.5),
    ),
    "min": (
        ("min", 68.0),
        ("min7", 13.0),
        ("min6", 3.0),
        ("min(9)", 3.0),
        ("min9", 3.0),
        ("min11", 2.0),
        ("min13", 1.0),
        ("minmaj7", 1.0),
        ("5", 2.0),
    ),
    "dom": (
        ("maj", 38.0),
        ("7", 38.0),
        ("9", 6.0),
        ("13", 3.0),
        ("11", 2.0),
        ("sus4(b7)", 5.0),
        ("sus4", 3.0),
        ("7(b9)", 2.0),
        ("7(#9)", 2.0),
        ("aug(b7)", 1.0),
    ),
    "dim": (("dim", 55.0), ("dim7", 20.0), ("hdim7", 25.0)),
}
#: Beats per chord a song is built on, and how often songs use each.
HARMONIC_RHYTHMS = ((1, 0.05), (2, 0.25), (4, 0.45), (8, 0.25))


@dataclass(frozen=True)
class ChordEvent:
    """One chord (or N) of a song: ``beats`` long from ``start_beat``."""

    start_beat: float
    beats: float
    chord: Triple


@dataclass(frozen=True)
class SongPlan:
    """A song's harmony: key, tempo, meter and its chord events in beats."""

    tonic: int
    mode: str
    bpm: float
    beats_per_bar: int
    events: Tuple[ChordEvent, ...]

    @property
    def beat_seconds(self) -> float:
        return 60.0 / self.bpm

    def segments(self) -> List[Tuple[float, float, Triple]]:
        """``(start s, end s, triple)`` of every event."""
        b = self.beat_seconds
        return [(e.start_beat * b, (e.start_beat + e.beats) * b, e.chord) for e in self.events]


def _pick(rng: np.random.Generator, options: Sequence[Tuple[str, float]], scale_rare: float = 1.0) -> str:
    """One name from ``(name, weight)`` pairs; every option but the first is scaled."""
    weights = np.array([w if i == 0 else w * scale_rare for i, (_, w) in enumerate(options)])
    return options[int(rng.choice(len(options), p=weights / weights.sum()))][0]


def colour(rng: np.random.Generator, quality: str, root: int, rare: float, inversion_prob: float) -> Triple:
    """A chord of base ``quality`` on ``root``: coloured (seventh, sus, extension) and
    sometimes inverted (3rd, 5th or 7th in the bass)."""
    name = _pick(rng, COLOURS[quality], rare)
    chord_type = CHORD_TYPE_INDEX[name]
    bass = root
    core = [i for i in CHORD_INTERVALS[name] if 0 < i < 12]
    if core and rng.random() < inversion_prob:
        weights = np.array([3.0 if i in (3, 4) else 2.0 if i in (6, 7, 8) else 1.0 for i in core])
        bass = (root + core[int(rng.choice(len(core), p=weights / weights.sum()))]) % 12
    return chord_type, root % 12, bass % 12


def _loop(rng: np.random.Generator, mode: str, length: int) -> List[int]:
    """A walk of ``length`` scale degrees (0-based) starting on the tonic (mostly)."""
    degree = 0 if rng.random() < 0.75 else int(rng.choice([3, 5]))
    walk = [degree]
    moves = np.array(MOVES[mode])
    for _ in range(length - 1):
        weights = moves[degree]
        degree = int(rng.choice(7, p=weights / weights.sum()))
        walk.append(degree)
    return walk


def plan_song(rng: np.random.Generator, seconds: float, n_prob: float = 0.5) -> SongPlan:
    """A song plan covering at least ``seconds``: a key, a tempo, a loop of 2-8 chords
    repeated with variations (secondary dominants, borrowed chords, passing diminished
    chords), a harmonic rhythm of 1-8 beats, and sometimes ``N`` (an intro or a break)."""
    tonic = int(rng.integers(12))
    mode = "major" if rng.random() < 0.7 else "minor"
    bpm = float(rng.uniform(66.0, 168.0))
    beats_per_bar = 3 if rng.random() < 0.1 else 4
    beat_s = 60.0 / bpm
    rhythms, weights = zip(*HARMONIC_RHYTHMS)
    base = int(rng.choice(rhythms, p=np.array(weights) / sum(weights)))
    rare = float(np.exp(rng.normal(0.0, 0.8)))  # songs differ in how colourful they are
    inversion_prob = float(rng.uniform(0.0, 0.2))
    loop = _loop(rng, mode, int(rng.integers(2, 9)))
    total_beats = seconds / beat_s
    events: List[ChordEvent] = []
    beat = 0.0
    if rng.random() < n_prob * 0.6:  # an intro without harmony (count-in, drums alone)
        intro = float(beats_per_bar * int(rng.integers(1, 3)))
        events.append(ChordEvent(0.0, intro, (NO_CHORD, 0, 0)))
        beat = intro
    position = 0
    while beat < total_beats:
        degree = loop[position % len(loop)]
        position += 1
        beats = float(base)
        if rng.random() < 0.15:  # the harmonic rhythm varies a little within a song
            beats = float(max(1, base // 2) if rng.random() < 0.5 else min(8, base * 2))
        if n_prob > 0 and rng.random() < 0.02 * n_prob:  # a break: the band stops
            events.append(ChordEvent(beat, float(beats_per_bar), (NO_CHORD, 0, 0)))
            beat += beats_per_bar
            continue
        offset, quality = DEGREES[mode][degree]
        root = (tonic + offset) % 12
        if mode == "major" and degree == 3 and rng.random() < 0.08:  # borrowed iv
            quality = "min"
        if rng.random() < 0.08 and beats >= 2:  # tonicise: the next chord's dominant first
            next_root = (tonic + DEGREES[mode][loop[position % len(loop)]][0]) % 12
            half = beats / 2
            events.append(ChordEvent(beat, half, colour(rng, "dom", (next_root + 7) % 12, rare, inversion_prob)))
            events.append(ChordEvent(beat + half, half, colour(rng, quality, root, rare, inversion_prob)))
            beat += beats
            continue
        if rng.random() < 0.04:  # borrowed bVII or bVI
            root, quality = (tonic + (10 if rng.random() < 0.5 else 8)) % 12, "maj"
        if rng.random() < 0.03:  # a passing diminished chord a semitone below
            events.append(ChordEvent(beat, beats, colour(rng, "dim", (root + 11) % 12, rare, 0.0)))
            beat += beats
            continue
        events.append(ChordEvent(beat, beats, colour(rng, quality, root, rare, inversion_prob)))
        beat += beats
    return SongPlan(tonic, mode, bpm, beats_per_bar, tuple(_merge_repeats(events)))


def _merge_repeats(events: List[ChordEvent]) -> List[ChordEvent]:
    """Adjacent events with the same chord are one chord (as an annotator writes it)."""
    merged: List[ChordEvent] = []
    for event in events:
        if merged and merged[-1].chord == event.chord:
            last = merged[-1]
            merged[-1] = ChordEvent(last.start_beat, last.beats + event.beats, last.chord)
        else:
            merged.append(event)
    return merged
