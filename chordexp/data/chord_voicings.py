"""Where a synthesised chord's notes lie: the bass note in its range, the upper tones
stacked in close position or spread over octaves, some doubled (``voice_chord``).

Every random choice comes from the generator passed in.
"""

from __future__ import annotations

import numpy as np

from chordexp.chords import CHORD_INTERVALS, CHORD_TYPES
from chordexp.data.synth_options import SynthOptions


def voice_chord(rng: np.random.Generator, chord_type: int, root: int, bass: int, o: SynthOptions) -> np.ndarray:
    """MIDI notes of the chord, ascending; the first is the only note of the lowest
    pitch and has pitch class ``bass``; every chord pitch class sounds at least once.

    Upper tones are either stacked above a root at their real interval heights (close
    position) or spread at random octaves within ``o.spread`` semitones of the bass;
    some are doubled.
    """
    intervals = CHORD_INTERVALS[CHORD_TYPES[chord_type]]
    low, high = o.bass_range
    first = low + (bass - low) % 12
    bass_midi = first + 12 * int(rng.integers((high - first) // 12 + 1))
    top = bass_midi + int(rng.integers(o.spread[0], o.spread[1] + 1))
    pcs = [(root + i) % 12 for i in intervals]
    if rng.random() < 0.4:
        base = bass_midi + (root - bass_midi) % 12 + 12 * int(rng.integers(2))
        tones = [base + i for i in intervals]
    else:
        tones = [_place(rng, bass_midi, top, pc) for pc in pcs]
    # Tones of the bass pitch class last, so truncation drops those (the bass covers them).
    tones = [t for t in tones if t % 12 != bass] + [t for t in tones if t % 12 == bass]
    if rng.random() < o.doubling_prob:
        tones += [_place(rng, bass_midi, top, pcs[int(rng.integers(len(pcs)))]) for _ in range(int(rng.integers(1, 4)))]
    upper = list(dict.fromkeys(t for t in tones if t > bass_midi))[: o.max_notes - 1]
    return np.array([bass_midi] + sorted(upper), dtype=np.float64)


def _place(rng: np.random.Generator, bass_midi: int, top: int, pc: int) -> int:
    """A random MIDI note of pitch class ``pc`` in (bass_midi, top]."""
    first = bass_midi + ((pc - bass_midi) % 12 or 12)
    return first + 12 * int(rng.integers((top - first) // 12 + 1))
