"""Global tuning estimation and the front end moved by it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chordexp.model.frontend import LogFrequencySpectrogram
from chordexp.tuning_estimate import estimate_tuning

RATE = 11025


def chord(cents: float, seconds: float = 3.0) -> np.ndarray:
    """A C major triad with harmonics, every note ``cents`` off A440."""
    t = np.arange(int(seconds * RATE)) / RATE
    out = np.zeros_like(t)
    for midi in (48, 60, 64, 67):
        f0 = 440.0 * 2 ** ((midi - 69 + cents / 100) / 12)
        for k in range(1, 6):
            out += np.sin(2 * np.pi * k * f0 * t) / k
    return (0.1 * out).astype(np.float32)


@pytest.mark.parametrize("cents", [-40.0, -17.0, 0.0, 12.0, 33.0])
def test_the_tuning_of_a_detuned_chord_is_found_within_3_cents(cents):
    assert estimate_tuning(chord(cents), RATE) == pytest.approx(cents, abs=3.0)


def test_nothing_pitched_gives_zero():
    assert estimate_tuning(np.zeros(RATE, np.float32), RATE) == 0.0


def test_a_tuned_front_end_sees_a_detuned_chord_as_the_in_tune_one():
    front = LogFrequencySpectrogram(sample_rate=RATE)
    in_tune = front(torch.from_numpy(chord(0.0))[None])
    sharp = torch.from_numpy(chord(30.0))[None]
    plain = front(sharp)
    original = front.filterbank
    with front.tuned(30.0):
        moved = front(sharp)
    assert front.filterbank is original  # restored
    error_plain = (plain - in_tune).abs().mean()
    error_moved = (moved - in_tune).abs().mean()
    assert error_moved < 0.25 * error_plain


def drifting_chord(mean_cents: float, swing_cents: float, seconds: float = 20.0) -> np.ndarray:
    """The C major chord with its tuning wandering sinusoidally around ``mean_cents``."""
    t = np.arange(int(seconds * RATE)) / RATE
    cents = mean_cents + swing_cents * np.sin(2 * np.pi * t / seconds)
    out = np.zeros_like(t)
    for midi in (48, 60, 64, 67):
        f0 = 440.0 * 2 ** ((midi - 69 + cents / 100) / 12)
        phase = 2 * np.pi * np.cumsum(f0) / RATE
        for k in range(1, 6):
            out += np.sin(k * phase) / k
    return (0.1 * out).astype(np.float32)


@pytest.mark.parametrize("mean", [-25.0, 10.0])
def test_a_tuning_that_drifts_within_a_recording_gives_its_mean(mean):
    assert estimate_tuning(drifting_chord(mean, 12.0), RATE) == pytest.approx(mean, abs=4.0)


def test_band_limited_and_mp3_coded_audio_keeps_its_tuning():
    """Records as the real development set has them: 16 kHz, 32 kbit/s MP3, nothing above ~7 kHz."""
    import pedalboard
    import soxr

    audio = soxr.resample(chord(-30.0, 6.0), RATE, 16000).astype(np.float32)
    coded = pedalboard.Pedalboard([pedalboard.LowpassFilter(4000.0), pedalboard.MP3Compressor(9.5)])(audio, 16000)
    assert estimate_tuning(np.asarray(coded).reshape(-1), 16000) == pytest.approx(-30.0, abs=3.0)
