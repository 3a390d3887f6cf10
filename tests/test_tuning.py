"""Global tuning estimation and the front end moved by it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chordexp.model.frontend import LogFrequencySpectrogram
from chordexp.tuning import estimate_tuning

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
