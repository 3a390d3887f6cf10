"""``transpositions``: the posteriors also taken with the front end moved by whole
semitones, rotated back and averaged (``ChordRecognizer.posteriors``)."""

from __future__ import annotations

import numpy as np
import pytest

from chordexp.inference import ChordRecognizer, ready_model
from chordexp.inference.recognizer import log_normalised


def triad(rate: int, root_hz: float = 261.63, seconds: float = 6.0) -> np.ndarray:
    """A major triad (root, major third, fifth) with a few harmonics."""
    t = np.arange(int(seconds * rate)) / rate
    tones = [root_hz * 2 ** (s / 12) for s in (0, 4, 7)]
    return sum(0.2 / h * np.sin(2 * np.pi * f * h * t) for f in tones for h in (1, 2, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def recognizer():
    return ChordRecognizer.from_checkpoint(ready_model(), transpositions=0)


def test_moving_the_filters_a_semitone_up_makes_the_model_hear_the_chord_a_semitone_lower(recognizer):
    audio = triad(recognizer.sample_rate)  # C major
    heard = [int(np.bincount(recognizer.tuned_posteriors(audio, 100.0 * k)["root"].argmax(1)).argmax()) for k in (0, 1)]
    assert heard == [0, 11]  # C, then B: the rotation back is by +k


def test_the_average_is_the_rotated_posteriors_renormalised(recognizer):
    audio = triad(recognizer.sample_rate, root_hz=196.0)  # G major
    parts = {k: recognizer.tuned_posteriors(audio, 100.0 * k) for k in (-1, 0, 1)}
    recognizer.transpositions = 1
    try:
        averaged = recognizer.posteriors(audio, 0.0)
    finally:
        recognizer.transpositions = 0
    for head in ("chord_type", "root", "bass_note"):
        moved = [np.roll(parts[k][head], k, axis=1) if head != "chord_type" else parts[k][head] for k in (-1, 0, 1)]
        np.testing.assert_allclose(averaged[head], log_normalised(np.mean(moved, axis=0)), atol=1e-6)
        np.testing.assert_allclose(np.exp(averaged[head]).sum(axis=1), 1.0, atol=1e-5)
    assert int(np.bincount(averaged["root"].argmax(1)).argmax()) == 7  # still G


def test_the_ready_model_carries_the_decoder_chosen_on_the_development_sets():
    shipped = ChordRecognizer.from_checkpoint(ready_model())
    assert (shipped.transpositions, shipped.self_transition, shipped.prior_weight, shipped.estimate_tuning) == (
        1,
        0.97,
        -1.0,
        True,
    )


def test_export_writes_the_decoder_given_over_the_saved_one(tmp_path):
    from chordexp.export import main

    out = tmp_path / "m.pt"
    assert main([f"checkpoint={ready_model()}", "format=checkpoint", f"output={out}", "transpositions=0"]) == 0
    exported = ChordRecognizer.from_checkpoint(out)
    assert exported.transpositions == 0 and exported.self_transition == 0.97  # given, and kept
