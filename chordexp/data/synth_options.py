"""What the chord-clip generator may draw (``SynthOptions``), the ``realism='plain'``
preset, and the checks an option's value must pass (``make_options``).

Every field is a probability per clip, a ``(low, high)`` range or a list of names;
``SyntheticChordDataset`` takes each one as a keyword, and the Hydra schema passes
``data.dataset.*`` through unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

from chordexp.chords import NUM_CHORD_TYPES
from chordexp.errors import ConfigValueError

#: Envelope families: how a note starts, holds and dies.
FAMILIES: Tuple[str, ...] = ("pluck", "piano", "organ", "bowed", "pad", "brass")
#: What an ``N`` clip can be; none of them has a stable pitch.
NO_CHORD_KINDS: Tuple[str, ...] = ("noise", "percussion", "silence", "texture")
REALISMS: Tuple[str, ...] = ("rich", "plain")


@dataclass(frozen=True)
class SynthOptions:
    """What the generator may draw. Probabilities are per clip; ranges are ``(low, high)``."""

    realism: str = "rich"  # 'rich' or 'plain' (block chords, simple timbres, about twice as fast)
    chord_type_weights: Optional[Tuple[float, ...]] = None  # 32 weights; None = uniform
    inversion_prob: float = 0.15  # bass = a chord tone other than the root (pop music: ~10-20 %)
    bass_range: Tuple[int, int] = (30, 55)  # MIDI range of the lowest note (F#1..G3)
    spread: Tuple[int, int] = (24, 36)  # upper tones lie within this many semitones above it
    doubling_prob: float = 0.5  # add 1-3 octave doublings of chord tones
    max_notes: int = 10
    families: Tuple[str, ...] = FAMILIES
    max_partials: int = 40
    brightness_decay: bool = True  # high partials decay (or attack) on their own envelope
    inharmonicity_prob: float = 0.5  # stretched partials, as in piano strings
    detune_prob: float = 0.15  # chorus: every note doubled a few cents off
    vibrato_prob: float = 0.15
    tremolo_prob: float = 0.2  # amplitude wobble on sustained sounds
    tuning_cents: float = 25.0  # whole clip detuned by up to this much from A=440
    strum_prob: float = 0.3
    arpeggio_prob: float = 0.1
    repeat_prob: float = 0.25  # plucked chords struck again within the clip
    release_prob: float = 0.2  # chord stops before the clip ends
    bass_instrument_prob: float = 0.3  # lowest note played by a different timbre
    eq_tilt_db: float = 2.0  # random spectral tilt up to +-this many dB per octave
    band_limit_prob: float = 0.2  # each of a high-pass (40-100 Hz) and a low-pass (2.5-8 kHz)
    attack_noise_prob: float = 0.5  # pick/hammer noise at each strike of plucked sounds
    saturation_prob: float = 0.1  # soft clipping (overdrive)
    noise_prob: float = 0.9
    snr_db: Tuple[float, float] = (5.0, 40.0)
    percussion_prob: float = 0.25
    level_db: Tuple[float, float] = (-32.0, -10.0)  # clip RMS in dBFS
    no_chord_kinds: Tuple[str, ...] = NO_CHORD_KINDS
    soundfont_prob: float = 0.5  # chord played by SoundFont samples instead of the additive synth
    melody_prob: float = 0.3  # a lead instrument plays 1-4 notes over a sampled chord
    reverb_prob: float = 0.4  # room reverb (decaying-noise impulse response, RT60 0.2-1.5 s)
    # the clip crosses a chord change (the label's chord fills 60-90 % of it); off by default:
    # on a development set of rendered songs it raised exact/mirex/seg scores but lowered root/majmin
    change_prob: float = 0.0
    soundfont: Optional[str] = None  # .sf2/.sf3 path; None = TimGM6mb (shipped by pretty_midi)


#: ``realism='plain'``: the defaults it changes (explicit options still win).
PLAIN_PRESET: Dict[str, Any] = dict(
    families=("pluck", "organ"),
    max_partials=12,
    brightness_decay=False,
    inharmonicity_prob=0.0,
    detune_prob=0.0,
    vibrato_prob=0.0,
    tremolo_prob=0.0,
    strum_prob=0.0,
    arpeggio_prob=0.0,
    repeat_prob=0.0,
    release_prob=0.0,
    bass_instrument_prob=0.0,
    eq_tilt_db=0.0,
    band_limit_prob=0.0,
    attack_noise_prob=0.0,
    saturation_prob=0.0,
    percussion_prob=0.0,
    soundfont_prob=0.0,
    melody_prob=0.0,
    reverb_prob=0.0,
    change_prob=0.0,
)


def make_options(realism: str = "rich", **overrides: Any) -> SynthOptions:
    """``SynthOptions`` for ``realism`` with ``overrides`` applied, validated.

    Raises ValueError (one line, naming the option) for an unknown option or a bad value.
    """
    if realism not in REALISMS:
        raise ConfigValueError(f"realism must be one of {REALISMS}, got {realism!r}")
    names = {f.name for f in dataclasses.fields(SynthOptions)} - {"realism"}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigValueError(f"unknown generator option {unknown[0]!r}; valid: {', '.join(sorted(names))}")
    values: Dict[str, Any] = dict(PLAIN_PRESET) if realism == "plain" else {}
    values.update(overrides)
    opts = SynthOptions(realism=realism, **{k: _coerce(k, v) for k, v in values.items()})
    _validate(opts)
    return opts


def _coerce(name: str, value: Any) -> Any:
    """YAML lists (OmegaConf ListConfig included) -> tuples, numpy scalars -> Python ones."""
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, bytes, bool, int, float)):
        return value
    try:
        return tuple(v.item() if isinstance(v, np.generic) else v for v in value)
    except TypeError:
        raise ConfigValueError(f"generator option {name!r} must be a number or a list, got {value!r}") from None


def _is_number(value: Any, kind: type = float) -> bool:
    allowed = (int,) if kind is int else (int, float)
    return isinstance(value, allowed) and not isinstance(value, bool)


def _validate(o: SynthOptions) -> None:
    probs = (
        "inversion_prob",
        "doubling_prob",
        "inharmonicity_prob",
        "detune_prob",
        "vibrato_prob",
        "tremolo_prob",
        "strum_prob",
        "arpeggio_prob",
        "repeat_prob",
        "release_prob",
        "bass_instrument_prob",
        "band_limit_prob",
        "attack_noise_prob",
        "saturation_prob",
        "noise_prob",
        "percussion_prob",
        "soundfont_prob",
        "melody_prob",
        "reverb_prob",
        "change_prob",
    )
    for name in probs:
        value = getattr(o, name)
        if not _is_number(value) or not 0.0 <= value <= 1.0:
            raise ConfigValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    for name, kind in (("max_notes", int), ("max_partials", int), ("tuning_cents", float), ("eq_tilt_db", float)):
        if not _is_number(getattr(o, name), kind):
            raise ConfigValueError(
                f"{name} must be {'an integer' if kind is int else 'a number'}, got {getattr(o, name)!r}"
            )
    if not isinstance(o.brightness_decay, bool):
        raise ConfigValueError(f"brightness_decay must be true or false, got {o.brightness_decay!r}")
    if o.strum_prob + o.arpeggio_prob > 1.0:
        raise ConfigValueError(f"strum_prob + arpeggio_prob must be <= 1, got {o.strum_prob + o.arpeggio_prob}")
    for name, kind in (("bass_range", int), ("spread", int), ("snr_db", float), ("level_db", float)):
        pair = getattr(o, name)
        if not (
            isinstance(pair, tuple) and len(pair) == 2 and all(_is_number(x, kind) for x in pair) and pair[0] <= pair[1]
        ):
            noun = "integers" if kind is int else "numbers"
            raise ConfigValueError(f"{name} must be a (low, high) pair of {noun} with low <= high, got {pair!r}")
    if not (12 <= o.bass_range[0] and o.bass_range[1] - o.bass_range[0] >= 11 and o.bass_range[1] <= 72):
        raise ConfigValueError(f"bass_range must span at least 11 semitones within MIDI 12..72, got {o.bass_range}")
    if o.spread[0] < 12 or o.spread[1] > 48:
        raise ConfigValueError(f"spread must lie within 12..48 semitones, got {o.spread}")
    if o.level_db[1] > 0:
        raise ConfigValueError(f"level_db must be <= 0 dBFS, got {o.level_db}")
    if o.max_notes < 7:
        raise ConfigValueError(f"max_notes must be >= 7 (a 13th chord has 7 tones), got {o.max_notes}")
    if not 1 <= o.max_partials <= 200:
        raise ConfigValueError(f"max_partials must be in 1..200, got {o.max_partials}")
    if not 0 <= o.tuning_cents <= 45:
        raise ConfigValueError(f"tuning_cents must be in 0..45 (50 would change pitch classes), got {o.tuning_cents}")
    if not 0 <= o.eq_tilt_db <= 6:
        raise ConfigValueError(f"eq_tilt_db must be in 0..6 dB/octave, got {o.eq_tilt_db}")
    _check_names("families", o.families, FAMILIES)
    _check_names("no_chord_kinds", o.no_chord_kinds, NO_CHORD_KINDS)
    if o.soundfont is not None and not isinstance(o.soundfont, str):
        raise ConfigValueError(f"soundfont must be a file path or null, got {o.soundfont!r}")
    if o.chord_type_weights is not None:
        w = o.chord_type_weights
        if len(w) != NUM_CHORD_TYPES or any(not _is_number(x) or x < 0 for x in w) or sum(w) <= 0:
            raise ConfigValueError(
                f"chord_type_weights must be {NUM_CHORD_TYPES} non-negative numbers with a positive sum"
            )


def _check_names(name: str, values: Tuple[str, ...], allowed: Tuple[str, ...]) -> None:
    if not values or any(v not in allowed for v in values):
        raise ConfigValueError(f"{name} must be a non-empty list drawn from {allowed}, got {values!r}")
