"""What a production does to a band's mix: room reverb, EQ, band limits, bus
compression, noise and a master level.

One home for the mix/master DSP the song renderers share (``chordexp.data.songs``
masters every song with :func:`master`); all randomness comes from the generator passed in.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from chordexp.data.soundfont import tilt


def master(rng: np.random.Generator, mix: np.ndarray, sr: int, reverb_noise: np.ndarray) -> np.ndarray:
    """What a production adds: room reverb, EQ, band limits (as lossy codecs and small
    speakers do), bus compression, a little noise; then a random level."""
    out = mix.astype(np.float32)
    n = len(out)
    if rng.random() < 0.6:
        rt60 = rng.uniform(0.3, 2.0)
        length = min(int(rt60 * sr), n, len(reverb_noise))
        t = np.arange(length, dtype=np.float32) / np.float32(sr)
        response = reverb_noise[:length] * np.exp(np.float32(-6.91 / rt60) * t)
        size = 1 << int(math.ceil(math.log2(n + length)))
        wet = np.fft.irfft(np.fft.rfft(out, size) * np.fft.rfft(response, size), size)[:n].astype(np.float32)
        out = out + wet * np.float32(rng.uniform(0.1, 0.6) * _rms(out) / (_rms(wet) + 1e-12))
    if rng.random() < 0.6:
        out = tilt(out, sr, rng.uniform(-2.5, 2.5))
    if rng.random() < 0.5:
        out = band_limit(
            out,
            sr,
            low_hz=rng.uniform(30.0, 150.0) if rng.random() < 0.5 else None,
            high_hz=rng.uniform(3000.0, sr / 2) if rng.random() < 0.6 else None,
        )
    if rng.random() < 0.7:
        out = compress(out, sr, threshold_db=rng.uniform(-30.0, -12.0), ratio=rng.uniform(2.0, 8.0))
    if rng.random() < 0.5:
        out = out + rng.normal(0.0, _rms(out) * 10 ** (-rng.uniform(25.0, 50.0) / 20), n).astype(np.float32)
    out *= np.float32(10 ** (rng.uniform(-28.0, -10.0) / 20) / (_rms(out) + 1e-12))
    peak = float(np.abs(out).max(initial=0.0))
    if peak > 0.99:  # a limiter's job: soft-clip the peaks
        out = np.tanh(out / np.float32(peak / 1.2)).astype(np.float32) * np.float32(0.99 / math.tanh(1.2))
    return out.astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return math.sqrt(float(np.dot(x, x)) / max(len(x), 1))


def band_limit(audio: np.ndarray, sr: int, low_hz: Optional[float], high_hz: Optional[float]) -> np.ndarray:
    """High-pass below ``low_hz`` and low-pass above ``high_hz`` (smooth 2nd-order-like slopes)."""
    if low_hz is None and high_hz is None:
        return audio
    spectrum = np.fft.rfft(audio)
    freqs = np.fft.rfftfreq(len(audio), 1.0 / sr)
    gain = np.ones_like(freqs)
    if low_hz is not None:
        gain *= 1.0 / (1.0 + (low_hz / np.maximum(freqs, 1e-3)) ** 4)
    if high_hz is not None:
        gain *= 1.0 / (1.0 + (freqs / high_hz) ** 8)
    return np.fft.irfft(spectrum * gain, n=len(audio)).astype(np.float32)


def compress(audio: np.ndarray, sr: int, threshold_db: float, ratio: float) -> np.ndarray:
    """A bus compressor: gain from a smoothed RMS envelope (10 ms hops), above the
    threshold reduced by ``ratio``, with make-up gain."""
    hop = max(1, int(0.01 * sr))
    frames = len(audio) // hop + 1
    padded = np.pad(audio, (0, frames * hop - len(audio)))
    level = np.sqrt(np.mean(padded.reshape(frames, hop) ** 2, axis=1) + 1e-12)
    kernel = np.ones(5) / 5
    level = np.convolve(level, kernel, mode="same")
    level_db = 20 * np.log10(level + 1e-12) - 20 * np.log10(np.max(level) + 1e-12)
    over = np.maximum(level_db - threshold_db, 0.0)
    gain_db = -over * (1.0 - 1.0 / ratio)
    gain = 10 ** (gain_db / 20)
    gain_samples = np.interp(np.arange(len(audio)), np.arange(frames) * hop + hop / 2, gain)
    return (audio * gain_samples).astype(np.float32)
