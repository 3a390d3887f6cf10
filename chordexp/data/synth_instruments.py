"""The additive synthesiser's timbres: a harmonic spectrum (slope, odd/even balance,
low-pass, irregularity, stretched partials) and an envelope family (pluck, piano,
organ, bowed, pad, brass), drawn per clip by ``draw_instrument``.

Every random choice comes from the generator passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from chordexp.data.clip_effects import db
from chordexp.data.synth_options import SynthOptions

#: Families whose notes die away (no sustain): they may be struck again, get pick noise.
DECAYING = ("pluck", "piano")


@dataclass(frozen=True)
class Instrument:
    """One timbre: a harmonic spectrum and an envelope family."""

    family: str
    slope: float  # partial k has amplitude k ** -slope before the filters
    even_gain: float  # < 1: hollow, clarinet-like
    cutoff_hz: float  # gentle low-pass on the partials
    jitter_db: float  # per-partial irregularity
    fundamental_gain: float
    inharmonicity: float  # B in f_k = k f0 sqrt(1 + B k^2)
    split: int  # partials above this get the 'high' envelope (0: one envelope)
    band_ratio: float  # high band decays this much faster (or, brass, attacks slower)
    attack: float  # s
    shape: float  # attack curve exponent
    sustain: float
    w1: float
    r1: float  # 1/s
    r2: float

    def envelope(self, high: bool) -> Tuple[float, ...]:
        """``(attack, shape, sustain, w1, r1, r2)`` for the low or high band."""
        if not high:
            return (self.attack, self.shape, self.sustain, self.w1, self.r1, self.r2)
        if self.family == "brass":
            return (self.attack * self.band_ratio, self.shape, self.sustain, self.w1, self.r1, self.r2)
        return (self.attack, self.shape, self.sustain, self.w1, self.r1 * self.band_ratio, self.r2 * self.band_ratio)


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def draw_instrument(rng: np.random.Generator, o: SynthOptions, clip_s: float) -> Instrument:
    family = o.families[int(rng.integers(len(o.families)))]
    sustain, w1, r1, r2, shape = 1.0, 0.0, 0.0, 0.0, 1.0
    if family == "pluck":
        attack, sustain, w1 = rng.uniform(0.0005, 0.005), 0.0, 1.0
        r1 = r2 = 6.91 / log_uniform(rng, 0.3, 4.0)
    elif family == "piano":
        attack, sustain, w1 = rng.uniform(0.001, 0.004), 0.0, rng.uniform(0.3, 0.7)
        r1, r2 = 6.91 / rng.uniform(0.2, 1.0), 6.91 / rng.uniform(2.0, 12.0)
    elif family == "organ":
        attack = rng.uniform(0.005, 0.04)
    elif family == "bowed":
        attack, shape = min(rng.uniform(0.04, 0.25), 0.4 * clip_s), 1.5
    elif family == "pad":
        attack, shape = min(rng.uniform(0.15, 0.5), 0.4 * clip_s), 2.0
    else:  # brass: overshoot, then settle
        attack, sustain = rng.uniform(0.02, 0.08), rng.uniform(0.5, 0.85)
        w1, r1 = 1.0 - sustain, 1.0 / rng.uniform(0.05, 0.2)
    string_like = family in DECAYING
    band_split = o.brightness_decay and family in ("pluck", "piano", "brass")
    return Instrument(
        family=family,
        slope=rng.uniform(0.5, 2.5),
        even_gain=rng.uniform(0.0, 0.35) if rng.random() < 0.25 else rng.uniform(0.5, 1.0),
        cutoff_hz=log_uniform(rng, 1500.0, 12000.0),
        jitter_db=rng.uniform(0.0, 6.0),
        fundamental_gain=float(db(rng.uniform(-12.0, 0.0))) if rng.random() < 0.25 else 1.0,
        inharmonicity=log_uniform(rng, 1e-5, 6e-4) if string_like and rng.random() < o.inharmonicity_prob else 0.0,
        split=int(rng.integers(2, 5)) if band_split else 0,
        band_ratio=rng.uniform(1.5, 5.0) if band_split else 1.0,
        attack=float(attack),
        shape=shape,
        sustain=float(sustain),
        w1=float(w1),
        r1=float(r1),
        r2=float(r2),
    )
