"""The notes each part of a band song plays (``chord_notes``, ``bass_notes``,
``drum_notes``, ``melody_notes``): comping, strums, picking and arpeggios on smooth
voicings, a bass line with passing notes, drum grooves with fills and crashes, and a
sung-like lead; each with a little human timing and velocity (``Player``).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from chordexp.chords import CHORD_TYPES, PITCH_NAMES, chord_pitch_classes, parse_label
from chordexp.evalset_songs.band_plan import BandPart, BandSong
from chordexp.evalset_songs.material import BEATS_PER_BAR, TICKS_PER_BEAT, ChordEvent, Note, beats_to_ticks, voicing

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
