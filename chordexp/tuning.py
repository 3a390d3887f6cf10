"""Global tuning: how far a recording sits from A440, in cents.

Recordings are often tens of cents off A440 (older records, live bands, varispeed).
A frame classifier reads pitch on a fixed grid, so a band 40 cents sharp sits between
two semitones of it. Chordino estimates the tuning first and shifts its bins; so does
``ChordRecognizer``: ``estimate_tuning`` finds the offset from the spectral peaks of the
whole recording, and the front end's filters move by it (``LogFrequencySpectrogram.tuned``).
"""

from __future__ import annotations

import math

import numpy as np

MAX_FRAMES = 300  # spread over the recording: enough peaks, bounded cost
#: Beyond this many cents the two nearest semitones are equally likely to be the one
#: the band meant (an estimate of -48 and one of +52 are the same within a few cents of
#: error), and a model trained on bands detuned by up to 50 cents already hears such a
#: recording as in tune with the nearer one: its filters are left where they are.
TRUSTED_CENTS = 40.0


def front_end_shift(audio: np.ndarray, sample_rate: int) -> float:
    """How far to move the front end's filters for ``audio``: its tuning when that is
    within ``TRUSTED_CENTS`` of A440, else 0."""
    cents = estimate_tuning(audio, sample_rate)
    return cents if abs(cents) <= TRUSTED_CENTS else 0.0


def estimate_tuning(audio: np.ndarray, sample_rate: int, fmin: float = 80.0, fmax: float = 2000.0) -> float:
    """Offset of ``audio``'s pitches from the A440 equal-tempered grid, in cents, in [-50, 50).

    Spectral peaks between ``fmin`` and ``fmax`` (parabolic interpolation on the log
    magnitude, ~1.3 Hz bins) each vote with their energy for their distance to the
    nearest semitone; the circular mean of the votes is the tuning. 0.0 when there is
    nothing pitched to measure. Energy votes (not magnitude) halve the error on real
    records (1.6 against 3.4 cents mean, 39 excerpts of 1960s studio recordings, against
    their whole song's estimate): the many weak peaks of voices, drums and codec noise
    count for less. A tuning that drifts gives its mean.
    """
    audio = np.asarray(audio, dtype=np.float64)
    n_fft = 1 << max(8, int(math.ceil(math.log2(sample_rate / 1.3))))
    if audio.size < n_fft:
        audio = np.pad(audio, (0, n_fft - audio.size))
    starts = np.linspace(0, audio.size - n_fft, min(MAX_FRAMES, 1 + (audio.size - n_fft) // (n_fft // 2))).astype(int)
    window = np.hanning(n_fft)
    frames = np.stack([audio[s : s + n_fft] * window for s in starts])
    mag = np.abs(np.fft.rfft(frames, axis=1))
    lo, hi = int(fmin * n_fft / sample_rate), min(int(fmax * n_fft / sample_rate), mag.shape[1] - 2)
    band = mag[:, lo - 1 : hi + 2]
    centre = band[:, 1:-1]
    peak = (centre > band[:, :-2]) & (centre >= band[:, 2:]) & (centre > 0.05 * centre.max(axis=1, keepdims=True))
    rows, cols = np.nonzero(peak)
    if rows.size == 0:
        return 0.0
    left, mid, right = (np.log(band[rows, cols + k] + 1e-12) for k in (0, 1, 2))
    denominator = left - 2 * mid + right
    offset = np.where(
        np.abs(denominator) > 1e-12, 0.5 * (left - right) / np.where(denominator == 0, 1, denominator), 0.0
    )
    freq = (lo + cols + np.clip(offset, -0.5, 0.5)) * sample_rate / n_fft
    cents = 1200.0 * np.log2(freq / 440.0)
    angle = 2 * np.pi * cents / 100.0
    weight = centre[rows, cols] ** 2  # energy: the strong sustained partials, not the noise floor's peaks
    mean = math.atan2(float(np.sum(weight * np.sin(angle))), float(np.sum(weight * np.cos(angle))))
    value = mean * 100.0 / (2 * np.pi)
    return float(((value + 50.0) % 100.0) - 50.0)
