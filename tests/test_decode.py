"""Viterbi decoding of frame posteriors into chord segments."""

import inspect

import numpy as np
import pytest

from chordexp.decode import (
    DECODER_DEFAULTS,
    DecoderSettings,
    decode_segments,
    state_log_likelihoods,
    state_to_chord,
    viterbi,
)


def posteriors(frames):
    """frames: list of (root, chord_type, bass) per frame -> confident log-posteriors."""
    n = len(frames)
    ct, root, bass = (np.full((n, k), np.log(0.2 / (k - 1))) for k in (32, 12, 12))
    for i, (r, t, b) in enumerate(frames):
        ct[i, t] = root[i, r] = bass[i, b] = np.log(0.8)
    return ct, root, bass


def test_state_layout_round_trips():
    ll = state_log_likelihoods(np.zeros((1, 32)), np.zeros((1, 12)))
    assert ll.shape == (1, 373)
    assert state_to_chord(0) == (0, 0)
    assert state_to_chord(1 + 9 * 12 + 7) == (7, 10)  # maj7 is type 10 -> (10 - 1) * 12


def test_clean_posteriors_give_exact_segments_and_boundaries():
    frames = [(0, 1, 0)] * 20 + [(9, 2, 9)] * 15 + [(0, 0, 0)] * 5 + [(7, 9, 11)] * 10
    segments = decode_segments(*posteriors(frames), frame_rate=10.0, duration=5.0)
    assert segments == [(0.0, 1.95, "C:maj"), (1.95, 3.45, "A:min"), (3.45, 3.95, "N"), (3.95, 5.0, "G:7/3")]


def test_single_frame_flickers_are_smoothed_away():
    frames = [(0, 1, 0)] * 10 + [(2, 2, 2)] + [(0, 1, 0)] * 10
    segments = decode_segments(*posteriors(frames), frame_rate=10.0, duration=2.1, self_transition=0.95)
    assert [s[2] for s in segments] == ["C:maj"]


def test_viterbi_matches_brute_force_on_a_tiny_problem():
    rng = np.random.default_rng(0)
    ll = np.log(rng.dirichlet(np.ones(3), size=5))
    stay = 0.7
    trans = np.log(np.where(np.eye(3, dtype=bool), stay, (1 - stay) / 2))
    best, best_score = None, -np.inf
    for path in np.ndindex(*(3,) * 5):
        score = ll[0, path[0]] + sum(trans[path[t - 1], path[t]] + ll[t, path[t]] for t in range(1, 5))
        if score > best_score:
            best, best_score = path, score
    assert tuple(viterbi(ll, stay)) == best


def test_bad_self_transition_is_rejected():
    with pytest.raises(ValueError, match="self_transition"):
        viterbi(np.zeros((3, 2)), 1.0)


def test_silent_frames_can_only_be_no_chord():
    frames = [(0, 1, 0)] * 30
    silent = np.zeros(30, dtype=bool)
    silent[20:] = True
    segments = decode_segments(*posteriors(frames), frame_rate=10.0, duration=3.0, silent=silent)
    assert segments == [(0.0, 1.95, "C:maj"), (1.95, 3.0, "N")]


def test_decoder_settings_read_the_given_value_then_the_models_then_the_default():
    saved = {"self_transition": 0.99, "prior_weight": 0.25, "type_prior": [0.5, 0.5]}
    settings = DecoderSettings.of_model(saved, self_transition=None, prior_weight=-1.5)
    assert settings.self_transition == 0.99  # the model's
    assert settings.prior_weight == -1.5  # given
    assert settings.estimate_tuning is DECODER_DEFAULTS.estimate_tuning  # neither: the default
    assert DecoderSettings.of_model(None) == DECODER_DEFAULTS


def test_a_model_without_a_decoder_decodes_with_the_defaults():
    from chordexp.inference.backends import ExportedRecognizer
    from chordexp.inference.recognizer import ChordRecognizer

    for constructor in (ChordRecognizer.__init__, ExportedRecognizer.__init__, decode_segments):
        for name, param in inspect.signature(constructor).parameters.items():
            if name in ("self_transition", "prior_weight", "estimate_tuning", "silence_db"):
                assert param.default == getattr(DECODER_DEFAULTS, name), (constructor, name)
