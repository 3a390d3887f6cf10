"""A band plays a song plan: chord instruments, bass, drums and a lead melody, mixed
and mastered the way records are.

A model that only ever hears one instrument holding one chord learns nothing of what
makes songs hard: a bass on the chord's bass note with passing notes, a drum kit over
everything, a melody whose non-chord tones sit on weak beats, reverb, compression,
band limits, and a whole band tuned tens of cents off A440. Each part is a list of
SoundFont notes (the training SoundFont, TimGM6mb: evaluation uses another renderer
and another font), rendered separately so the mix can set each part's level.
All randomness comes from the generator passed in.
"""

from __future__ import annotations

import math
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from chordexp.chords import CHORD_INTERVALS, CHORD_TYPES, NO_CHORD
from chordexp.data.harmony import SongPlan
from chordexp.data.production import colour_instrument
from chordexp.data.soundfont import BASS_PROGRAMS, CHORD_PROGRAMS, MELODY_PROGRAMS, Note, shared_renderer
from chordexp.data.voices import SungNote, backing_oohs, draw_singer, harmony_line, sing, sung_from_midi

STYLE_PROGRAMS = {
    "block": CHORD_PROGRAMS["organ"]
    + CHORD_PROGRAMS["strings"]
    + CHORD_PROGRAMS["synth"]
    + CHORD_PROGRAMS["brass"]
    + CHORD_PROGRAMS["reed"]
    + CHORD_PROGRAMS["piano"][:3],
    "comp": CHORD_PROGRAMS["piano"]
    + CHORD_PROGRAMS["chromatic"]
    + CHORD_PROGRAMS["organ"][:4]
    + CHORD_PROGRAMS["guitar"],
    "strum": CHORD_PROGRAMS["guitar"],
    "arpeggio": CHORD_PROGRAMS["piano"]
    + CHORD_PROGRAMS["guitar"]
    + CHORD_PROGRAMS["chromatic"]
    + CHORD_PROGRAMS["synth"][:3],
}
STYLES = tuple(STYLE_PROGRAMS)
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
KICK, SNARE, CLOSED_HAT, OPEN_HAT, CRASH, RIDE, TOMS = 36, 38, 42, 46, 49, 51, (41, 45, 48)

Span = Tuple[float, float, Tuple[int, int, int]]  # (start s, end s, triple)


def chord_pitch_set(chord: Tuple[int, int, int]) -> List[int]:
    chord_type, root, _ = chord
    return sorted({(root + i) % 12 for i in CHORD_INTERVALS[CHORD_TYPES[chord_type]]})


def voice_upper(
    rng: np.random.Generator, chord: Tuple[int, int, int], centre: float, bass_below: bool = False
) -> List[int]:
    """Every pitch class of the chord once, near ``centre`` (a hand on a keyboard or a
    guitar shape), sometimes a doubled root or top note. ``bass_below``: the chord's bass
    note is added under the voicing, for a part that is the lowest sounding (no bass
    player): the bass note of a chord is the lowest note whoever plays it."""
    pcs = chord_pitch_set(chord)
    notes = []
    for pc in pcs:
        notes.append(note_near(pc, centre + rng.uniform(-7.0, 7.0)))
    if rng.random() < 0.4:
        notes.append(min(notes) + 12 if rng.random() < 0.5 else max(notes) - 12)
    if bass_below:
        notes.append(note_below(min(notes), chord[2]))
    return sorted(set(notes))


def note_near(pitch_class: int, target: float) -> int:
    """The MIDI note of ``pitch_class`` nearest ``target``."""
    return int(pitch_class + 12 * round((target - pitch_class) / 12.0))


def note_below(lowest: int, pitch_class: int) -> int:
    """The highest MIDI note of ``pitch_class`` strictly below ``lowest``."""
    return lowest - 1 - (lowest - 1 - pitch_class) % 12


def power_voicing(chord: Tuple[int, int, int], centre: float, bass_below: bool = False) -> List[int]:
    """A power chord: the root nearest ``centre``, the fifth above it and the root an
    octave up; ``bass_below`` adds the chord's bass note under it, as ``voice_upper``."""
    root = note_near(chord[1], centre)
    notes = [root, root + 7, root + 12]
    if bass_below:
        notes.append(note_below(root, chord[2]))
    return sorted(set(notes))


class Arrangement(NamedTuple):
    """A record's arrangement: which chord-part families play, and whether a bass, drums
    and a lead line do; ``weight``: how often it is drawn when a song gets one."""

    name: str
    weight: float
    families: Tuple[str, ...]
    bass: bool
    drums: bool
    lead: bool


#: Arrangements records use beside the full band.
ARRANGEMENTS: Tuple[Arrangement, ...] = (
    Arrangement("voice_and_guitar", 3.0, ("guitar",), bass=False, drums=False, lead=True),
    Arrangement("piano_alone", 2.0, ("piano",), bass=False, drums=False, lead=False),
    Arrangement("voice_and_piano", 2.0, ("piano",), bass=False, drums=False, lead=True),
    Arrangement("no_bass", 2.0, ("guitar", "piano", "organ"), bass=False, drums=True, lead=True),
    Arrangement("bass_without_drums", 2.0, ("guitar", "piano", "strings"), bass=True, drums=False, lead=True),
)


class BandRenderer:
    """``render(rng, plan, seconds)`` -> mono float32 audio of the plan's first ``seconds``."""

    def __init__(
        self,
        sample_rate: int,
        soundfont: Optional[str] = None,
        additive_prob: float = 0.3,
        voice_prob: float = 0.0,
        backing_prob: float = 0.0,
        instrument_fx_prob: float = 0.0,
        arrangement_prob: float = 0.0,
        power_chord_prob: float = 0.0,
    ) -> None:
        self.sr = int(sample_rate)
        self.additive_prob = float(additive_prob)
        self.voice_prob = float(voice_prob)  # the lead line sung (else a GM melody patch)
        self.backing_prob = float(backing_prob)  # backing singers holding chord tones ("oohs")
        self.instrument_fx_prob = float(instrument_fx_prob)  # a chord part through amp/rotary/phaser
        self.arrangement_prob = float(arrangement_prob)  # a record's arrangement instead of the full band
        self.power_chord_prob = float(power_chord_prob)  # a second chord part plays root and fifth only
        self.soundfont = soundfont
        shared_renderer(soundfont, self.sr)  # fail early when the player is missing

    # ----------------------------------------------------------------- the band
    def render(self, rng: np.random.Generator, plan: SongPlan, seconds: float) -> np.ndarray:
        n = int(round(seconds * self.sr))
        spans = [s for s in plan.segments() if s[0] < seconds]
        parts: List[Tuple[np.ndarray, float]] = []  # (audio, level in dB)
        arrangement: Optional[Arrangement] = None
        if self.arrangement_prob > 0 and rng.random() < self.arrangement_prob:
            weights = np.array([a.weight for a in ARRANGEMENTS])
            arrangement = ARRANGEMENTS[int(rng.choice(len(ARRANGEMENTS), p=weights / weights.sum()))]
        if arrangement is None:
            n_chord_parts = int(rng.choice([1, 2, 3], p=[0.25, 0.45, 0.3]))
            styles = rng.choice(len(STYLES), size=n_chord_parts, replace=n_chord_parts > len(STYLES))
            centres = rng.permutation([52.0, 60.0, 67.0, 72.0])[:n_chord_parts]
            chosen: List[Tuple[str, Optional[str]]] = [(STYLES[int(i)], None) for i in styles]
        else:
            families = arrangement.families
            count = 1 if len(families) == 1 else int(rng.integers(1, 3))
            picked = [families[int(i)] for i in rng.choice(len(families), size=count, replace=False)]
            chosen = [(_style_for(rng, family), family) for family in picked]
            centres = rng.permutation([52.0, 60.0, 67.0])[:count]
        lowest = int(np.argmin(centres))
        for k, ((style, family), centre) in enumerate(zip(chosen, centres)):
            programs = None if family is None else CHORD_PROGRAMS[family]
            floor = arrangement is not None and not arrangement.bass and k == lowest
            # The first part always plays whole chords: a power chord needs another part's third.
            power = k > 0 and self.power_chord_prob > 0 and rng.random() < self.power_chord_prob
            notes = self._chord_part(rng, style, spans, plan, float(centre), programs, floor, power)
            synth = rng.random() < self.additive_prob  # timbres no SoundFont has
            audio = additive_play(rng, notes, n, self.sr, style) if synth else self._play(notes, n)
            if self.instrument_fx_prob > 0 and notes and rng.random() < self.instrument_fx_prob:
                audio = colour_instrument(rng, audio, self.sr, program_family(notes[0].program))
            parts.append((audio, rng.uniform(-12.0, -4.0)))
        if arrangement.bass if arrangement else rng.random() < 0.9:  # the full band: drawn as before
            parts.append((self._play(self._bass(rng, spans, plan), n), rng.uniform(-12.0, -4.0)))
        if arrangement.drums if arrangement else rng.random() < 0.75:
            parts.append((self._play(self._drums(rng, plan, seconds), n), rng.uniform(-14.0, -3.0)))
        if arrangement.lead if arrangement else rng.random() < 0.7:
            melody = self._melody(rng, spans, plan)
            if self.voice_prob > 0 and rng.random() < self.voice_prob:
                parts.extend(self._singers(rng, melody, spans, plan, n))
            else:
                parts.append((self._play(melody, n), rng.uniform(-9.0, -1.0)))
        if self.backing_prob > 0 and rng.random() < self.backing_prob:
            pcs = [(a, b, chord_pitch_set(c) if c[0] != NO_CHORD else []) for a, b, c in spans]
            oohs = backing_oohs(rng, pcs, n, self.sr, float(rng.uniform(57.0, 69.0)))
            parts.append((oohs, rng.uniform(-14.0, -6.0)))
        mix = np.zeros(n, np.float32)
        for audio, level_db in parts:
            rms = math.sqrt(float(np.dot(audio, audio)) / n) + 1e-9
            mix += audio * np.float32(10 ** (level_db / 20) / rms)
        return mix

    def _singers(
        self, rng: np.random.Generator, melody: Sequence[Note], spans: Sequence[Span], plan: SongPlan, n: int
    ) -> List[Tuple[np.ndarray, float]]:
        """The lead line sung, as loud as a record's lead (at or above the band's
        parts), sometimes double-tracked, sometimes with a harmony a third or sixth away."""
        shift = int(rng.choice([0, 0, -12])) if melody else 0  # many leads sing an octave below the line
        notes = [SungNote(s.pitch + shift, s.onset, s.duration, s.vowel) for s in sung_from_midi(rng, melody)]
        singer = draw_singer(rng)
        lead = sing(rng, notes, n, self.sr, singer)
        if rng.random() < 0.35:  # double-tracked: the same singer again, a little off
            lead = lead + sing(rng, _nudged(rng, notes), n, self.sr, singer, float(rng.uniform(-12.0, 12.0)))
        out = [(lead, float(rng.uniform(-5.0, 1.0)))]
        if rng.random() < 0.3:
            scale = [(plan.tonic + d) % 12 for d in (MAJOR_SCALE if plan.mode == "major" else MINOR_SCALE)]
            steps = int(rng.choice([2, -2, -5]))
            out.append((sing(rng, harmony_line(notes, scale, steps), n, self.sr), float(rng.uniform(-10.0, -3.0))))
        return out

    def _play(self, notes: Sequence[Note], n: int) -> np.ndarray:
        return shared_renderer(self.soundfont, self.sr).render(notes, n)

    def _chord_part(
        self,
        rng: np.random.Generator,
        style: str,
        spans: Sequence[Span],
        plan: SongPlan,
        centre: float,
        programs: Optional[Sequence[int]] = None,
        bass_below: bool = False,
        power: bool = False,
    ) -> List[Note]:
        """The part's notes over every span: a voicing per chord, played in ``style``;
        ``power``: root and fifth only (rock guitars, a pianist's left hand) where the
        chord has a perfect fifth, so the label's third has to be heard in another part."""
        programs = STYLE_PROGRAMS[style] if programs is None else programs
        program = int(programs[int(rng.integers(len(programs)))])
        beat, bar = plan.beat_seconds, plan.beat_seconds * plan.beats_per_bar
        velocity = rng.uniform(0.45, 0.9)
        jitter = rng.uniform(0.0, 0.015)
        comp_pattern = [
            p
            for p in (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5)
            if p < plan.beats_per_bar and rng.random() < (0.8 if p % 1 == 0 else 0.35)
        ] or [0.0]
        strum_pattern = [
            (p, rng.random() < 0.5 and p % 1 != 0)
            for p in np.arange(0, plan.beats_per_bar, 0.5)
            if p == 0 or rng.random() < 0.6
        ]
        arp_step = 0.5 if rng.random() < 0.6 else 0.25
        notes: List[Note] = []
        for start, end, chord in spans:
            if chord[0] == NO_CHORD:
                continue
            if power and chord_has_fifth(chord):
                voicing = power_voicing(chord, centre, bass_below)
            else:
                voicing = voice_upper(rng, chord, centre, bass_below)
            if style == "block":
                restrike = bar if rng.random() < 0.3 else end - start
                t = start
                while t < end - 1e-6:
                    hold = min(restrike, end - t)
                    for key in voicing:
                        notes.append(Note(key, _vel(rng, velocity), t + rng.uniform(0, jitter), program, hold * 0.98))
                    t += restrike
            elif style in ("comp", "strum"):
                pattern = comp_pattern if style == "comp" else [p for p, _ in strum_pattern]
                ups = {p for p, up in strum_pattern if up}
                before = len(notes)
                first_bar = math.floor(start / bar + 1e-9)
                for bar_index in range(first_bar, int(math.ceil(end / bar)) + 1):
                    for position in pattern:
                        t = bar_index * bar + position * beat
                        if t < start - 1e-6 or t >= end - 1e-6:
                            continue
                        hold = min(end - t, beat * (rng.uniform(0.4, 1.0) if style == "comp" else 0.9))
                        order = voicing[::-1] if (style == "strum" and position in ups) else voicing
                        spread = rng.uniform(0.006, 0.03) if style == "strum" else 0.0
                        accent = 1.0 if position % 1 == 0 else 0.8
                        for k, key in enumerate(order):
                            notes.append(
                                Note(
                                    key,
                                    _vel(rng, velocity * accent),
                                    t + k * spread + rng.uniform(0, jitter),
                                    program,
                                    max(hold, 0.05),
                                )
                            )
                if len(notes) == before:  # a chord too short for the pattern's hits: strike it once
                    for key in voicing:
                        notes.append(Note(key, _vel(rng, velocity), start, program, (end - start) * 0.95))
            else:  # arpeggio: the voicing's notes in turn, each ringing on
                order = voicing if rng.random() < 0.6 else voicing + voicing[-2:0:-1]
                t, k = start, 0
                while t < end - 1e-6:
                    ring = min(end - t, beat * arp_step * rng.uniform(1.0, 3.0))
                    notes.append(
                        Note(
                            order[k % len(order)],
                            _vel(rng, velocity),
                            t + rng.uniform(0, jitter),
                            program,
                            max(ring, 0.05),
                        )
                    )
                    t += beat * arp_step
                    k += 1
        return notes

    def _bass(self, rng: np.random.Generator, spans: Sequence[Span], plan: SongPlan) -> List[Note]:
        """The chord's bass note (an octave choice that keeps the line smooth) on a
        rhythm; a chromatic or diatonic approach note on the last weak beat before a
        change; the chord's fifth on weak beats in root-fifth patterns."""
        program = int(BASS_PROGRAMS[int(rng.integers(len(BASS_PROGRAMS)))])
        beat = plan.beat_seconds
        pattern = rng.choice(["whole", "beats", "eighths", "root_fifth", "syncopated"])
        velocity = rng.uniform(0.6, 0.95)
        approach_prob = rng.uniform(0.0, 0.6)
        notes: List[Note] = []
        previous = 36 + int(rng.integers(-4, 8))
        for i, (start, end, chord) in enumerate(spans):
            if chord[0] == NO_CHORD:
                continue
            key = _nearest(chord[2], previous, 28, 52)
            previous = key
            fifth = key + 7 if key + 7 <= 55 else key - 5
            step = {
                "whole": end - start,
                "beats": beat,
                "eighths": beat / 2,
                "root_fifth": beat * 2,
                "syncopated": beat * 1.5,
            }[str(pattern)]
            t, k = start, 0
            while t < end - 1e-6:
                hold = min(step, end - t) * rng.uniform(0.6, 0.98)
                pitch = fifth if (pattern == "root_fifth" and k % 2 == 1 and chord_has_fifth(chord)) else key
                notes.append(Note(pitch, _vel(rng, velocity), t, program, max(hold, 0.05)))
                t += step
                k += 1
            nxt = spans[i + 1] if i + 1 < len(spans) else None
            if nxt is not None and nxt[2][0] != NO_CHORD and end - start >= 2 * beat and rng.random() < approach_prob:
                target = _nearest(nxt[2][2], key, 28, 52)
                approach = target + (1 if rng.random() < 0.5 else -1) * int(rng.choice([1, 2]))
                t = end - beat
                notes = [n for n in notes if not (t - 1e-6 <= n.onset < end)]
                notes.append(Note(approach, _vel(rng, velocity * 0.9), t, program, beat * 0.9))
        return notes

    def _drums(self, rng: np.random.Generator, plan: SongPlan, seconds: float) -> List[Note]:
        beat, per_bar = plan.beat_seconds, plan.beats_per_bar
        groove = rng.choice(["rock", "half_time", "four_floor", "sixteenths", "brushes"])
        hat = RIDE if rng.random() < 0.2 else CLOSED_HAT
        kit = int(rng.choice([0, 0, 0, 8, 16, 24, 25, 32, 40]))
        velocity = rng.uniform(0.5, 0.95)
        notes: List[Note] = []

        def hit(key: int, t: float, v: float) -> None:
            if t < seconds:
                notes.append(Note(key, _vel(rng, v * velocity), t + rng.uniform(0.0, 0.008), kit, 0.3, bank=128))

        n_bars = int(math.ceil(seconds / (beat * per_bar))) + 1
        for b in range(n_bars):
            t0 = b * beat * per_bar
            if b % 8 == 0 and b > 0 and rng.random() < 0.5:
                hit(CRASH, t0, 0.9)
            fill = b % 4 == 3 and rng.random() < 0.3
            for k in range(per_bar * 4):  # sixteenth grid
                pos = k / 4
                t = t0 + pos * beat
                if fill and pos >= per_bar - 1:
                    if k % 1 == 0 and rng.random() < 0.8:
                        hit(int(rng.choice([SNARE, *TOMS])), t, 0.8)
                    continue
                on_beat, eighth = k % 4 == 0, k % 2 == 0
                if groove == "four_floor" and on_beat:
                    hit(KICK, t, 1.0)
                elif groove in ("rock", "sixteenths", "brushes") and on_beat and int(pos) % 2 == 0:
                    hit(KICK, t, 1.0)
                elif groove == "half_time" and k == 0:
                    hit(KICK, t, 1.0)
                if groove == "half_time" and per_bar == 4 and k == 8:
                    hit(SNARE, t, 0.9)
                elif groove != "half_time" and on_beat and int(pos) % 2 == 1:
                    hit(SNARE, t, 0.85 if groove != "brushes" else 0.4)
                if (eighth and groove != "sixteenths") or groove == "sixteenths":
                    hit(OPEN_HAT if (groove == "four_floor" and k % 4 == 2) else hat, t, 0.5 if not on_beat else 0.65)
        return notes

    def _melody(self, rng: np.random.Generator, spans: Sequence[Span], plan: SongPlan) -> List[Note]:
        """A lead line: chord tones on strong beats, scale steps (passing and neighbour
        tones, outside the chord) on weak ones, phrases with rests, like a vocal."""
        program = int(MELODY_PROGRAMS[int(rng.integers(len(MELODY_PROGRAMS)))])
        beat = plan.beat_seconds
        scale = [(plan.tonic + d) % 12 for d in (MAJOR_SCALE if plan.mode == "major" else MINOR_SCALE)]
        centre = rng.uniform(64.0, 76.0)
        pitch = int(round(centre))
        velocity = rng.uniform(0.6, 0.95)
        rest_prob = rng.uniform(0.1, 0.35)
        notes: List[Note] = []
        for start, end, chord in spans:
            if chord[0] == NO_CHORD:
                continue
            tones = chord_pitch_set(chord)
            t = start
            while t < end - 1e-6:
                length = beat * float(rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
                strong = abs((t / beat) - round(t / beat)) < 1e-3 and int(round(t / beat)) % 2 == 0
                if rng.random() < rest_prob:
                    t += length
                    continue
                if strong:
                    pitch = min(
                        (p for p in range(pitch - 6, pitch + 7) if p % 12 in tones),
                        key=lambda p: abs(p - pitch) + abs(p - centre) * 0.2,
                        default=pitch,
                    )
                else:  # a step along the scale: often a non-chord tone
                    direction = 1 if rng.random() < 0.5 + (centre - pitch) * 0.05 else -1
                    candidates = [
                        p for p in range(pitch + direction, pitch + 3 * direction, direction) if p % 12 in scale
                    ]
                    pitch = candidates[0] if candidates else pitch + direction
                notes.append(Note(pitch, _vel(rng, velocity), t, program, min(length, end - t) * rng.uniform(0.7, 1.0)))
                t += length
        return notes


def chord_has_fifth(chord: Tuple[int, int, int]) -> bool:
    return 7 in CHORD_INTERVALS[CHORD_TYPES[chord[0]]]


def _nearest(pc: int, previous: int, low: int, high: int) -> int:
    candidates = [k for k in range(low, high + 1) if k % 12 == pc]
    return min(candidates, key=lambda k: abs(k - previous))


def _vel(rng: np.random.Generator, v: float) -> float:
    return float(np.clip(v * rng.uniform(0.85, 1.1), 0.1, 1.0))


# ------------------------------------------------------------------- additive
def additive_play(rng: np.random.Generator, notes: Sequence[Note], n: int, sr: int, style: str) -> np.ndarray:
    """Notes on a random additive timbre (wavetable of 1-30 partials with a random
    spectral slope, odd/even balance and irregularity) with an envelope that suits the
    playing style: plucked/struck decays for comping, swells and sustains for blocks."""
    size = 2048
    max_partials = int(rng.integers(1, 31))
    slope = rng.uniform(0.6, 2.5)
    even = rng.uniform(0.1, 1.0)
    partials = np.arange(1, max_partials + 1)
    base_amps = partials**-slope * np.where(partials % 2 == 0, even, 1.0) * 10 ** (rng.normal(0, 3, max_partials) / 20)
    phase = np.arange(size) / size
    decaying = style in ("comp", "strum", "arpeggio") or rng.random() < 0.3
    attack = rng.uniform(0.002, 0.01) if decaying else rng.uniform(0.02, 0.3)
    decay_s = rng.uniform(0.3, 3.0)
    release = rng.uniform(0.05, 0.4)
    vibrato = rng.uniform(0.0, 0.004) if rng.random() < 0.3 else 0.0
    tables: Dict[int, np.ndarray] = {}  # partial count -> one period of the wave
    out = np.zeros(n, np.float32)
    for note in notes:
        f0 = 440.0 * 2 ** ((note.key - 69) / 12)
        usable = int(min(max_partials, (sr / 2 * 0.9) // f0))
        if usable < 1:
            continue
        table = tables.get(usable)
        if table is None:
            table = (base_amps[:usable, None] * np.sin(2 * np.pi * partials[:usable, None] * phase)).sum(axis=0)
            table = (table / (np.abs(table).max() + 1e-9)).astype(np.float32)
            tables[usable] = table
        start = int(note.onset * sr)
        hold = note.duration if note.duration is not None else n / sr - note.onset
        length = min(int((hold + release) * sr), n - start)
        if length <= 0 or start < 0:
            continue
        t = np.arange(length, dtype=np.float32) / np.float32(sr)
        rate = f0 * size / sr * (1 + vibrato * np.sin(2 * np.pi * 5.5 * t)) if vibrato else f0 * size / sr
        index = (np.cumsum(np.broadcast_to(rate, t.shape)) + rng.uniform(0, size)).astype(np.int64) % size
        env = np.minimum(t / attack, 1.0) ** (1.0 if decaying else 2.0)
        if decaying:
            env = env * np.exp(-6.91 * t / decay_s)
        env = env * np.clip((hold + release - t) / release, 0.0, 1.0)
        out[start : start + length] += table[index] * env.astype(np.float32) * np.float32(note.velocity)
    return out


def program_family(program: int) -> str:
    """The ``CHORD_PROGRAMS`` family of a GM program (``"other"`` when none)."""
    for family, programs in CHORD_PROGRAMS.items():
        if program in programs:
            return family
    return "other"


def _style_for(rng: np.random.Generator, family: str) -> str:
    """How a family plays chords in an arrangement: guitars strum or pick, pianos comp or
    arpeggiate, organs and strings hold."""
    options = {"guitar": ("strum", "strum", "arpeggio", "comp"), "piano": ("comp", "comp", "arpeggio", "block")}
    return str(rng.choice(options.get(family, ("block",))))


def _nudged(rng: np.random.Generator, notes: Sequence[SungNote]) -> List[SungNote]:
    """A double-tracked take: each note 5-30 ms early or late."""
    return [SungNote(s.pitch, max(0.0, s.onset + rng.uniform(-0.03, 0.03)), s.duration, s.vowel) for s in notes]
