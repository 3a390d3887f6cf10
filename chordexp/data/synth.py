"""Fast additive synthesis of labelled chord clips (numpy only, no global RNG).

A clip holds one chord (or ``N``). The chord is voiced across octaves and rendered
additively: each note's partials are written at exact bins into the spectrum of a
short, exactly periodic loop (one small irfft per voice), the loop is tiled over the
clip and shaped by an envelope sampled on a coarse grid. That keeps the cost per voice
near a few passes over the clip, whatever the number of partials.

Every random choice comes from the ``numpy.random.Generator`` passed in, so a clip is a
pure function of that generator's seed. The only other randomness is a fixed bank of
coloured noise, built once per process from a constant seed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, Optional, Sequence, SupportsIndex, Tuple

import numpy as np

from chordexp.chords import CHORD_INTERVALS, CHORD_TYPES, NO_CHORD, NUM_CHORD_TYPES
from chordexp.data.soundfont import SampledChordPlayer
from chordexp.errors import ConfigValueError

#: Envelope families: how a note starts, holds and dies.
FAMILIES: Tuple[str, ...] = ("pluck", "piano", "organ", "bowed", "pad", "brass")
#: What an ``N`` clip can be; none of them has a stable pitch.
NO_CHORD_KINDS: Tuple[str, ...] = ("noise", "percussion", "silence", "texture")
REALISMS: Tuple[str, ...] = ("rich", "plain")

_DECAYING = ("pluck", "piano")
_HOP = 32  # envelope grid step in samples (0.7 ms at 44.1 kHz)
_NOISE_COLOURS = 4  # white, pink, brown, blue


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


@lru_cache(maxsize=None)
def _loop_sizes() -> np.ndarray:
    """7-smooth lengths in [2048, 65536]: irfft is fast at these sizes."""
    sizes = [2**a * 3**b * 5**c * 7**d for a in range(17) for b in range(11) for c in range(7) for d in range(6)]
    return np.array(sorted(s for s in sizes if 2048 <= s <= 65536), dtype=np.float64)


@lru_cache(maxsize=4)
def _noise_bank(length: int) -> np.ndarray:
    """(4, length) float32 unit-RMS noise: white, pink, brown, blue. Same in every process."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([0x4E4F4953, length])))
    spec = np.fft.rfft(rng.standard_normal(length))
    freqs = np.maximum(np.arange(spec.size), 20.0 * length / 44100.0)
    bank = np.empty((_NOISE_COLOURS, length), np.float32)
    for i, power in enumerate((0.0, -0.5, -1.0, 0.5)):
        x = np.fft.irfft(spec * freqs**power, n=length)
        bank[i] = x / np.sqrt(np.mean(x**2))
    return bank


def _db(x: Any) -> Any:
    return 10.0 ** (np.asarray(x) / 20.0)


class ChordSynth:
    """Draws labels and renders clips of ``num_samples`` at ``sample_rate``.

    ``sample_labels(rng) -> (chord_type, root, bass_note)`` and
    ``render(rng, chord_type, root, bass_note) -> float32 (num_samples,)`` in [-1, 1].
    """

    def __init__(self, options: SynthOptions, sample_rate: int, num_samples: int) -> None:
        self.o = options
        self.sr = float(sample_rate)
        self.n = int(num_samples)
        weights = (
            np.ones(NUM_CHORD_TYPES)
            if options.chord_type_weights is None
            else np.asarray(options.chord_type_weights, np.float64)
        )
        self._cdf = np.cumsum(weights) / weights.sum()
        self._grid = np.arange(-(-self.n // _HOP) + 1) * (_HOP / self.sr)  # clip-level gain grid (s)
        self._ramp = (np.arange(_HOP, dtype=np.float32) / _HOP)[None, :]
        self._bank_len = max(1 << 18, 1 << int(math.ceil(math.log2(2 * self.n))))
        self._samples = None
        if options.soundfont_prob > 0:
            self._samples = SampledChordPlayer(options, sample_rate, self.n)

    # ----------------------------------------------------------------- labels
    def sample_labels(self, rng: np.random.Generator) -> Tuple[int, int, int]:
        chord_type = min(int(np.searchsorted(self._cdf, rng.random(), side="right")), NUM_CHORD_TYPES - 1)
        if chord_type == NO_CHORD:
            return NO_CHORD, 0, 0
        root = int(rng.integers(12))
        bass = root
        if rng.random() < self.o.inversion_prob:
            # Inversions put a core tone (3rd, 5th, 7th, ...) in the bass, not an extension.
            core = [i for i in CHORD_INTERVALS[CHORD_TYPES[chord_type]] if 0 < i < 12]
            if core:
                bass = (root + core[int(rng.integers(len(core)))]) % 12
        return chord_type, root, bass

    # ----------------------------------------------------------------- render
    def render(self, rng: np.random.Generator, chord_type: int, root: int, bass_note: int) -> np.ndarray:
        out = self._one_chord(rng, chord_type, root, bass_note)
        if self.o.change_prob > 0 and rng.random() < self.o.change_prob:
            out = self._across_a_change(rng, out, (chord_type, root))
        peak = max(float(out.max()), -float(out.min()))
        if peak > 0.99:
            out *= np.float32(0.99 / peak)
        return out

    def _one_chord(self, rng: np.random.Generator, chord_type: int, root: int, bass: int) -> np.ndarray:
        if chord_type == NO_CHORD:
            return self._no_chord(rng)
        return self._chord(rng, chord_type, root, bass)

    def _across_a_change(self, rng: np.random.Generator, labelled: np.ndarray, chord: Tuple[int, int]) -> np.ndarray:
        """A window that straddles a chord change, as windows cut from songs do: another
        chord (or N) fills 10-40 % of the clip before or after the labelled one, at a
        similar level, with a 20 ms crossfade. The label stays the majority chord."""
        for _ in range(8):  # a different chord; the class weights may allow none (N only)
            other = self.sample_labels(rng)
            if other[:2] != chord:
                break
        else:
            return labelled
        neighbour = self._one_chord(rng, *other)
        rms = math.sqrt(float(np.dot(labelled, labelled)) / self.n) * float(_db(rng.uniform(-3.0, 3.0)))
        self._normalise(neighbour, 20.0 * math.log10(max(rms, 1e-9)))
        n_other = int(rng.uniform(0.1, 0.4) * self.n)
        fade = min(int(0.02 * self.sr), n_other)
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        out = np.empty_like(labelled)
        if rng.random() < 0.5:  # the change comes in: neighbour's end, then the labelled chord's start
            out[:n_other] = neighbour[self.n - n_other :]
            out[n_other:] = labelled[: self.n - n_other]
            out[n_other - fade : n_other] = out[n_other - fade : n_other] * (1 - ramp) + labelled[:fade] * ramp
        else:  # the labelled chord, then the next one starts
            split = self.n - n_other
            out[:split] = labelled[:split]
            out[split:] = neighbour[:n_other]
            out[split : split + fade] = labelled[split : split + fade] * (1 - ramp) + neighbour[:fade] * ramp
        return out

    def _chord(self, rng: np.random.Generator, chord_type: int, root: int, bass: int) -> np.ndarray:
        o = self.o
        midi = voice_chord(rng, chord_type, root, bass, o)
        if self._samples is not None and rng.random() < o.soundfont_prob:
            return self._finish(rng, self._samples.play(rng, midi), decaying=True, strikes_at=None)
        tuning = rng.uniform(-o.tuning_cents, o.tuning_cents) / 100.0
        f0 = 440.0 * 2.0 ** ((midi - 69 + tuning) / 12.0)
        clip_s = self.n / self.sr
        main = _draw_instrument(rng, o, clip_s)
        insts = [main] * len(midi)
        if rng.random() < o.bass_instrument_prob:
            insts[0] = _draw_instrument(rng, o, clip_s)
        velocity_db = np.concatenate([[rng.uniform(-3, 3)], rng.uniform(-8, 0, len(midi) - 1)])
        amps, stretch = self._partials(rng, f0, insts, velocity_db)
        onsets, strikes = self._articulation(rng, len(midi), main.family in _DECAYING)
        out = self._render_voices(rng, f0, amps, stretch, insts, onsets, strikes)
        if rng.random() < o.vibrato_prob:
            out = self._vibrato(rng, out)
        return self._finish(rng, out, main.family in _DECAYING, (onsets.min() + strikes) * self.sr)

    def _finish(
        self, rng: np.random.Generator, out: np.ndarray, decaying: bool, strikes_at: Optional[np.ndarray]
    ) -> np.ndarray:
        """What a recording adds to the instrument: drive, level, pick noise, drums, noise."""
        o = self.o
        if rng.random() < o.saturation_prob:
            peak = max(float(out.max()), -float(out.min()), 1e-12)
            out = np.tanh(out * np.float32(rng.uniform(1.5, 4.0) / peak))
        if rng.random() < o.reverb_prob:
            out = self._reverb(rng, out)
        level = self._normalise(out, rng.uniform(*o.level_db))
        if strikes_at is not None and decaying and rng.random() < o.attack_noise_prob:
            for start in np.rint(strikes_at).astype(np.int64):
                if 0 <= start < self.n:
                    self._burst(rng, out, int(start), rng.uniform(0.003, 0.025), level * _db(rng.uniform(-20, -6)))
        if rng.random() < o.percussion_prob:
            self._add_percussion(rng, out, level * _db(rng.uniform(-12, 3)), int(rng.integers(1, 7)))
        if rng.random() < o.noise_prob:
            out += self._noise(rng, level * _db(-rng.uniform(*o.snr_db)))
        return out

    def _reverb(self, rng: np.random.Generator, dry: np.ndarray) -> np.ndarray:
        """Dry signal plus itself convolved with exponentially decaying noise (a room)."""
        rt60 = rng.uniform(0.2, 1.5)
        length = min(int(rt60 * self.sr), self.n)
        noise = _noise_bank(self._bank_len)[0]
        offset = int(rng.integers(0, self._bank_len - length))
        t = np.arange(length, dtype=np.float32) / np.float32(self.sr)
        response = noise[offset : offset + length] * np.exp(np.float32(-6.91 / rt60) * t)
        size = 1 << int(math.ceil(math.log2(self.n + length)))
        wet = np.fft.irfft(np.fft.rfft(dry, size) * np.fft.rfft(response, size), size)[: self.n]
        dry_rms = math.sqrt(float(np.dot(dry, dry)) / self.n) + 1e-12
        wet_rms = math.sqrt(float(np.dot(wet, wet)) / self.n) + 1e-12
        mix = rng.uniform(0.1, 0.5)
        return (dry + wet.astype(np.float32) * np.float32(mix * dry_rms / wet_rms)).astype(np.float32)

    def _normalise(self, out: np.ndarray, level_db: float) -> float:
        """Scale ``out`` in place to an RMS of ``level_db`` dBFS; returns that RMS."""
        level = float(_db(level_db))
        rms = math.sqrt(float(np.dot(out, out)) / self.n)
        if rms > 1e-12:
            out *= np.float32(level / rms)
        return level

    # ------------------------------------------------------------- timbre
    def _partials(
        self, rng: np.random.Generator, f0: np.ndarray, insts: Sequence["_Instrument"], velocity_db: np.ndarray
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Partial amplitudes and stretch factors, each (notes, max_partials).

        A note's level is its velocity plus what the clip's EQ does to it (clipped to
        +-6 dB), and never more than 15 dB below the loudest note, so no chord tone
        vanishes. A partial above 0.45 * sample_rate gets amplitude 0 (no aliasing).
        """
        k = np.arange(1, self.o.max_partials + 1, dtype=np.float64)[None, :]
        if all(inst is insts[0] for inst in insts):
            col = lambda name: np.array([[getattr(insts[0], name)]])  # noqa: E731
        else:
            col = lambda name: np.array([getattr(i, name) for i in insts])[:, None]  # noqa: E731
        stretch = np.sqrt(1.0 + col("inharmonicity") * k**2)
        freq = f0[:, None] * k * stretch
        amps = k ** -col("slope")
        amps = np.where(k % 2 == 0, amps * col("even_gain"), amps)
        amps = amps / (1.0 + (freq / col("cutoff_hz")) ** 2)  # (notes, partials) from here on
        amps *= _db(rng.normal(0.0, 1.0, amps.shape) * col("jitter_db"))
        amps[:, 0] *= col("fundamental_gain")[:, 0]
        amps[freq >= 0.45 * self.sr] = 0.0
        plain = np.sqrt((amps**2).sum(axis=1)) + 1e-12
        amps *= self._eq(rng, freq)
        energy = np.sqrt((amps**2).sum(axis=1)) + 1e-12
        level_db = velocity_db + np.clip(20.0 * np.log10(energy / plain), -6.0, 6.0)
        level_db = np.maximum(level_db, level_db.max() - 15.0)
        amps *= (_db(level_db) / energy)[:, None]
        return amps, np.broadcast_to(stretch, amps.shape)

    def _eq(self, rng: np.random.Generator, freq: np.ndarray) -> np.ndarray:
        """Gain at ``freq``: a random tilt around 500 Hz, 0-2 broad body resonances and
        perhaps the band limits of a cheap recording (12 dB/octave slopes)."""
        freq = np.maximum(freq, 1.0)
        octaves = np.log2(freq / 500.0)
        gain_db = rng.uniform(-self.o.eq_tilt_db, self.o.eq_tilt_db) * octaves
        for _ in range(int(rng.integers(0, 3))):
            centre = rng.uniform(-1.3, 3.0)  # 200 Hz .. 4 kHz, in octaves from 500 Hz
            gain_db = gain_db + rng.uniform(-6, 6) * np.exp(-0.5 * ((octaves - centre) / rng.uniform(0.3, 1.0)) ** 2)
        if rng.random() < self.o.band_limit_prob:
            gain_db = gain_db - 10.0 * np.log10(1.0 + (_log_uniform(rng, 40.0, 100.0) / freq) ** 4)
        if rng.random() < self.o.band_limit_prob:
            gain_db = gain_db - 10.0 * np.log10(1.0 + (freq / _log_uniform(rng, 2500.0, 8000.0)) ** 4)
        return _db(gain_db)

    # ------------------------------------------------------- articulation
    def _articulation(self, rng: np.random.Generator, n_notes: int, decaying: bool) -> Tuple[np.ndarray, np.ndarray]:
        """Onset of each note (s, notes sorted low to high) and the chord's strike times.

        The chord may already be sounding when the clip starts, start a little late, be
        strummed (5-35 ms between strings) or arpeggiated; every note starts in the first
        half of the clip. Decaying instruments may strike the chord again.
        """
        clip = self.n / self.sr
        r = rng.random()
        t0 = rng.uniform(-0.5, 0.0) * clip if r < 0.25 else (rng.uniform(0.0, 0.15) * clip if r < 0.45 else 0.0)
        offsets: np.ndarray = np.zeros(n_notes)
        a = rng.random()
        if a < self.o.strum_prob:
            offsets = np.arange(n_notes) * rng.uniform(0.005, 0.035)
            if rng.random() < 0.4:
                offsets = offsets[::-1].copy()  # up-strum: high strings first
        elif a < self.o.strum_prob + self.o.arpeggio_prob and n_notes > 1:
            step = min(rng.uniform(0.06, 0.18), (0.5 * clip - max(t0, 0.0)) / (n_notes - 1))
            order = np.arange(n_notes)
            if rng.random() < 0.4:
                order = rng.permutation(n_notes)
            offsets = order * step
        strikes = np.zeros(1)
        if decaying and rng.random() < self.o.repeat_prob:
            strikes = np.arange(0.0, clip - t0, rng.uniform(0.2, 0.5))
        return t0 + offsets, strikes

    # ------------------------------------------------------------- voices
    def _render_voices(
        self,
        rng: np.random.Generator,
        f0: np.ndarray,
        amps: np.ndarray,
        stretch: np.ndarray,
        insts: Sequence["_Instrument"],
        onsets: np.ndarray,
        strikes: np.ndarray,
    ) -> np.ndarray:
        """Sum of every voice (a note, or one band of its partials) under its envelope."""
        voice_rows, index, env_params = [], [], []
        for i, inst in enumerate(insts):
            split = inst.split if inst.split < amps.shape[1] else 0
            bands = ((0, split, False), (split, amps.shape[1], True)) if split else ((0, amps.shape[1], False),)
            for lo, hi, high in bands:
                row = np.zeros(amps.shape[1])
                row[lo:hi] = amps[i, lo:hi]
                if row.any():
                    voice_rows.append(row)
                    index.append(i)
                    env_params.append(inst.envelope(high))
        rows, freqs, stretches, onset_v = np.array(voice_rows), f0[index], stretch[index], onsets[index]
        if rng.random() < self.o.detune_prob:  # chorus: a second copy of every voice, a few cents off
            cents = rng.uniform(4, 15) * np.where(np.arange(len(freqs)) % 2 == 0, 1.0, -1.0)
            rows = np.concatenate([rows, rows * rng.uniform(0.5, 1.0)])
            freqs = np.concatenate([freqs, freqs * 2.0 ** (cents / 1200.0)])
            stretches, onset_v = np.concatenate([stretches, stretches]), np.concatenate([onset_v, onset_v])
            env_params = env_params * 2
        loops = self._loops(rng, freqs, rows, stretches)
        out = self._mix(loops, env_params, np.rint(onset_v * self.sr).astype(np.int64), strikes)
        clip_env = self._clip_envelope(rng, insts[-1], float(onsets.max()))  # [-1]: the main timbre
        if clip_env is not None:
            out *= self._upsample(clip_env)[: self.n]
        return out

    def _loops(self, rng: np.random.Generator, freqs: np.ndarray, amps: np.ndarray, stretch: np.ndarray) -> list:
        """One exactly periodic float32 loop per voice.

        The loop length is a 7-smooth size (fast irfft) holding a whole number ``m`` of
        periods, the shortest that puts the fundamental within 3 cents of ``freqs`` (real
        instruments stray as far); partial ``k`` sits at bin ``round(k * m * stretch_k)``.
        """
        sizes = _loop_sizes()
        cycles = freqs[:, None] * (sizes / self.sr)[None, :]  # periods per candidate loop
        m = np.maximum(1.0, np.rint(cycles))
        error = np.abs(m - cycles) / cycles  # relative frequency error
        good = error < 2.0 ** (3.0 / 1200.0) - 1.0  # the shortest loop within 3 cents, else the closest
        pick = np.where(good.any(axis=1), good.argmax(axis=1), error.argmin(axis=1))
        rows = np.arange(len(freqs))
        lengths, periods = sizes[pick].astype(np.int64), m[rows, pick]
        k = np.arange(1, amps.shape[1] + 1)[None, :]
        bins = np.rint(k * periods[:, None] * stretch).astype(np.int64)
        phase = rng.uniform(0.0, 2.0 * np.pi, amps.shape)
        coef = ((amps * (lengths[:, None] / 2.0)) * np.exp(1j * phase)).astype(np.complex64)
        # Partials above Nyquist have amplitude 0 and come last: write only the prefix before them.
        used = amps.shape[1] - np.argmax(amps[:, ::-1] > 0, axis=1)
        loops: list = [None] * len(freqs)
        row: SupportsIndex  # a position in ``group``, then a voice of it
        for size in dict.fromkeys(lengths.tolist()):  # voices of one length share one irfft call
            group = np.flatnonzero(lengths == size)
            spec = np.zeros((len(group), size // 2 + 1), np.complex64)
            for row, v in enumerate(group):
                spec[row, bins[v, : used[v]]] = coef[v, : used[v]]
            for row, loop in zip(group, np.fft.irfft(spec, n=size, axis=-1)):
                loops[row] = loop
        return loops

    # ---------------------------------------------------------- envelopes
    def _clip_envelope(self, rng: np.random.Generator, inst: "_Instrument", last_onset: float) -> Optional[np.ndarray]:
        """Gain shared by every voice on the envelope grid: tremolo and an early release."""
        t = self._grid
        gain = None
        if inst.family not in _DECAYING and rng.random() < self.o.tremolo_prob:
            depth, rate = rng.uniform(0.05, 0.3), rng.uniform(3.0, 8.0)
            gain = 1.0 - depth * (0.5 + 0.5 * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
        if rng.random() < self.o.release_prob:
            clip = self.n / self.sr
            start = rng.uniform(min(max(last_onset + 0.2 * clip, 0.5 * clip), 0.95 * clip), 0.95 * clip)
            release = np.exp(-np.maximum(t - start, 0.0) / rng.uniform(0.03, 0.3))
            gain = release if gain is None else gain * release
        return None if gain is None else gain.astype(np.float32)

    def _envelope(self, params: Tuple[float, ...], start: int, length: int, strikes: np.ndarray) -> np.ndarray:
        """Per-sample envelope for times ``(start + arange(length)) / sample_rate`` after the onset.

        ``params`` is ``(attack, shape, sustain, w1, r1, r2)``: ``(t / attack) ** shape``
        rises over ``attack`` s, then ``sustain + w1 exp(-r1 t) + (1 - sustain - w1)
        exp(-r2 t)``; each strike time restarts it. Evaluated on a grid every ``_HOP``
        samples and interpolated linearly.
        """
        attack, shape, sustain, w1, r1, r2 = params
        t = (start + _HOP * np.arange(-(-length // _HOP) + 1)) / self.sr
        if len(strikes) > 1:
            last = np.searchsorted(strikes, t, side="right") - 1
            t = np.where(last >= 0, t - strikes[np.maximum(last, 0)], -1.0)
        env = np.clip(t / attack, 0.0, 1.0)
        if shape != 1.0:
            env **= shape
        terms = {r1: w1}
        terms[r2] = terms.get(r2, 0.0) + 1.0 - sustain - w1
        decay = [w * np.exp(-r * np.maximum(t, 0.0)) for r, w in terms.items() if w != 0.0]
        if decay:
            env *= sustain + sum(decay)
        elif sustain != 1.0:
            env *= sustain
        return self._upsample(env.astype(np.float32))[:length]

    def _upsample(self, env: np.ndarray) -> np.ndarray:
        """Grid envelope (grid,) -> per sample ((grid - 1) * hop,), linear."""
        return (env[:-1, None] + (env[1:] - env[:-1])[:, None] * self._ramp).reshape(-1)

    def _mix(self, loops: list, params: list, shifts: np.ndarray, strikes: np.ndarray) -> np.ndarray:
        """Sum of loop ``v`` tiled and shaped by its envelope, delayed by ``shifts[v]`` samples.

        One envelope per distinct ``params`` covers every delay (sliced); voices that also
        share a delay are summed before the one multiplication.
        """
        out = np.zeros(self.n, np.float32)
        for p in dict.fromkeys(params):
            members = [v for v, q in enumerate(params) if q == p]
            lo, hi = int(shifts[members].min()), int(shifts[members].max())
            env = self._envelope(p, -hi, self.n + hi - lo, strikes)
            for s in dict.fromkeys(shifts[members].tolist()):
                group = [v for v in members if shifts[v] == s]
                window = env[hi - s : hi - s + self.n]
                if len(group) == 1:
                    _tile_into(out, loops[group[0]], window)
                    continue
                acc = np.zeros(self.n, np.float32)
                for v in group:
                    _tile_into(acc, loops[v], None)
                acc *= window
                out += acc
        return out

    # ------------------------------------------------------------ effects
    def _vibrato(self, rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
        """Whole-clip pitch modulation (vibrato or tape wow) by reading ``x`` at warped times."""
        rate = rng.uniform(4.0, 7.0) if rng.random() < 0.7 else rng.uniform(0.5, 2.0)
        depth = 2.0 ** (rng.uniform(5.0, 20.0) / 1200.0) - 1.0
        amp, phase = depth * self.sr / (2.0 * np.pi * rate), rng.uniform(0, 2 * np.pi)
        n = np.arange(self.n, dtype=np.float32)
        # Read x at n + shift(n); the shift stays within a few samples, so float32 is exact enough.
        shift = np.sin(n * np.float32(2.0 * np.pi * rate / self.sr) + np.float32(phase))
        shift -= np.float32(math.sin(phase))
        shift *= np.float32(amp)
        whole = np.floor(shift)
        frac = shift - whole
        i = np.arange(self.n) + whole.astype(np.int64)
        np.clip(i, 0, self.n - 2, out=i)
        lo = x[i]
        return lo + frac * (x[i + 1] - lo)

    def _noise(self, rng: np.random.Generator, rms: float) -> np.ndarray:
        """Stationary noise of a random colour (a mix of two bank colours) at ``rms``."""
        bank = _noise_bank(self._bank_len)
        a, b = rng.integers(_NOISE_COLOURS, size=2)
        oa, ob = rng.integers(0, self._bank_len - self.n, size=2)
        mix = rng.uniform(0.0, 0.5 * np.pi)
        out = bank[a, oa : oa + self.n] * np.float32(rms * math.cos(mix))
        out += bank[b, ob : ob + self.n] * np.float32(rms * math.sin(mix))
        return out

    def _add_percussion(self, rng: np.random.Generator, out: np.ndarray, level: float, count: int) -> None:
        """Add ``count`` decaying noise bursts (hats, snares, thumps) at irregular times."""
        for _ in range(count):
            self._burst(rng, out, int(rng.integers(0, self.n)), rng.uniform(0.02, 0.25), level * rng.uniform(1, 4))

    def _burst(self, rng: np.random.Generator, out: np.ndarray, start: int, seconds: float, level: float) -> None:
        """Add an exponentially decaying noise burst of a random colour at ``start``."""
        bank = _noise_bank(self._bank_len)
        length = max(int(seconds * self.sr), 1)
        size = min(length, self.n - start)
        colour, offset = int(rng.integers(_NOISE_COLOURS)), int(rng.integers(0, self._bank_len - size))
        decay = np.exp(np.arange(size, dtype=np.float32) * np.float32(-1.0 / (rng.uniform(0.1, 0.4) * length)))
        decay *= np.float32(level)
        out[start : start + size] += bank[colour, offset : offset + size] * decay

    def _no_chord(self, rng: np.random.Generator) -> np.ndarray:
        """Noise, drum hits, (near) silence or crackle/wind: never a pitch."""
        kinds = self.o.no_chord_kinds
        kind = kinds[int(rng.integers(len(kinds)))]
        level_db = rng.uniform(*self.o.level_db)
        if kind == "silence":
            if rng.random() < 0.3:
                return np.zeros(self.n, np.float32)
            return self._noise(rng, float(_db(rng.uniform(-80.0, -55.0))))
        if kind == "percussion":
            out = np.zeros(self.n, np.float32)
            self._add_percussion(rng, out, 1.0, int(rng.integers(2, 11)))
            if rng.random() < 0.5:
                out += self._noise(rng, math.sqrt(float(np.dot(out, out)) / self.n) * float(_db(rng.uniform(-40, -15))))
        elif kind == "texture":
            out = np.zeros(self.n, np.float32)
            if rng.random() < 0.7:
                out += self._noise(rng, 1.0) * self._upsample(self._swell(rng))[: self.n]
            clicks = rng.poisson(rng.uniform(20.0, 400.0) * self.n / self.sr)
            positions = rng.integers(0, self.n, clicks)
            out[positions] += rng.normal(0.0, rng.uniform(1.0, 10.0), clicks).astype(np.float32)
        else:
            out = self._noise(rng, 1.0)
            if rng.random() < 0.5:
                out *= self._upsample(self._swell(rng))[: self.n]
        self._normalise(out, level_db)
        return out

    def _swell(self, rng: np.random.Generator) -> np.ndarray:
        """A slow random gain curve on the envelope grid (wind, breath, crowd)."""
        points = int(rng.integers(3, 9))
        knots = np.linspace(self._grid[0], self._grid[-1], points)
        return np.interp(self._grid, knots, rng.uniform(0.1, 1.0, points)).astype(np.float32)


def _tile_into(out: np.ndarray, loop: np.ndarray, env: Optional[np.ndarray]) -> None:
    """``out += env * loop`` with ``loop`` repeated over the length of ``out``."""
    size = loop.size
    whole = out.size // size * size
    view = out[:whole].reshape(-1, size)
    if env is None:
        view += loop
        out[whole:] += loop[: out.size - whole]
    else:
        view += env[:whole].reshape(-1, size) * loop
        out[whole:] += env[whole:] * loop[: out.size - whole]


# -------------------------------------------------------------------- voicing
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


# ---------------------------------------------------------------- instruments
@dataclass(frozen=True)
class _Instrument:
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


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _draw_instrument(rng: np.random.Generator, o: SynthOptions, clip_s: float) -> _Instrument:
    family = o.families[int(rng.integers(len(o.families)))]
    sustain, w1, r1, r2, shape = 1.0, 0.0, 0.0, 0.0, 1.0
    if family == "pluck":
        attack, sustain, w1 = rng.uniform(0.0005, 0.005), 0.0, 1.0
        r1 = r2 = 6.91 / _log_uniform(rng, 0.3, 4.0)
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
    string_like = family in _DECAYING
    band_split = o.brightness_decay and family in ("pluck", "piano", "brass")
    return _Instrument(
        family=family,
        slope=rng.uniform(0.5, 2.5),
        even_gain=rng.uniform(0.0, 0.35) if rng.random() < 0.25 else rng.uniform(0.5, 1.0),
        cutoff_hz=_log_uniform(rng, 1500.0, 12000.0),
        jitter_db=rng.uniform(0.0, 6.0),
        fundamental_gain=float(_db(rng.uniform(-12.0, 0.0))) if rng.random() < 0.25 else 1.0,
        inharmonicity=_log_uniform(rng, 1e-5, 6e-4) if string_like and rng.random() < o.inharmonicity_prob else 0.0,
        split=int(rng.integers(2, 5)) if band_split else 0,
        band_ratio=rng.uniform(1.5, 5.0) if band_split else 1.0,
        attack=float(attack),
        shape=shape,
        sustain=float(sustain),
        w1=float(w1),
        r1=float(r1),
        r2=float(r2),
    )
