"""Sung voices for the synthetic band: a lead singer, its double and backing "oohs".

On a record the loudest thing is usually a voice, and it is the hardest thing for a
chord model that never heard one: its partials glide (scoops, slides, vibrato), its
spectrum is shaped by vowels, not by an instrument, and half its notes are not in the
chord. A General MIDI "voice" patch has none of that, so voices are synthesised here:
a glottal source (harmonics with a falling slope) through the formants of sung vowels,
an f0 curve with scoops into notes, slides between close notes, vibrato and a little
intonation error, consonant noise at note starts and breath between phrases.

Each note is rendered from one single-cycle wavetable built for its vowel and pitch
(two, cross-faded, for a diphthong) played along its f0 curve, so a voice costs a few
operations per sample whatever its number of harmonics. All randomness comes from the
generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

#: Formant frequencies (Hz, F1-F4) of sung vowels, averages of adult singers.
VOWELS = {
    "a": (780.0, 1180.0, 2800.0, 3600.0),
    "e": (480.0, 1850.0, 2600.0, 3400.0),
    "i": (320.0, 2250.0, 2950.0, 3700.0),
    "o": (480.0, 820.0, 2750.0, 3500.0),
    "u": (340.0, 720.0, 2500.0, 3400.0),
    "ae": (650.0, 1650.0, 2550.0, 3450.0),
}
VOWEL_NAMES = tuple(VOWELS)
BANDWIDTHS = (80.0, 100.0, 140.0, 180.0)
TABLE_SIZE = 2048
MAX_PARTIAL_HZ = 5000.0  # above this a voice is breath and sibilance, not partials


@dataclass(frozen=True)
class SungNote:
    """A note of a sung line: MIDI pitch (may be fractional), onset and length in seconds."""

    pitch: float
    onset: float
    duration: float
    vowel: str = "a"


@dataclass(frozen=True)
class Singer:
    """What stays fixed for one voice: source slope, vibrato, scoops, breathiness."""

    slope: float  # harmonic amplitude falls as k ** -slope
    vibrato_hz: float
    vibrato_cents: float
    vibrato_delay: float  # seconds into a note before the vibrato sets in
    scoop_prob: float
    intonation_cents: float  # standard deviation of each note's pitch error
    breath_db: float  # aspiration noise relative to the voice
    consonant_prob: float
    formant_shift: float  # vocal tract length: scales every formant (0.9 low voice .. 1.15 high)


def draw_singer(rng: np.random.Generator) -> Singer:
    return Singer(
        slope=float(rng.uniform(0.8, 1.6)),
        vibrato_hz=float(rng.uniform(4.5, 6.5)),
        vibrato_cents=float(rng.uniform(10.0, 60.0)) if rng.random() < 0.85 else 0.0,
        vibrato_delay=float(rng.uniform(0.1, 0.35)),
        scoop_prob=float(rng.uniform(0.2, 0.8)),
        intonation_cents=float(rng.uniform(3.0, 15.0)),
        breath_db=float(rng.uniform(-34.0, -18.0)),
        consonant_prob=float(rng.uniform(0.3, 0.9)),
        formant_shift=float(rng.uniform(0.9, 1.15)),
    )


def formant_gain(freqs: np.ndarray, formants: Sequence[float]) -> np.ndarray:
    """Magnitude of a cascade of second-order resonances at ``freqs`` (a vocal tract)."""
    gain = np.ones_like(freqs)
    for f, bw in zip(formants, BANDWIDTHS):
        ratio = freqs / f
        gain = gain / np.sqrt((1.0 - ratio**2) ** 2 + (freqs * bw / f**2) ** 2)
    return gain


def vowel_table(f0: float, vowel: str, singer: Singer, sample_rate: int) -> np.ndarray:
    """One period of the voice singing ``vowel`` at ``f0`` Hz, peak-normalised."""
    top = min(MAX_PARTIAL_HZ, 0.45 * sample_rate)
    count = max(1, int(top // max(f0, 1.0)))
    k = np.arange(1, count + 1, dtype=np.float64)
    formants = [f * singer.formant_shift for f in VOWELS[vowel]]
    amps = k**-singer.slope * formant_gain(k * f0, formants)
    phase = np.arange(TABLE_SIZE) / TABLE_SIZE
    table = (amps[:, None] * np.sin(2 * np.pi * k[:, None] * phase[None, :] - 0.5 * np.pi * k[:, None])).sum(axis=0)
    return (table / (np.abs(table).max() + 1e-12)).astype(np.float32)


def sing(
    rng: np.random.Generator,
    notes: Sequence[SungNote],
    num_samples: int,
    sample_rate: int,
    singer: Optional[Singer] = None,
    detune_cents: float = 0.0,
) -> np.ndarray:
    """Render a sung line into ``num_samples`` of mono audio (unit-ish level)."""
    singer = singer or draw_singer(rng)
    sr = sample_rate
    out = np.zeros(num_samples, np.float32)
    previous: Optional[Tuple[float, float]] = None  # (pitch, end s) of the last note
    tables: Dict[Tuple[str, int], np.ndarray] = {}  # (vowel, semitone) -> wavetable

    def table(vowel: str, pitch: float) -> np.ndarray:
        key = (vowel, int(round(pitch)))
        if key not in tables:
            tables[key] = vowel_table(440.0 * 2.0 ** ((key[1] - 69.0) / 12.0), vowel, singer, sr)
        return tables[key]

    for note in notes:
        start = int(note.onset * sr)
        release = 0.06
        length = min(int((note.duration + release) * sr), num_samples - start)
        if length <= int(0.03 * sr) or start < 0:
            previous = None
            continue
        t = np.arange(length, dtype=np.float32) / np.float32(sr)
        pitch = note.pitch + (detune_cents + rng.normal(0.0, singer.intonation_cents)) / 100.0
        cents = np.zeros(length, np.float32)
        if previous is not None and note.onset - previous[1] < 0.08 and abs(previous[0] - pitch) <= 5:
            glide = rng.uniform(0.05, 0.12)  # a slide from the last note
            cents += np.float32(100.0 * (previous[0] - pitch)) * np.clip(1.0 - t / np.float32(glide), 0.0, 1.0) ** 2
        elif rng.random() < singer.scoop_prob:  # a scoop up into the note
            depth, glide = rng.uniform(30.0, 150.0), rng.uniform(0.04, 0.1)
            cents -= np.float32(depth) * np.clip(1.0 - t / np.float32(glide), 0.0, 1.0) ** 2
        if singer.vibrato_cents > 0:
            ramp = np.clip((t - singer.vibrato_delay) / 0.2, 0.0, 1.0)
            phase0 = rng.uniform(0.0, 2 * np.pi)
            cents += np.float32(singer.vibrato_cents) * ramp * np.sin(2 * np.pi * singer.vibrato_hz * t + phase0)
        f0 = 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)
        rate = (f0 * TABLE_SIZE / sr) * np.exp2(cents / np.float32(1200.0))
        index = (np.cumsum(rate, dtype=np.float64) + rng.uniform(0, TABLE_SIZE)).astype(np.int64) % TABLE_SIZE
        wave = table(note.vowel, pitch)[index]
        if note.duration > 0.35 and rng.random() < 0.4:  # a diphthong: glide to a second vowel
            other = VOWEL_NAMES[int(rng.integers(len(VOWEL_NAMES)))]
            mix = np.clip((t - 0.5 * note.duration) / 0.15, 0.0, 1.0)
            wave = wave * (1 - mix) + table(other, pitch)[index] * mix
        attack = rng.uniform(0.02, 0.06)
        env = np.minimum(t / np.float32(attack), 1.0) * np.clip((note.duration + release - t) / release, 0.0, 1.0)
        env *= np.float32(rng.uniform(0.7, 1.0))
        voice = wave * env
        breath = _noise(rng, length) * env * np.float32(10 ** (singer.breath_db / 20))
        out[start : start + length] += voice + breath
        if rng.random() < singer.consonant_prob:
            _consonant(rng, out, start, sr)
        previous = (pitch, note.onset + note.duration)
    return out


def backing_oohs(
    rng: np.random.Generator,
    spans: Sequence[Tuple[float, float, Sequence[int]]],
    num_samples: int,
    sample_rate: int,
    centre: float,
) -> np.ndarray:
    """Two or three voices holding chord tones near ``centre`` on "ooh"/"aah" for each
    span ``(start s, end s, pitch classes)``, each voice moving to its nearest tone."""
    singers = [draw_singer(rng) for _ in range(int(rng.integers(2, 4)))]
    vowel = str(rng.choice(["u", "o", "a"]))
    out = np.zeros(num_samples, np.float32)
    for line, singer in zip(backing_lines(rng, spans, centre, len(singers), vowel), singers):
        out += sing(rng, line, num_samples, sample_rate, singer)
    return out


def backing_lines(
    rng: np.random.Generator,
    spans: Sequence[Tuple[float, float, Sequence[int]]],
    centre: float,
    count: int,
    vowel: str = "u",
) -> List[List[SungNote]]:
    """``count`` lines of held chord tones, one note per span, each voice starting a
    third above the last and moving to the nearest tone of the next chord."""
    last = [centre + 4.0 * i for i in range(count)]
    lines: List[List[SungNote]] = [[] for _ in range(count)]
    for start, end, pcs in spans:
        if not pcs:
            continue
        for voice in range(count):
            target = last[voice]
            pitch = min(
                (p for p in range(int(target) - 7, int(target) + 8) if p % 12 in pcs), key=lambda p: abs(p - target)
            )
            last[voice] = pitch
            lines[voice].append(
                SungNote(float(pitch), start + rng.uniform(0.0, 0.05), max(end - start - 0.08, 0.1), vowel)
            )
    return lines


def harmony_line(notes: Sequence[SungNote], scale: Sequence[int], steps: int) -> List[SungNote]:
    """The line ``steps`` scale degrees away from ``notes`` (2: a third above, -2: a
    third below, -5: a sixth below), as backing singers double a lead."""
    out = []
    for note in notes:
        pitch = int(round(note.pitch))
        direction = 1 if steps > 0 else -1
        moved = 0
        while moved < abs(steps):
            pitch += direction
            if pitch % 12 in scale:
                moved += 1
        out.append(SungNote(float(pitch), note.onset, note.duration, note.vowel))
    return out


def _noise(rng: np.random.Generator, length: int) -> np.ndarray:
    white = rng.standard_normal(length + 1).astype(np.float32)
    return np.diff(white) * np.float32(0.5)  # tilted up: breath is mostly high frequencies


def _consonant(rng: np.random.Generator, out: np.ndarray, start: int, sr: int) -> None:
    """A sibilant or plosive just before a note: a short burst of (high-passed) noise."""
    length = int(rng.uniform(0.015, 0.07) * sr)
    begin = max(0, start - length // 2)
    length = min(length, len(out) - begin)
    if length <= 0:
        return
    burst = _noise(rng, length) if rng.random() < 0.6 else rng.standard_normal(length).astype(np.float32) * 0.3
    env = np.hanning(length).astype(np.float32) * np.float32(10 ** (rng.uniform(-20.0, -8.0) / 20))
    out[begin : begin + length] += burst * env


def vowel_for(rng: np.random.Generator) -> str:
    return VOWEL_NAMES[int(rng.integers(len(VOWEL_NAMES)))]


def sung_from_midi(rng: np.random.Generator, notes: Sequence[object]) -> List[SungNote]:
    """``soundfont.Note``-like melody notes (key, onset, duration) as sung notes with vowels."""
    sung = []
    for note in notes:
        duration = getattr(note, "duration", None)
        sung.append(
            SungNote(float(getattr(note, "key")), float(getattr(note, "onset")), float(duration or 0.5), vowel_for(rng))
        )
    return sung
