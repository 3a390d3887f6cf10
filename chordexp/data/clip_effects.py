"""What a synthesised chord clip gets besides its chord (drive, a room, vibrato, pick
noise, drum hits, background noise at a random signal-to-noise ratio, its level), and
the ``N`` clips (noise, drums, near silence, crackle and wind) made of the same noise.

The noise comes from a fixed bank of coloured noise, built once per process from a
constant seed; every other random choice from the generator passed in.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Optional

import numpy as np

from chordexp.data.room import room_response, room_sound
from chordexp.data.synth_options import SynthOptions

HOP = 32  # envelope grid step in samples (0.7 ms at 44.1 kHz)
NOISE_COLOURS = 4  # white, pink, brown, blue


@lru_cache(maxsize=4)
def noise_bank(length: int) -> np.ndarray:
    """(4, length) float32 unit-RMS noise: white, pink, brown, blue. Same in every process."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([0x4E4F4953, length])))
    spec = np.fft.rfft(rng.standard_normal(length))
    freqs = np.maximum(np.arange(spec.size), 20.0 * length / 44100.0)
    bank = np.empty((NOISE_COLOURS, length), np.float32)
    for i, power in enumerate((0.0, -0.5, -1.0, 0.5)):
        x = np.fft.irfft(spec * freqs**power, n=length)
        bank[i] = x / np.sqrt(np.mean(x**2))
    return bank


def db(x: Any) -> Any:
    """Decibels -> amplitude gain (scalars or arrays)."""
    return 10.0 ** (np.asarray(x) / 20.0)


class ClipEffects:
    """Effects on clips of ``num_samples`` at ``sample_rate``, drawn as ``options`` allow;
    ``grid`` is the clip's envelope grid (every ``HOP`` samples, in seconds) and
    ``upsample`` turns a curve on it into one value per sample."""

    def __init__(self, options: SynthOptions, sample_rate: float, num_samples: int) -> None:
        self.o = options
        self.sr = float(sample_rate)
        self.n = int(num_samples)
        self.grid = np.arange(-(-self.n // HOP) + 1) * (HOP / self.sr)
        self._ramp = (np.arange(HOP, dtype=np.float32) / HOP)[None, :]
        self._bank_len = max(1 << 18, 1 << int(math.ceil(math.log2(2 * self.n))))

    def upsample(self, env: np.ndarray) -> np.ndarray:
        """Grid envelope (grid,) -> per sample ((grid - 1) * hop,), linear."""
        return (env[:-1, None] + (env[1:] - env[:-1])[:, None] * self._ramp).reshape(-1)

    def finish(
        self, rng: np.random.Generator, out: np.ndarray, decaying: bool, strikes_at: Optional[np.ndarray]
    ) -> np.ndarray:
        """What a recording adds to the instrument: drive, level, pick noise, drums, noise."""
        o = self.o
        if rng.random() < o.saturation_prob:
            peak = max(float(out.max()), -float(out.min()), 1e-12)
            out = np.tanh(out * np.float32(rng.uniform(1.5, 4.0) / peak))
        if rng.random() < o.reverb_prob:
            out = self._reverb(rng, out)
        level = self.normalise(out, rng.uniform(*o.level_db))
        if strikes_at is not None and decaying and rng.random() < o.attack_noise_prob:
            for start in np.rint(strikes_at).astype(np.int64):
                if 0 <= start < self.n:
                    self._burst(rng, out, int(start), rng.uniform(0.003, 0.025), level * db(rng.uniform(-20, -6)))
        if rng.random() < o.percussion_prob:
            self._add_percussion(rng, out, level * db(rng.uniform(-12, 3)), int(rng.integers(1, 7)))
        if rng.random() < o.noise_prob:
            out += self._noise(rng, level * db(-rng.uniform(*o.snr_db)))
        return out

    def _reverb(self, rng: np.random.Generator, dry: np.ndarray) -> np.ndarray:
        """Dry signal plus itself convolved with exponentially decaying noise (a room;
        how this differs from a song's room: ``chordexp.data.room``)."""
        rt60 = rng.uniform(0.2, 1.5)
        length = min(int(rt60 * self.sr), self.n)
        noise = noise_bank(self._bank_len)[0]
        offset = int(rng.integers(0, self._bank_len - length))
        response = room_response(noise[offset : offset + length], rt60, self.sr)
        wet = room_sound(dry, response, 1 << int(math.ceil(math.log2(self.n + length))))
        dry_rms = math.sqrt(float(np.dot(dry, dry)) / self.n) + 1e-12
        wet_rms = math.sqrt(float(np.dot(wet, wet)) / self.n) + 1e-12
        mix = rng.uniform(0.1, 0.5)
        return (dry + wet.astype(np.float32) * np.float32(mix * dry_rms / wet_rms)).astype(np.float32)

    def normalise(self, out: np.ndarray, level_db: float) -> float:
        """Scale ``out`` in place to an RMS of ``level_db`` dBFS; returns that RMS."""
        level = float(db(level_db))
        rms = math.sqrt(float(np.dot(out, out)) / self.n)
        if rms > 1e-12:
            out *= np.float32(level / rms)
        return level

    def vibrato(self, rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
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
        bank = noise_bank(self._bank_len)
        a, b = rng.integers(NOISE_COLOURS, size=2)
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
        bank = noise_bank(self._bank_len)
        length = max(int(seconds * self.sr), 1)
        size = min(length, self.n - start)
        colour, offset = int(rng.integers(NOISE_COLOURS)), int(rng.integers(0, self._bank_len - size))
        decay = np.exp(np.arange(size, dtype=np.float32) * np.float32(-1.0 / (rng.uniform(0.1, 0.4) * length)))
        decay *= np.float32(level)
        out[start : start + size] += bank[colour, offset : offset + size] * decay

    def no_chord(self, rng: np.random.Generator) -> np.ndarray:
        """Noise, drum hits, (near) silence or crackle/wind: never a pitch."""
        kinds = self.o.no_chord_kinds
        kind = kinds[int(rng.integers(len(kinds)))]
        level_db = rng.uniform(*self.o.level_db)
        if kind == "silence":
            if rng.random() < 0.3:
                return np.zeros(self.n, np.float32)
            return self._noise(rng, float(db(rng.uniform(-80.0, -55.0))))
        if kind == "percussion":
            out = np.zeros(self.n, np.float32)
            self._add_percussion(rng, out, 1.0, int(rng.integers(2, 11)))
            if rng.random() < 0.5:
                out += self._noise(rng, math.sqrt(float(np.dot(out, out)) / self.n) * float(db(rng.uniform(-40, -15))))
        elif kind == "texture":
            out = np.zeros(self.n, np.float32)
            if rng.random() < 0.7:
                out += self._noise(rng, 1.0) * self.upsample(self._swell(rng))[: self.n]
            clicks = rng.poisson(rng.uniform(20.0, 400.0) * self.n / self.sr)
            positions = rng.integers(0, self.n, clicks)
            out[positions] += rng.normal(0.0, rng.uniform(1.0, 10.0), clicks).astype(np.float32)
        else:
            out = self._noise(rng, 1.0)
            if rng.random() < 0.5:
                out *= self.upsample(self._swell(rng))[: self.n]
        self.normalise(out, level_db)
        return out

    def _swell(self, rng: np.random.Generator) -> np.ndarray:
        """A slow random gain curve on the envelope grid (wind, breath, crowd)."""
        points = int(rng.integers(3, 9))
        knots = np.linspace(self.grid[0], self.grid[-1], points)
        return np.interp(self.grid, knots, rng.uniform(0.1, 1.0, points)).astype(np.float32)
