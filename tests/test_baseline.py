"""chordexp.baseline: chroma + templates + Viterbi on audio whose chords we know."""

import subprocess
import sys
from pathlib import Path

import mir_eval
import numpy as np
import pytest
import soundfile

from chordexp.baseline import _STATES, chord_states, main, transcribe
from chordexp.chords import CHORD_TYPES, chord_pitch_classes

REPO = Path(__file__).resolve().parents[1]
RATE = 22050  # not the baseline's rate: the resampling is part of what is tested


def harmonic_chord(midi_notes, seconds, rate=RATE, partials=6, decay=0.6):
    """A sum of harmonic tones (partial k at decay**(k-1)) with short fades."""
    t = np.arange(int(seconds * rate)) / rate
    out = np.zeros_like(t)
    for note in midi_notes:
        f0 = 440.0 * 2 ** ((note - 69) / 12)
        for k in range(1, partials + 1):
            out += decay ** (k - 1) * np.sin(2 * np.pi * k * f0 * t)
    fade = np.minimum(1.0, np.minimum(t / 0.01, (seconds - t) / 0.03))
    return (out * fade).astype(np.float32)


def c_major_then_a_minor(rate=RATE):
    """C:maj (bass C2) for 2 s, then A:min (bass A1) for 2 s."""
    c_major = harmonic_chord([36, 48, 52, 55, 60], 2.0, rate)
    a_minor = harmonic_chord([33, 45, 57, 60, 64], 2.0, rate)
    audio = np.concatenate([c_major, a_minor])
    return 0.05 * audio / np.abs(audio).max()


def test_states_cover_every_chord_type_root_and_chord_tone_bass():
    states, templates = chord_states()
    assert len({(r, t) for r, t, _ in states}) == 12 * (len(CHORD_TYPES) - 1)
    assert all(b in chord_pitch_classes(r, t) for r, t, b in states)
    assert np.allclose(np.linalg.norm(templates, axis=1), 1.0)
    assert states == _STATES


def test_finds_c_major_then_a_minor_with_the_change_at_2_seconds():
    segments = transcribe(c_major_then_a_minor(), RATE)
    chords = [s for s in segments if s[2] != "N"]
    assert [label for _, _, label in chords] == ["C:maj", "A:min"], segments
    assert abs(chords[0][1] - 2.0) < 0.3
    assert segments[0][0] == 0.0 and segments[-1][1] == pytest.approx(4.0, abs=1e-3)
    assert sum(e - s for s, e, label in segments if label == "N") < 0.3


def test_silence_between_chords_is_no_chord():
    gap = np.zeros(int(1.5 * RATE), dtype=np.float32)
    audio = np.concatenate([c_major_then_a_minor()[: 2 * RATE], gap, c_major_then_a_minor()[2 * RATE :]])
    labels = [label for _, _, label in transcribe(audio, RATE)]
    assert labels == ["C:maj", "N", "A:min"]


def test_stereo_input_and_pure_silence():
    stereo = np.stack([c_major_then_a_minor(), c_major_then_a_minor()], axis=1)
    assert [label for *_, label in transcribe(stereo, RATE) if label != "N"] == ["C:maj", "A:min"]
    assert [label for *_, label in transcribe(np.zeros(RATE, dtype=np.float32), RATE)] == ["N"]
    with pytest.raises(ValueError, match="non-empty"):
        transcribe(np.zeros(0, dtype=np.float32), RATE)


def test_cli_writes_one_lab_per_audio_file_mirroring_folders(tmp_path, capsys):
    songs = tmp_path / "songs"
    (songs / "live").mkdir(parents=True)
    soundfile.write(str(songs / "one.wav"), c_major_then_a_minor(), RATE)
    soundfile.write(str(songs / "live" / "two.flac"), c_major_then_a_minor(44100), 44100)
    (songs / "notes.txt").write_text("not audio")
    assert main([f"input={songs}", f"output={tmp_path / 'labs'}"]) == 0
    for lab in (tmp_path / "labs" / "one.lab", tmp_path / "labs" / "live" / "two.lab"):
        intervals, labels = mir_eval.io.load_labeled_intervals(str(lab))
        assert [label for label in labels if label != "N"] == ["C:maj", "A:min"]
        assert intervals[0, 0] == 0.0 and intervals[-1, 1] == pytest.approx(4.0, abs=1e-3)
    assert capsys.readouterr().out.count(" -> ") == 2


def test_cli_bad_input_is_one_line_and_nonzero(tmp_path):
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wave file")
    command = [sys.executable, "-m", "chordexp.baseline", f"input={tmp_path}", f"output={tmp_path / 'out'}"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith(f"error: {tmp_path / 'broken.wav'}: cannot decode audio")
    assert lines[-1] == "error: 1 of 1 file(s) could not be transcribed (see above)"
    with pytest.raises(ValueError, match="absent: no such file or folder"):
        main([f"input={tmp_path / 'absent'}", f"output={tmp_path / 'out'}"])
