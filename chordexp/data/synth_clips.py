"""Fast additive synthesis of labelled chord clips (numpy only, no global RNG).

A clip holds one chord (or ``N``). The chord is voiced across octaves
(``chordexp.data.chord_voicings``) and rendered additively on a drawn timbre
(``chordexp.data.synth_instruments``): each note's partials are written at exact bins
into the spectrum of a short, exactly periodic loop (one small irfft per voice), the
loop is tiled over the clip and shaped by an envelope sampled on a coarse grid. That
keeps the cost per voice near a few passes over the clip, whatever the number of
partials. What a recording adds, and the ``N`` clips, come from
``chordexp.data.clip_effects``; what may be drawn, from ``chordexp.data.synth_options``
(``SynthOptions`` and ``make_options`` are importable from here too).

Every random choice comes from the ``numpy.random.Generator`` passed in, so a clip is a
pure function of that generator's seed. The only other randomness is a fixed bank of
coloured noise, built once per process from a constant seed.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional, Sequence, SupportsIndex, Tuple

import numpy as np

from chordexp.chords import CHORD_INTERVALS, CHORD_TYPES, NO_CHORD, NUM_CHORD_TYPES
from chordexp.data.chord_voicings import voice_chord
from chordexp.data.clip_effects import HOP, ClipEffects, db
from chordexp.data.soundfont import SampledChordPlayer
from chordexp.data.synth_instruments import DECAYING, Instrument, draw_instrument, log_uniform
from chordexp.data.synth_options import SynthOptions, make_options

__all__ = ["ChordSynth", "SynthOptions", "make_options"]


@lru_cache(maxsize=None)
def _loop_sizes() -> np.ndarray:
    """7-smooth lengths in [2048, 65536]: irfft is fast at these sizes."""
    sizes = [2**a * 3**b * 5**c * 7**d for a in range(17) for b in range(11) for c in range(7) for d in range(6)]
    return np.array(sorted(s for s in sizes if 2048 <= s <= 65536), dtype=np.float64)


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
        self._fx = ClipEffects(options, sample_rate, self.n)
        self._grid = self._fx.grid  # clip-level gain grid (s)
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
            return self._fx.no_chord(rng)
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
        rms = math.sqrt(float(np.dot(labelled, labelled)) / self.n) * float(db(rng.uniform(-3.0, 3.0)))
        self._fx.normalise(neighbour, 20.0 * math.log10(max(rms, 1e-9)))
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
            return self._fx.finish(rng, self._samples.play(rng, midi), decaying=True, strikes_at=None)
        tuning = rng.uniform(-o.tuning_cents, o.tuning_cents) / 100.0
        f0 = 440.0 * 2.0 ** ((midi - 69 + tuning) / 12.0)
        clip_s = self.n / self.sr
        main = draw_instrument(rng, o, clip_s)
        insts = [main] * len(midi)
        if rng.random() < o.bass_instrument_prob:
            insts[0] = draw_instrument(rng, o, clip_s)
        velocity_db = np.concatenate([[rng.uniform(-3, 3)], rng.uniform(-8, 0, len(midi) - 1)])
        amps, stretch = self._partials(rng, f0, insts, velocity_db)
        onsets, strikes = self._articulation(rng, len(midi), main.family in DECAYING)
        out = self._render_voices(rng, f0, amps, stretch, insts, onsets, strikes)
        if rng.random() < o.vibrato_prob:
            out = self._fx.vibrato(rng, out)
        return self._fx.finish(rng, out, main.family in DECAYING, (onsets.min() + strikes) * self.sr)

    # ------------------------------------------------------------- timbre
    def _partials(
        self, rng: np.random.Generator, f0: np.ndarray, insts: Sequence["Instrument"], velocity_db: np.ndarray
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
        amps *= db(rng.normal(0.0, 1.0, amps.shape) * col("jitter_db"))
        amps[:, 0] *= col("fundamental_gain")[:, 0]
        amps[freq >= 0.45 * self.sr] = 0.0
        plain = np.sqrt((amps**2).sum(axis=1)) + 1e-12
        amps *= self._eq(rng, freq)
        energy = np.sqrt((amps**2).sum(axis=1)) + 1e-12
        level_db = velocity_db + np.clip(20.0 * np.log10(energy / plain), -6.0, 6.0)
        level_db = np.maximum(level_db, level_db.max() - 15.0)
        amps *= (db(level_db) / energy)[:, None]
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
            gain_db = gain_db - 10.0 * np.log10(1.0 + (log_uniform(rng, 40.0, 100.0) / freq) ** 4)
        if rng.random() < self.o.band_limit_prob:
            gain_db = gain_db - 10.0 * np.log10(1.0 + (freq / log_uniform(rng, 2500.0, 8000.0)) ** 4)
        return db(gain_db)

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
        insts: Sequence["Instrument"],
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
            out *= self._fx.upsample(clip_env)[: self.n]
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
    def _clip_envelope(self, rng: np.random.Generator, inst: "Instrument", last_onset: float) -> Optional[np.ndarray]:
        """Gain shared by every voice on the envelope grid: tremolo and an early release."""
        t = self._grid
        gain = None
        if inst.family not in DECAYING and rng.random() < self.o.tremolo_prob:
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
        exp(-r2 t)``; each strike time restarts it. Evaluated on a grid every ``HOP``
        samples and interpolated linearly.
        """
        attack, shape, sustain, w1, r1, r2 = params
        t = (start + HOP * np.arange(-(-length // HOP) + 1)) / self.sr
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
        return self._fx.upsample(env.astype(np.float32))[:length]

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
