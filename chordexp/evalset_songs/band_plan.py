"""A band song's plan (``plan_band_song``): tempo, key, tuning, sections, the chord
timeline (pop progressions, some coloured; an uneven harmonic rhythm), the arrangement
(chord instruments, bass, lead, drums, their levels) and the mastering settings, all
drawn from ``(seed, split, index)`` alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from chordexp.chords import CHORD_TYPES, PITCH_NAMES, parse_label
from chordexp.errors import UsageError
from chordexp.evalset_songs.material import (
    BEATS_PER_BAR,
    DRUM_CHANNEL,
    MINOR_PROGRESSIONS,
    PROGRESSIONS,
    BeatTimeline,
    ChordEvent,
    merge_repeats,
    transpose,
)

#: Seed words: a band song draws from SeedSequence([seed, BAND_TAG, split id, index]), so
#: the test and dev songs (and the clean songs) never share a random stream. The split
#: ids are non-zero and precede the index: SeedSequence treats trailing zeros as absent.
BAND_TAG = 0xBA4D
SPLIT_IDS = {"test": 1, "dev": 2}
BEND_RANGE = 2  # semitones, set by RPN 0 on every channel before the bend
MAX_CENTS = 50.0

#: Pop progressions in C major / A minor (transposed per song): mostly triads, as in real pop.
POP_PROGRESSIONS: Dict[str, str] = {
    "axis": "C:maj G:maj A:min F:maj",
    "axis_minor": "A:min F:maj C:maj G:maj",
    "fifties": "C:maj A:min F:maj G:maj",
    "four_up": "C:maj F:maj A:min G:maj",
    "walkdown": "C:maj G:maj/3 A:min F:maj",
    "plagal": "F:maj C:maj G:maj A:min",
    "mixolydian": "C:maj Bb:maj F:maj C:maj",
    "rock_iv_v": "C:maj F:maj G:maj F:maj",
    "mediant": "C:maj E:min F:maj G:maj",
    "royal_road": "F:maj G:maj E:min A:min",
    "minor_vamp": "A:min G:maj F:maj G:maj",
    "minor_circle": "A:min D:min G:maj C:maj",
    "minor_epic": "A:min F:maj D:min E:maj",
    "borrowed_iv": "C:maj E:maj F:maj F:min",
    "flat_three": "C:maj Eb:maj F:maj C:maj",
    "pop_punk": "C:maj G:maj D:min F:maj",
    "ballad": "C:maj E:min/5 A:min F:maj C:maj/5 G:maj",
    "dorian": "A:min D:maj A:min D:maj",
}
MINOR_POP = {"axis_minor", "minor_vamp", "minor_circle", "minor_epic", "dorian"}
POP_SHARE = 0.75  # share of sections taken from POP_PROGRESSIONS (the rest: the jazzier PROGRESSIONS)
COLOUR_SHARE = 0.25  # share of pop triads played as a seventh, sus, added-note chord or inversion
#: What a coloured triad becomes (Harte quality[/bass]), with weights.
MAJ_COLOURS = (("maj7", 3), ("maj/3", 2), ("maj/5", 1), ("sus4", 2), ("sus2", 1), ("maj(9)", 1), ("maj6", 1))
MIN_COLOURS = (("min7", 4), ("min/b3", 1), ("min(9)", 1), ("min9", 1), ("min11", 1), ("min6", 1))

#: Chord-instrument styles: family, General MIDI programs (0-based), pattern.
CHORD_STYLES: Dict[str, Tuple[str, Tuple[int, ...], str]] = {
    "piano comping": ("piano", (0, 1, 2, 4, 5), "comp"),
    "piano ballad": ("piano", (0, 1), "ballad"),
    "guitar strums": ("guitar", (24, 25, 27), "strum"),
    "guitar picking": ("guitar", (24, 25, 26, 27), "pick"),
    "organ": ("organ", (16, 17, 18), "sustain"),
    "pad": ("pad", (48, 49, 50, 88, 89, 91, 94), "sustain"),
    "arpeggio": ("keys", (0, 4, 5, 46, 11), "arpeggio"),
}
RHYTHMIC_STYLES = ("piano comping", "piano ballad", "guitar strums")
BASS_PROGRAMS = (32, 33, 34, 35, 38)
LEAD_PROGRAMS = (53, 54, 85, 65, 66, 73, 71, 56, 40, 68, 22)  # voice-like leads: oohs, synth voice, sax, ...
DRUM_KITS = (0, 0, 0, 8, 16, 24, 32, 40)  # Standard (most), Room, Power, Electronic, Jazz, Brush


@dataclass
class BandPart:
    """One instrument: its role (chords, bass, melody, drums), program, pattern, MIDI
    channel, its level in the mix (dB relative to the lead melody) and where it plays."""

    role: str
    style: str
    program: int
    pattern: str
    channel: int
    level_db: float
    sections: str = "all"  # "all" or "chorus" (enters in the choruses only)
    pan: int = 64


@dataclass
class Section:
    name: str  # count-in, intro, verse, chorus, break, ending
    start: int  # beats
    beats: int
    progression: str = ""


@dataclass
class BandSong(BeatTimeline):
    name: str
    split: str
    tempo_us: int
    key: int  # tonic pitch class of the song
    mode: str  # major or minor
    tuning_cents: float  # the exact offset the pitch bend applies
    pitch_bend: int  # -8192..8191 under BEND_RANGE semitones
    progressions: Dict[str, str]  # section -> name and labels (in the song's key)
    sections: List[Section]
    chords: List[ChordEvent]
    parts: List[BandPart]
    groove: str
    drum_kit: int
    mastering: Dict[str, float]
    tail_beats: int = 4
    seed: List[int] = field(default_factory=list)

    def part(self, role: str) -> BandPart:
        return next(p for p in self.parts if p.role == role)

    def section_at(self, beat: float) -> Section:
        return next(s for s in reversed(self.sections) if s.start <= beat)


def band_seed(seed: int, split: str, index: int) -> List[int]:
    if split not in SPLIT_IDS:
        raise UsageError(f"split must be one of {', '.join(SPLIT_IDS)}, got {split!r}")
    return [seed, BAND_TAG, SPLIT_IDS[split], index]


def _weighted(rng: np.random.Generator, options: Sequence[Tuple[str, float]]) -> str:
    weights = np.array([w for _, w in options], dtype=float)
    return options[int(rng.choice(len(options), p=weights / weights.sum()))][0]


def _colour(labels: List[str], rng: np.random.Generator) -> List[str]:
    """Some triads of a pop progression become sevenths, sus, added-note chords or
    inversions (once per song, so every repeat of the progression sounds the same)."""
    out = []
    for label in labels:
        root, chord_type, bass = parse_label(label)
        quality = CHORD_TYPES[chord_type]
        if bass != root or quality not in ("maj", "min") or rng.random() >= COLOUR_SHARE:
            out.append(label)
            continue
        options = list(MAJ_COLOURS if quality == "maj" else MIN_COLOURS)
        if quality == "maj" and root == 7:  # the dominant: a 7th chord is the usual colour
            options.append(("7", 6))
        out.append(f"{PITCH_NAMES[root]}:{_weighted(rng, options)}")
    return out


def _progression(rng: np.random.Generator, avoid: str = "") -> Tuple[str, List[str], bool]:
    """-> (name, labels in C major / A minor, minor?) drawn from the pop or the jazzier set."""
    if rng.random() < POP_SHARE:
        names = [n for n in POP_PROGRESSIONS if n != avoid]
        name = str(rng.choice(names))
        return name, _colour(POP_PROGRESSIONS[name].split(), rng), name in MINOR_POP
    names = [n for n in PROGRESSIONS if n != avoid]
    name = str(rng.choice(names))
    return name, PROGRESSIONS[name][0].split(), name in MINOR_PROGRESSIONS


def _chord_beats(rng: np.random.Generator, beat: float, chords_in_pass: int) -> int:
    """Harmonic rhythm of a section: 2, 4 or 8 beats a chord, lasting 1-6.5 s."""
    options = [(2, 0.3), (4, 0.5), (8, 0.2 if chords_in_pass <= 4 else 0.05)]
    fitting = [(b, w) for b, w in options if 1.0 <= b * beat <= 6.5] or [(4, 1.0)]
    return int(_weighted(rng, [(str(b), w) for b, w in fitting]))


def plan_band_song(index: int, seed: int, split: str = "test", seconds: Optional[float] = None) -> BandSong:
    """A band song's tempo, key, tuning, sections, chord timeline, arrangement and
    mastering, from ``(seed, split, index)`` alone; ``seconds`` is its rough length
    (default 54-64 s)."""
    words = band_seed(seed, split, index)
    rng = np.random.default_rng(words)
    bpm = int(rng.integers(70, 161))
    tempo_us = round(60e6 / bpm)
    beat = tempo_us / 1e6
    transposition = int(rng.integers(12))
    target = float(seconds) if seconds else float(rng.uniform(54, 64))
    pitch_bend = int(np.clip(round(rng.uniform(-MAX_CENTS, MAX_CENTS) / (100 * BEND_RANGE) * 8192), -8192, 8191))

    verse_name, verse, minor = _progression(rng)
    chorus_name, chorus, _ = _progression(rng, avoid=verse_name)
    rhythm = {"verse": _chord_beats(rng, beat, len(verse)), "chorus": _chord_beats(rng, beat, len(chorus))}
    labels = {"verse": verse, "chorus": chorus}

    # Sections, then the chords of each pass through its progression: (label, beats, section, pass start).
    count_in = BEATS_PER_BAR * int(rng.choice([1, 2], p=[0.6, 0.4]))
    order = (["intro"] if rng.random() < 0.5 else []) + ["verse", "chorus"]
    order += ["break"] if rng.random() < 0.35 else []
    order += ["verse", "chorus", "chorus", "verse", "chorus", "chorus"]
    plan: List[Tuple[str, int, str, bool]] = []
    for section in order:
        if section == "break":
            plan.append(("N", BEATS_PER_BAR, "break", True))
            continue
        progression = "verse" if section == "intro" else section
        per_chord = rhythm[progression]
        pass_beats = per_chord * len(labels[progression])
        passes = 1 if section == "intro" else max(1, round(8 * BEATS_PER_BAR / pass_beats))
        for _ in range(passes):
            for k, label in enumerate(labels[progression]):
                plan.append((label, per_chord, section, k == 0))
    plan = _vary_harmonic_rhythm(plan, rng)

    chords = [ChordEvent(0, count_in, "N")]
    sections = [Section("count-in", 0, count_in)]
    position = count_in
    for label, beats, section, _ in plan:
        if position * beat + beats * beat > target - 4 * beat and len(chords) > 3:
            break
        if sections[-1].name != section:
            sections.append(
                Section(
                    section,
                    position,
                    0,
                    "" if section == "break" else (verse_name if section in ("intro", "verse") else chorus_name),
                )
            )
        chords.append(ChordEvent(position, beats, transpose(label, transposition)))
        position += beats
    if chords[-1].label == "N":  # never end on a break
        position = chords.pop().start
        sections.pop()
    tonic = transpose("A:min" if minor else "C:maj", transposition)  # end on the plain tonic triad
    ending = BEATS_PER_BAR if BEATS_PER_BAR * beat >= 2.5 else 2 * BEATS_PER_BAR
    chords.append(ChordEvent(position, ending, tonic))
    sections.append(Section("ending", position, ending, tonic))
    for current, following in zip(sections, sections[1:] + [None]):
        current.beats = (following.start if following else position + ending) - current.start

    key = (transposition + (9 if minor else 0)) % 12
    song = BandSong(
        name=f"band{'' if split == 'test' else split}{index:02d}",
        split=split,
        tempo_us=tempo_us,
        key=key,
        mode="minor" if minor else "major",
        tuning_cents=pitch_bend * 100 * BEND_RANGE / 8192,
        pitch_bend=pitch_bend,
        progressions={
            "verse": f"{verse_name}: {' '.join(transpose(x, transposition) for x in verse)}",
            "chorus": f"{chorus_name}: {' '.join(transpose(x, transposition) for x in chorus)}",
        },
        sections=sections,
        chords=merge_repeats(chords),
        parts=_arrangement(rng, bpm),
        groove=_groove(rng, bpm),
        drum_kit=int(rng.choice(DRUM_KITS)),
        mastering={
            "bus_compressor_ratio": round(float(rng.uniform(1.5, 4.0)), 2),
            "bus_compressor_threshold_db": round(float(rng.uniform(-14, -6)), 1),  # below the loud frames
            "attack_ms": round(float(rng.uniform(5, 25)), 1),
            "release_ms": round(float(rng.uniform(80, 250)), 1),
            "tilt_db_per_decade": round(float(rng.uniform(-3, 2.5)), 2),
            "highpass_hz": round(float(rng.uniform(25, 60)), 1),
            "lowpass_hz": round(float(rng.uniform(8000, 16000)), -1),
            "loudness_dbfs": round(float(rng.uniform(-17, -12)), 1),
        },
        tail_beats=max(2, math.ceil(1.5 / beat)),
        seed=words,
    )
    song.part("drums").program = song.drum_kit  # on channel 10 the program picks the kit
    return song


def _vary_harmonic_rhythm(plan: List[Tuple[str, int, str, bool]], rng: np.random.Generator):
    """Real harmonic rhythm is uneven: a pass may end with a 1-2 beat dominant of the
    next chord, and a chord may arrive a beat early (a push)."""
    out: List[List[Any]] = [list(item) for item in plan]
    i = 0
    while i < len(out) - 1:
        label, beats, section, _ = out[i]
        following = out[i + 1]
        if following[3] and following[0] != "N" and label != "N" and beats >= 2 and rng.random() < 0.3:
            k = 1 if beats == 2 else int(rng.choice([1, 2]))
            target_root = parse_label(following[0])[0]
            dominant = f"{PITCH_NAMES[(target_root + 7) % 12]}:{'7' if rng.random() < 0.6 else 'maj'}"
            out[i][1] = beats - k
            out.insert(i + 1, [dominant, k, section, False])
            i += 2
            continue
        if (
            label != "N"
            and following[0] != "N"
            and beats >= 3
            and following[1] < 8
            and following[2] == section
            and rng.random() < 0.1
        ):
            out[i][1] -= 1
            out[i + 1][1] += 1
        i += 1
    return [tuple(item) for item in out]


def _arrangement(rng: np.random.Generator, bpm: int) -> List[BandPart]:
    """2-3 chord instruments in different styles (the first rhythmic), bass, lead, drums."""
    first = str(rng.choice(RHYTHMIC_STYLES))
    others = [s for s in CHORD_STYLES if CHORD_STYLES[s][0] != CHORD_STYLES[first][0]]
    count = int(rng.choice([2, 3]))
    styles = [first] + [str(s) for s in rng.choice(others, size=count - 1, replace=False)]
    pans = [64, 30, 98] if count == 3 else [44, 84]
    parts = []
    for channel, style in enumerate(styles):
        family, programs, pattern = CHORD_STYLES[style]
        sections = "all" if channel == 0 or rng.random() < 0.5 else "chorus"
        parts.append(
            BandPart(
                "chords",
                style,
                int(rng.choice(programs)),
                pattern,
                channel,
                round(float(rng.uniform(-9, -5)) - (1.0 if count == 3 else 0.0), 1),
                sections,
                pans[channel],
            )
        )
    if bpm < 90:
        bass_pattern = str(rng.choice(["sustain", "root_fifth", "pop"]))
    elif bpm > 130:
        bass_pattern = str(rng.choice(["eighths", "root_fifth", "octaves"]))
    else:
        bass_pattern = str(rng.choice(["eighths", "pop", "root_fifth", "octaves"]))
    parts.append(
        BandPart("bass", "bass", int(rng.choice(BASS_PROGRAMS)), bass_pattern, 3, round(float(rng.uniform(-6, -2)), 1))
    )
    parts.append(
        BandPart("melody", "lead", int(rng.choice(LEAD_PROGRAMS)), "vocal", 4, 0.0, pan=int(rng.integers(56, 73)))
    )
    parts.append(BandPart("drums", "drums", 0, "kit", DRUM_CHANNEL, round(float(rng.uniform(-5, -1)), 1)))
    return parts


def _groove(rng: np.random.Generator, bpm: int) -> str:
    if bpm < 90:
        return _weighted(rng, [("ballad", 2), ("pop16", 2), ("halftime", 1)])
    if bpm > 130:
        return _weighted(rng, [("rock", 3), ("four_on_floor", 1), ("halftime", 1)])
    return _weighted(rng, [("rock", 3), ("pop16", 3), ("four_on_floor", 1), ("funk", 1.5), ("ballad", 1.5)])
