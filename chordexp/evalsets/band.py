"""Band songs for the evaluation set (``python -m chordexp.evalset style=band``).

The clean songs of :mod:`chordexp.evalset` are one or two instruments playing chords in
full; real recordings are not like that, so scores on them flatter a model. A band song
is closer to a pop record: ~60 s at 70-160 bpm in a key, a verse and a chorus
progression (mostly major and minor triads, like real pop; the rest sevenths, sus,
added and extended chords and inversions), chords changing on beats after 1-8 beats;
2-3 chord instruments in different playing styles (piano comping, guitar strums or
picking, organ or pad sustains, arpeggios), a bass line on the chord's bass note with
passing notes, a General MIDI drum kit on channel 10 (grooves, fills, crashes), and a
lead melody at a vocal-like level with passing and neighbour notes on weak beats. The
whole band is detuned off A440 by up to +-50 cents (a pitch bend on every channel at
t=0 under an explicit 2-semitone bend range); each instrument is rendered alone by
FluidSynth and the stems are mixed at set levels, then mastered in numpy (bus
compression, EQ tilt, a codec-like low-pass at 8-16 kHz, a high-pass, loudness and a
soft limiter). ``N`` covers the drums-alone count-in, drum breaks and the ringing
end. Labels are exact: the MIDI file's own beat times under its constant tempo.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import mido
import numpy as np

from chordexp.chords import CHORD_TYPES, PITCH_NAMES, chord_pitch_classes, parse_label
from chordexp.errors import UsageError
from chordexp.evalsets.material import (
    BEATS_PER_BAR,
    DRUM_CHANNEL,
    MINOR_PROGRESSIONS,
    PROGRESSIONS,
    TICKS_PER_BEAT,
    BeatTimeline,
    ChordEvent,
    Note,
    beats_to_ticks,
    merge_repeats,
    song_segments,
    transpose,
    voicing,
)
from chordexp.evalsets.rendering import LICENCE_SUMMARIES, RenderError, fluidsynth_version, licence_text, run_fluidsynth
from chordexp.labfile import write_lab

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

#: One-bar drum grooves on a 16th grid: {GM drum note: positions}.
KICK, SNARE, SIDE_STICK, CLAP, HAT, PEDAL_HAT, OPEN_HAT, RIDE, CRASH = 36, 38, 37, 39, 42, 44, 46, 51, 49
TOMS = (50, 48, 47, 45, 43, 41)
GROOVES: Dict[str, Dict[int, Tuple[int, ...]]] = {
    "rock": {KICK: (0, 8, 10), SNARE: (4, 12), HAT: (0, 2, 4, 6, 8, 10, 12, 14)},
    "pop16": {KICK: (0, 6, 8), SNARE: (4, 12), HAT: tuple(range(16))},
    "halftime": {KICK: (0, 3, 10), SNARE: (8,), HAT: (0, 2, 4, 6, 8, 10, 12, 14)},
    "four_on_floor": {KICK: (0, 4, 8, 12), CLAP: (4, 12), HAT: (0, 4, 8, 12), OPEN_HAT: (2, 6, 10, 14)},
    "ballad": {KICK: (0, 10), SIDE_STICK: (4, 12), RIDE: (0, 2, 4, 6, 8, 10, 12, 14)},
    "funk": {KICK: (0, 3, 10), SNARE: (4, 12, 7, 15), HAT: tuple(range(16))},
}
GHOSTS = {("funk", SNARE): (7, 15)}  # quiet snare notes


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


# --------------------------------------------------------------------------- planning


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


# --------------------------------------------------------------------------- notes


class Player:
    """Notes of one part with a little human timing: onsets land 0-12 ms late (never
    before their chord), velocities vary."""

    def __init__(self, song: BandSong, part: BandPart, rng: np.random.Generator):
        self.song, self.part, self.rng = song, part, rng
        self.ms = TICKS_PER_BEAT / (song.tempo_us / 1000)  # ticks per millisecond
        self.notes: List[Note] = []

    def play(
        self,
        on_beat: float,
        off_beat: float,
        pitch: int,
        velocity: float,
        late_ms: float = 12.0,
        not_after: Optional[float] = None,
    ) -> None:
        on = beats_to_ticks(on_beat) + int(self.rng.uniform(0, late_ms) * self.ms)
        off = beats_to_ticks(off_beat if not_after is None else min(off_beat, not_after))
        if off - on >= 10:
            vel = int(np.clip(velocity + self.rng.integers(-6, 7), 20, 127))
            self.notes.append((on, off, int(pitch), vel, self.part.channel))


def _plays(song: BandSong, part: BandPart, event: ChordEvent) -> bool:
    section = song.section_at(event.start).name
    if event.label == "N" or section in ("count-in", "break"):
        return False
    return part.sections == "all" or section in ("chorus", "ending")


def _close_voicing(label: str, low: int, previous: Optional[List[int]]) -> List[int]:
    """The chord's tones in close position within ``low..low+20`` (extensions above an
    octave stay there), the inversion nearest the previous voicing: smooth voice leading."""
    root, chord_type, _ = parse_label(label)
    full = voicing(f"{PITCH_NAMES[root]}:{CHORD_TYPES[chord_type]}", low=low)
    if len(full) > 4 or previous is None:
        return full
    candidates = []
    for k in range(len(full)):
        rotated = full[k:] + [p + 12 for p in full[:k]]
        for shift in (-12, 0):
            cand = [p + shift for p in rotated]
            if cand[0] >= low - 5 and cand[-1] <= low + 20:
                candidates.append(cand)
    centre = float(np.mean(previous))
    return min(candidates or [full], key=lambda c: abs(float(np.mean(c)) - centre) + 0.1 * (c[-1] - c[0]))


def _guitar_voicing(label: str) -> List[int]:
    """Up to six strings: from the chord's bass note in E2..D#3 upward through its tones,
    at least three semitones apart (open-position-like shapes)."""
    root, chord_type, bass = parse_label(label)
    tones = set(chord_pitch_classes(root, chord_type))
    lowest = 40 + (bass - 40) % 12
    notes = [lowest]
    for p in range(lowest + 3, lowest + 26):
        if p % 12 in tones and p - notes[-1] >= 3 and len(notes) < 6:
            notes.append(p)
    missing = [pc for pc in tones if pc not in {n % 12 for n in notes}]
    for pc in missing:  # an extension that did not fit: on top
        notes.append(notes[-1] + 1 + (pc - notes[-1] - 1) % 12)
    return notes


COMP_RHYTHMS = ((0, 3, 4, 6), (0, 2, 4, 6), (0, 3, 6), (0, 4), (0, 1.5, 3, 4.5, 6))  # 8ths in a bar
STRUM_RHYTHMS = ((0, 2, 3, 5, 6, 7), (0, 2, 4, 6), tuple(range(8)), (0, 3, 4, 6, 7))


def chord_notes(song: BandSong, part: BandPart, rng: np.random.Generator) -> List[Note]:
    """A chord instrument's notes; every note ends by its chord's end."""
    player = Player(song, part, rng)
    base_velocity = float(rng.integers(70, 96))
    low = int(rng.choice([50, 52, 55])) if part.pattern != "sustain" else int(rng.choice([48, 52, 55]))
    rhythm = COMP_RHYTHMS[int(rng.integers(len(COMP_RHYTHMS)))]
    strum = STRUM_RHYTHMS[int(rng.integers(len(STRUM_RHYTHMS)))]
    sixteenths = 60e6 / song.tempo_us < 100 and rng.random() < 0.5
    previous: Optional[List[int]] = None
    for event in song.chords:
        if not _plays(song, part, event):
            continue
        start, end = event.start, event.start + event.beats
        pitches = _close_voicing(event.label, low, previous)
        previous = pitches
        if part.pattern == "sustain":
            for p in pitches:
                player.play(start, end - 0.05, p, base_velocity - 10, late_ms=20)
        elif part.pattern in ("comp", "ballad"):
            hits = [
                start + b + k / 2
                for b in range(0, event.beats, BEATS_PER_BAR)
                for k in (rhythm if part.pattern == "comp" else (0, 4))
            ]
            hits = [h for h in hits if h < end] or [start]
            for i, hit in enumerate(hits):
                off = hits[i + 1] if i + 1 < len(hits) else end
                if part.pattern == "comp":
                    off = min(off, hit + 0.9)
                accent = 8 if (hit - start) % 2 == 0 else 0
                for p in pitches:
                    player.play(hit, off - 0.02, p, base_velocity + accent - 6)
                if part.pattern == "ballad" and (hit - start) % BEATS_PER_BAR == 0:  # left hand: the bass note
                    bass = parse_label(event.label)[2]
                    player.play(hit, off, 36 + (bass - 36) % 12, base_velocity - 4)
                    player.play(hit, off, 48 + (bass - 48) % 12, base_velocity - 10)
        elif part.pattern == "strum":
            shape = _guitar_voicing(event.label)
            hits = [start + b + k / 2 for b in range(0, event.beats, BEATS_PER_BAR) for k in strum]
            hits = [h for h in hits if h < end] or [start]
            for i, hit in enumerate(hits):
                off = hits[i + 1] if i + 1 < len(hits) else end
                up = (hit * 2) % 2 == 1  # off-beat eighths: up-strokes, lighter, top strings
                strings = shape[-4:][::-1] if up else shape
                spread = rng.uniform(6, 18)
                for k, p in enumerate(strings):
                    player.play(
                        hit + k * spread * 1e-3 / song.beat_seconds,
                        off,
                        p,
                        base_velocity - (12 if up else 0) - 2 * k,
                        late_ms=4,
                        not_after=end,
                    )
        elif part.pattern in ("pick", "arpeggio"):
            tones = _guitar_voicing(event.label) if part.pattern == "pick" else pitches + [pitches[0] + 12]
            if part.pattern == "pick":
                order = [0, 2, 1, 3, 2, 4, 1, 3]
            else:
                order = list(range(len(tones))) + list(range(len(tones) - 2, 0, -1))
            step = 0.25 if sixteenths else 0.5
            beat, k = float(start), 0
            while beat < end - 1e-9:
                p = tones[order[k % len(order)] % len(tones)]
                player.play(
                    beat,
                    beat + 4 * step,
                    p,
                    base_velocity - (0 if (beat - start) % 1 == 0 else 10),
                    late_ms=8,
                    not_after=end,
                )
                beat += step
                k += 1
        else:
            raise ValueError(f"unknown pattern {part.pattern!r}")
    return player.notes


def _scale(song: BandSong) -> List[int]:
    tonic = song.key if song.mode == "major" else (song.key + 3) % 12  # the relative major's scale
    return sorted((tonic + s) % 12 for s in (0, 2, 4, 5, 7, 9, 11))


def bass_notes(song: BandSong, part: BandPart, rng: np.random.Generator) -> List[Note]:
    """The chord's bass note on every chord onset; fifths, octaves and repeated notes
    in between; and, before some chord changes, a passing note a step from the next
    bass note on the last (weak) eighth or beat."""
    player = Player(song, part, rng)
    scale = set(_scale(song))
    played = [e for e in song.chords if _plays(song, part, e)]
    previous = 36
    for i, event in enumerate(played):
        root, _, bass = parse_label(event.label)
        pitch = min((b for b in range(28, 48) if b % 12 == bass), key=lambda b: abs(b - previous))
        previous = pitch
        fifth = pitch + (root + 7 - bass) % 12
        start, end = event.start, event.start + event.beats
        if part.pattern == "sustain":
            steps = [(0.0, float(min(event.beats, 4)), pitch)] + [
                (float(b), float(min(4, event.beats - b)), pitch) for b in range(4, event.beats, 4)
            ]
        elif part.pattern == "eighths":
            steps = [(k / 2, 0.45, pitch) for k in range(2 * event.beats)]
        elif part.pattern == "octaves":
            steps = [(k / 2, 0.4, pitch + 12 * (k % 2)) for k in range(2 * event.beats)]
        elif part.pattern == "root_fifth":
            steps = [(float(b), 0.9, pitch if b % 2 == 0 else fifth) for b in range(event.beats)]
        else:  # pop: 1, 2&, 3, 4 of each bar
            steps = [
                (b + x, 0.9 if x != 1.5 else 0.45, pitch)
                for b in range(0, event.beats, 4)
                for x in (0, 1.5, 2, 3)
                if b + x < event.beats
            ]
        following = played[i + 1] if i + 1 < len(played) else None
        if following is not None and following.start == end and event.beats >= 2 and rng.random() < 0.5:
            target = min(
                (b for b in range(28, 48) if b % 12 == parse_label(following.label)[2]), key=lambda b: abs(b - pitch)
            )
            candidates = [target + d for d in (-2, -1, 1, 2) if (target + d) % 12 in scale or abs(d) == 1]
            approach = int(rng.choice(candidates))
            length = 0.5 if part.pattern in ("eighths", "octaves") or rng.random() < 0.5 else 1.0
            steps = [s for s in steps if s[0] < event.beats - length] + [(event.beats - length, length * 0.9, approach)]
        for offset, length, p in steps:
            accent = 10 if offset == 0 else (4 if offset % 1 == 0 else 0)
            player.play(start + offset, start + offset + length, p, 88 + accent, late_ms=6, not_after=end)
    return player.notes


def drum_notes(song: BandSong, part: BandPart, rng: np.random.Generator) -> List[Note]:
    """The groove under every chord; a count-in (side stick or hi-hat quarters, or two
    bars of groove); a fill in the last bar before each new section and a crash on its
    first beat; a drums-alone bar in breaks; a crash on the final chord, then silence."""
    player = Player(song, part, rng)
    groove = GROOVES[song.groove]
    ride_in_chorus = rng.random() < 0.5
    fill_beats = int(rng.choice([1, 2, 4], p=[0.3, 0.5, 0.2]))
    count_in = song.sections[0]

    def bar(first_beat: int, beats: int, chorus: bool) -> None:
        for position in range(4 * beats):
            b = first_beat + position / 4
            for drum, positions in groove.items():
                if position % 16 not in positions:
                    continue
                if drum == HAT and chorus and ride_in_chorus:
                    drum = RIDE
                ghost = position % 16 in GHOSTS.get((song.groove, drum), ())
                accent = 15 if position % 4 == 0 else 0
                velocity = 35 if ghost else (95 if drum in (KICK, SNARE, CLAP) else 60) + accent
                player.play(b, b + 0.25, drum, velocity, late_ms=5)

    def fill(last_beat: int, beats: int) -> None:
        hits = np.arange(last_beat - beats, last_beat, 0.25 if 60e6 / song.tempo_us < 130 else 0.5)
        for k, b in enumerate(hits):
            drum = SNARE if k < len(hits) // 3 else TOMS[min(len(TOMS) - 1, k * len(TOMS) // len(hits))]
            player.play(float(b), float(b) + 0.25, drum, 70 + 30 * k / len(hits), late_ms=5)
        player.play(last_beat - beats, last_beat - beats + 0.25, KICK, 90, late_ms=3)

    if count_in.beats == BEATS_PER_BAR:
        click = int(rng.choice([SIDE_STICK, HAT, PEDAL_HAT]))
        for b in range(count_in.beats):
            player.play(b, b + 0.25, click, 80 if b else 95, late_ms=3)
    else:
        bar(0, count_in.beats - fill_beats, chorus=False)
        fill(count_in.beats, fill_beats)
    for section, following in zip(song.sections[1:], song.sections[2:] + [None]):
        end = section.start + section.beats
        if section.name == "ending":
            player.play(section.start, section.start + 1, CRASH, 110, late_ms=3)
            player.play(section.start, section.start + 0.5, KICK, 110, late_ms=3)
            continue
        body = max(0, section.beats - (fill_beats if following is not None else 0))
        if section.name == "break":
            bar(section.start, body, chorus=False)
        else:
            for first in range(section.start, section.start + body, BEATS_PER_BAR):
                bar(first, min(BEATS_PER_BAR, section.start + body - first), chorus=section.name == "chorus")
            player.play(section.start, section.start + 1, CRASH, 100, late_ms=3)
        fill(end, section.beats - body)
    return player.notes


def melody_notes(song: BandSong, part: BandPart, rng: np.random.Generator) -> List[Note]:
    """A sung-like line in 2-bar phrases with breaths: chord tones on strong beats (the
    chord's first beat, beats 1 and 3), and on weak eighths and beats often a scale step
    off the chord (a passing or neighbour note) that then resolves by step."""
    player = Player(song, part, rng)
    scale = _scale(song)
    low = int(rng.integers(57, 64))
    register = list(range(low, low + 15))
    rhythms = (
        (0, 2, 4, 6),
        (0, 1, 2, 4, 6),
        (0, 2, 3, 4, 6, 7),
        (1, 2, 4, 5, 6),
        (0, 3, 4, 6),
        (0, 2, 4),
        (2, 3, 4, 6),
        (0, 1, 2, 3, 4),
    )
    phrase_rhythms = [rhythms[int(rng.integers(len(rhythms)))] for _ in range(2)]
    previous = register[len(register) // 2]
    for event in song.chords:
        section = song.section_at(event.start).name
        if event.label == "N" or section in ("count-in", "break", "intro"):
            continue
        root, chord_type, _ = parse_label(event.label)
        tones = [p for p in register if p % 12 in set(chord_pitch_classes(root, chord_type))]
        passing = [p for p in register if p % 12 in scale and p not in tones]
        end = event.start + event.beats
        if section == "ending":
            player.play(event.start, end - 0.5, min(tones, key=lambda p: abs(p - previous)), 92, late_ms=15)
            continue
        onsets = []
        for b in range(event.start, end):
            bar_index, in_bar = divmod(b, BEATS_PER_BAR)
            if bar_index % 2 == 1 and in_bar == 3:
                continue  # the breath at the end of a two-bar phrase
            rhythm = phrase_rhythms[bar_index % 2]
            onsets += [b + x / 2 for x in rhythm if in_bar * 2 <= x < in_bar * 2 + 2]
        if event.start not in onsets and rng.random() < 0.7:
            onsets.insert(0, float(event.start))
        for i, onset in enumerate(onsets):
            off = onsets[i + 1] if i + 1 < len(onsets) and onsets[i + 1] - onset <= 2 else min(onset + 1.5, end)
            strong = onset == event.start or (onset % 2 == 0)
            if not strong and passing and rng.random() < 0.5:
                steps = [p for p in passing if 1 <= abs(p - previous) <= 2]
                pitch = int(rng.choice(steps)) if steps else min(tones, key=lambda p: abs(p - previous))
            else:
                near = sorted(tones, key=lambda p: abs(p - previous))[:3]
                pitch = int(near[0] if previous not in tones and abs(near[0] - previous) <= 2 else rng.choice(near))
            if pitch not in tones:
                off = min(off, onset + 1)  # a non-chord tone is short
            previous = pitch
            velocity = 96 if strong else 86
            player.play(onset, off - 0.04, pitch, velocity, late_ms=15, not_after=end)
    return player.notes


# --------------------------------------------------------------------------- MIDI


STEM_NOTES = {"chords": chord_notes, "bass": bass_notes, "melody": melody_notes, "drums": drum_notes}


def band_song_to_midi(song: BandSong):
    """The song as a type-1 ``mido.MidiFile``: a tempo track, then one track per part
    (``song.parts`` order). Every channel first gets bend range ``BEND_RANGE`` (RPN 0)
    and the song's pitch bend, so the whole band sounds ``tuning_cents`` off A440."""
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("track_name", name=song.name, time=0))
    meta.append(mido.MetaMessage("set_tempo", tempo=song.tempo_us, time=0))
    meta.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    meta.append(mido.MetaMessage("end_of_track", time=beats_to_ticks(song.total_beats)))
    midi.tracks.append(meta)
    for k, part in enumerate(song.parts):
        rng = np.random.default_rng(song.seed + [1, k])
        notes = STEM_NOTES[part.role](song, part, rng)
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=f"{part.role}: {part.style} ({part.pattern})", time=0))
        channel = part.channel
        setup = [mido.Message("program_change", channel=channel, program=part.program, time=0)]
        controls = [(7, 100), (10, part.pan), (91, int(rng.integers(25, 70))), (93, int(rng.integers(0, 30)))]
        if part.role == "melody":
            controls.append((1, int(rng.integers(25, 50))))  # vibrato
        controls += [(101, 0), (100, 0), (6, BEND_RANGE), (38, 0), (101, 127), (100, 127)]  # RPN 0, then null
        setup += [mido.Message("control_change", channel=channel, control=c, value=v, time=0) for c, v in controls]
        setup.append(mido.Message("pitchwheel", channel=channel, pitch=song.pitch_bend, time=0))
        track.extend(setup)
        events = []
        for start, end, pitch, velocity, ch in notes:
            events.append((start, 1, mido.Message("note_on", channel=ch, note=pitch, velocity=velocity)))
            events.append((end, 0, mido.Message("note_off", channel=ch, note=pitch, velocity=0)))
        events.sort(key=lambda e: (e[0], e[1], e[2].note))
        sounding: Dict[int, int]  # note -> how many note_ons of it are still sounding
        now, sounding = 0, {}
        for tick, _, message in events:  # a re-struck note ends the one still sounding
            count = sounding.get(message.note, 0)
            if message.type == "note_on":
                sounding[message.note] = count + 1
                if count:
                    track.append(
                        mido.Message("note_off", channel=channel, note=message.note, velocity=0, time=tick - now)
                    )
                    now = tick
            else:
                sounding[message.note] = count - 1
                if count > 1:
                    continue  # the note was re-struck: its own note_off came then
            track.append(message.copy(time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=max(0, beats_to_ticks(song.total_beats) - now)))
        midi.tracks.append(track)
    return midi


# --------------------------------------------------------------------------- audio


def render_stems(song: BandSong, midi, soundfont: Path, sample_rate: int, gap_seconds: float = 8.0) -> List[np.ndarray]:
    """Each part alone through the fluidsynth CLI -> float stereo arrays of one length.

    FluidSynth is linear, so the stems sum to the full render. Loading the SoundFont
    takes seconds, so the parts are laid one after another in a single MIDI file, each
    on its own channel, ``gap_seconds`` apart (releases and reverb die out in the gap),
    rendered once and cut apart; an event may move by one 64-sample block (1.5 ms)."""
    span_beats = song.total_beats + math.ceil(gap_seconds / song.beat_seconds)
    parts = midi.tracks[1:]
    meta = mido.MidiTrack([m for m in midi.tracks[0] if m.type != "end_of_track"])
    meta.append(mido.MetaMessage("end_of_track", time=beats_to_ticks(span_beats * len(parts))))
    layout = mido.MidiFile(type=1, ticks_per_beat=midi.ticks_per_beat, tracks=[meta])
    for k, track in enumerate(parts):
        shifted = mido.MidiTrack(m.copy() for m in track)
        shifted[0] = shifted[0].copy(time=shifted[0].time + beats_to_ticks(k * span_beats))
        layout.tracks.append(shifted)
    with tempfile.TemporaryDirectory() as tmp:
        midi_path = Path(tmp) / "stems.mid"
        layout.save(str(midi_path))
        audio, _ = run_fluidsynth(midi_path, soundfont, sample_rate, song.name)
    span = span_beats * song.beat_seconds * sample_rate
    length = int(round(span))
    audio = np.pad(audio, ((0, max(0, int(round(len(parts) * span)) + length - len(audio))), (0, 0)))
    return [audio[int(round(k * span)) : int(round(k * span)) + length] for k in range(len(parts))]


def _weighted_level_db(audio: np.ndarray, rate: int) -> float:
    """Loudness of a stem while it plays: RMS (after a 100 Hz high-pass, as ears weigh
    bass less) over the 50 ms frames within 30 dB of its loudest."""
    spectrum = np.fft.rfft(audio.mean(axis=1))
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    spectrum *= freqs**2 / (freqs**2 + 100.0**2)
    x = np.fft.irfft(spectrum, len(audio))
    hop = int(0.05 * rate)
    frames = np.sqrt(np.mean(x[: len(x) // hop * hop].reshape(-1, hop) ** 2, axis=1)) + 1e-12
    loud = frames[frames > frames.max() * 10 ** (-30 / 20)]
    return float(20 * np.log10(np.sqrt(np.mean(loud**2))))


def mix(stems: List[np.ndarray], levels_db: Sequence[float], rate: int) -> np.ndarray:
    """Each stem scaled so its loudness sits at its part's level (dB relative to the lead)."""
    out = np.zeros_like(stems[0], dtype=np.float64)
    for stem, level in zip(stems, levels_db):
        if np.abs(stem).max() < 1e-6:
            continue
        out += stem * 10 ** ((level - _weighted_level_db(stem, rate)) / 20)
    return out


def master(audio: np.ndarray, rate: int, settings: Dict[str, float]) -> np.ndarray:
    """Bus compression (linked stereo, RMS detector, attack/release smoothing), EQ: a
    tilt around 1 kHz, a high-pass and a steep codec-like low-pass (zero phase, in the
    frequency domain), then loudness and a soft limiter below 0 dBFS."""
    mono = audio.mean(axis=1)
    hop, window = 256, 1024
    padded = np.pad(mono, (window // 2, window // 2 + hop))
    frames = len(mono) // hop + 1
    power = np.array([np.mean(padded[i * hop : i * hop + window] ** 2) for i in range(frames)])
    level = 10 * np.log10(power + 1e-12)
    loud = np.percentile(level[level > level.max() - 40], 90)
    threshold = loud + settings["bus_compressor_threshold_db"] * 0.5
    ratio = settings["bus_compressor_ratio"]
    wanted = -np.maximum(level - threshold, 0) * (1 - 1 / ratio)
    attack = math.exp(-hop / (rate * settings["attack_ms"] / 1000))
    release = math.exp(-hop / (rate * settings["release_ms"] / 1000))
    gain = np.empty(frames)
    g = 0.0
    for i, w in enumerate(wanted):
        coefficient = attack if w < g else release
        g = coefficient * g + (1 - coefficient) * w
        gain[i] = g
    sample_gain = 10 ** (np.interp(np.arange(len(mono)), np.arange(frames) * hop, gain) / 20)
    audio = audio * sample_gain[:, None]

    length = len(audio)
    audio = np.pad(audio, ((0, 2 * rate), (0, 0)))  # room for the filters' ringing: no wrap-around
    spectrum = np.fft.rfft(audio, axis=0)
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    f = np.maximum(freqs, 1.0)
    tilt_db = np.clip(settings["tilt_db_per_decade"] * np.log10(f / 1000), -8, 8)
    highpass = (f / settings["highpass_hz"]) ** 4 / (1 + (f / settings["highpass_hz"]) ** 4)
    cutoff, width = settings["lowpass_hz"], settings["lowpass_hz"] * 0.04
    lowpass = np.clip((cutoff - f) / width, 0, 1)
    lowpass = 0.5 - 0.5 * np.cos(np.pi * lowpass)  # raised-cosine edge, then nothing above the cut
    spectrum *= (10 ** (tilt_db / 20) * np.sqrt(highpass) * lowpass)[:, None]
    spectrum[0] = 0
    audio = np.fft.irfft(spectrum, len(audio), axis=0)[:length]

    rms = np.sqrt(np.mean(audio[np.abs(audio).max(axis=1) > 1e-4] ** 2))
    audio = audio * (10 ** (settings["loudness_dbfs"] / 20) / max(rms, 1e-9))
    knee = 0.7
    magnitude = np.abs(audio)
    over = magnitude > knee
    audio[over] = np.sign(audio[over]) * (knee + (0.97 - knee) * np.tanh((magnitude[over] - knee) / (0.97 - knee)))
    return audio.astype(np.float32)


def render_band_song(song: BandSong, midi, soundfont: Path, audio_path: Path, sample_rate: int) -> float:
    """Stems -> mix -> master -> ``audio_path``, trimmed after the last audible sample
    (never before the MIDI file's end); -> duration in seconds."""
    import soundfile

    stems = render_stems(song, midi, soundfont, sample_rate)
    mixed = mix(stems, [p.level_db for p in song.parts], sample_rate)
    if np.abs(mixed).max() < 1e-5:
        raise RenderError(f"fluidsynth rendered {song.name} as silence; is {soundfont} a General MIDI SoundFont?")
    audio = master(mixed, sample_rate, song.mastering)
    audible = np.flatnonzero(np.abs(audio).max(axis=1) > 10 ** (-70 / 20))
    midi_seconds = song.total_beats * song.beat_seconds
    keep = min(len(audio), max(int(np.ceil(midi_seconds * sample_rate)), int(audible[-1]) + 1 + sample_rate // 10))
    audio = audio[:keep]
    if len(audio) < int(np.ceil(midi_seconds * sample_rate)):
        audio = np.pad(audio, ((0, int(np.ceil(midi_seconds * sample_rate)) - len(audio)), (0, 0)))
    soundfile.write(str(audio_path), audio, sample_rate, subtype="PCM_16")
    return audio.shape[0] / sample_rate


def majmin_share(songs: Sequence[BandSong]) -> float:
    """Share of chord time (N excluded) held by root-position major and minor triads."""
    total = plain = 0.0
    for song in songs:
        for event in song.chords:
            if event.label == "N":
                continue
            root, chord_type, bass = parse_label(event.label)
            total += event.beats * song.beat_seconds
            plain += event.beats * song.beat_seconds * (CHORD_TYPES[chord_type] in ("maj", "min") and bass == root)
    return plain / total


def manifest_record(song: BandSong, duration: float) -> Dict[str, object]:
    record = asdict(song)
    record.update(
        style="band",
        bpm=round(60e6 / song.tempo_us, 3),
        duration=round(duration, 3),
        key_name=f"{PITCH_NAMES[song.key]} {song.mode}",
        bend_range_semitones=BEND_RANGE,
        sections=[
            dict(
                asdict(s),
                start_s=round(s.start * song.beat_seconds, 6),
                end_s=round((s.start + s.beats) * song.beat_seconds, 6),
            )
            for s in song.sections
        ],
        majmin_share=round(majmin_share([song]), 3),
    )
    return record


def band_readme(songs: List[BandSong], soundfont: Path, package: Optional[str], seed: int, split: str) -> str:
    """README.txt: how the set was made, the SoundFont, and its licence."""
    summary = LICENCE_SUMMARIES.get(package or "", "unknown: see below")
    return (
        "chordexp independent evaluation set: band songs\n"
        "===============================================\n\n"
        f"{len(songs)} songs made by `python -m chordexp.evalset style=band split={split} songs={len(songs)} "
        f"seed={seed}`.\nNAME.mid is the arrangement (General MIDI written with mido: chord instruments, bass, "
        "lead melody,\ndrums on channel 10; every channel pitch-bent by the song's tuning offset under a "
        f"{BEND_RANGE}-semitone\nbend range). Each part was rendered alone by the fluidsynth command line\n"
        f"({fluidsynth_version()}) with the SoundFont {soundfont.name}\n"
        f"(Debian package: {package or 'unknown'}), the stems mixed at the levels in manifest.json and mastered\n"
        "in numpy (bus compression, EQ tilt, high-pass, codec-like low-pass, loudness, soft limiter), so\n"
        "NAME.mid alone does not reproduce the mix. NAME.lab holds the reference chords (MIREX lab: start\n"
        "end Harte-label, seconds) at the MIDI file's exact beat times. Never train on these songs.\n\n"
        f"SoundFont licence: {summary}.\nKeep this notice with any copy of the audio.\n\n"
    ) + licence_text(package)


def build_band(
    output: Path,
    count: int,
    seed: int,
    split: str,
    seconds: Optional[float],
    soundfont: Path,
    package: Optional[str],
    audio_format: str,
    sample_rate: int,
) -> List[BandSong]:
    """Plan, write MIDI and labels, render and master ``count`` band songs into ``output``."""
    songs = [plan_band_song(i, seed, split, seconds) for i in range(count)]
    manifest = []
    for song in songs:
        midi = band_song_to_midi(song)
        midi.save(str(output / f"{song.name}.mid"))
        duration = render_band_song(song, midi, soundfont, output / f"{song.name}.{audio_format}", sample_rate)
        write_lab(output / f"{song.name}.lab", song_segments(song, duration), decimals=6)
        manifest.append(manifest_record(song, duration))
        styles = ", ".join(p.style for p in song.parts if p.role == "chords")
        print(
            f"{song.name}: {duration:.1f} s, {round(60e6 / song.tempo_us)} bpm, {PITCH_NAMES[song.key]} {song.mode}, "
            f"{song.tuning_cents:+.1f} cents, {styles}, {song.groove}, "
            f"{song.progressions['verse'].split(':')[0]} / {song.progressions['chorus'].split(':')[0]}"
        )
    (output / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (output / "README.txt").write_text(band_readme(songs, soundfont, package, seed, split))
    return songs
