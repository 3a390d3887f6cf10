"""Chord vocabulary and Harte label conversion, checked against mir_eval's parser."""

import mir_eval
import numpy as np
import pytest

from chordexp.chords import (
    CHORD_INTERVALS,
    CHORD_TYPES,
    NUM_CHORD_TYPES,
    ChordLabelError,
    chord_pitch_classes,
    format_label,
    parse_label,
)

DESIGN_ORDER = (
    "N maj min dim aug sus2 sus4 5 1 7 maj7 min7 minmaj7 dim7 hdim7 maj6 min6 9 maj9 min9 "
    "11 min11 13 maj13 min13 maj(9) min(9) sus4(b7) aug(b7) 7(b9) 7(#9) maj6(9)"
).split()


def test_vocabulary_has_the_32_design_types_in_order():
    assert list(CHORD_TYPES) == DESIGN_ORDER
    assert NUM_CHORD_TYPES == 32
    assert set(CHORD_INTERVALS) == set(CHORD_TYPES)


@pytest.mark.parametrize(
    "label, expected",
    [
        ("C:maj7/3", (0, 10, 4)),
        ("A:min", (9, 2, 9)),
        ("Bb:7/b7", (10, 9, 8)),
        ("F#:min11/b3", (6, 21, 9)),
        ("Cb:maj", (11, 1, 11)),
        ("G", (7, 1, 7)),
        ("N", (0, 0, 0)),
        ("E:7(#9)/5", (4, 30, 11)),
        ("D:maj6(9)", (2, 31, 2)),
        ("Eb:sus4(b7)/4", (3, 27, 8)),
    ],
)
def test_parse_label_known_values(label, expected):
    assert parse_label(label) == expected


def test_every_label_round_trips_and_mir_eval_agrees():
    """All 12 roots x 31 qualities x every bass in the chord: format -> parse is the identity,
    and mir_eval encodes our label to the same root, pitch classes and bass."""
    checked = 0
    for chord_type in range(1, NUM_CHORD_TYPES):
        for root in range(12):
            pcs = chord_pitch_classes(root, chord_type)
            for bass in sorted(set(pcs)):
                label = format_label(root, chord_type, bass)
                assert parse_label(label) == (root, chord_type, bass), label
                ev_root, bitmap, ev_bass = mir_eval.chord.encode(label)
                assert ev_root == root, label
                assert (ev_root + ev_bass) % 12 == bass, label
                assert set(np.flatnonzero(bitmap)) == _mir_eval_tones(chord_type, bass - root), label
                checked += 1
    assert checked > 1000


def _mir_eval_tones(chord_type, bass_interval):
    """What mir_eval's bitmap holds: tones within the octave (it drops extensions above
    it, so C:maj(9) encodes like C:maj) plus the bass degree."""
    kept = {i for i in CHORD_INTERVALS[CHORD_TYPES[chord_type]] if i < 12}
    return kept | {bass_interval % 12}


def test_no_chord_formats_as_N_whatever_the_root():
    assert format_label(5, 0, 3) == "N"
    assert mir_eval.chord.encode("N")[0] == -1


@pytest.mark.parametrize("bad", ["H:maj", "C:foo", "C:maj/9x", "X", "", "C:maj/H", "c:min"])
def test_bad_labels_raise_one_clear_error(bad):
    with pytest.raises(ChordLabelError) as info:
        parse_label(bad)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("args", [(12, 1, 0), (0, 32, 0), (0, 1, -1)])
def test_format_rejects_out_of_range_indices(args):
    with pytest.raises(ChordLabelError):
        format_label(*args)
