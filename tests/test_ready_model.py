"""The ready model inside the package, and the slim checkpoints it is made of
(``export format=checkpoint``): predict without ``checkpoint=`` transcribes real chords."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from chordexp.inference import ChordRecognizer, ready_model
from chordexp.inference.packaged_model import READY_CARD, READY_MODEL, sha256_of
from chordexp.training.checkpoint import CheckpointError, load_checkpoint_file
from tests.test_predict import write_tiny_checkpoint

SR = 22050
TRIADS = {"C:maj": (60, 64, 67), "A:min": (57, 60, 64), "E:maj": (52, 56, 59), "D:min": (50, 53, 57)}


def piano_like(keys, seconds: float = 4.0, sr: int = SR) -> np.ndarray:
    """Notes with six decaying harmonics each, struck twice, with a bass an octave below the root."""
    t = np.arange(int(seconds * sr)) / sr
    out = np.zeros_like(t)
    for key in (*keys, keys[0] - 12):
        f0 = 440.0 * 2 ** ((key - 69) / 12)
        for k in range(1, 7):
            out += np.sin(2 * np.pi * k * f0 * t) / k**1.5 * np.exp(-1.5 * (t % (seconds / 2)))
    return (0.1 * out / np.abs(out).max()).astype(np.float32)


def test_a_slim_checkpoint_transcribes_like_the_full_one_without_its_resume_state(tmp_path):
    full = write_tiny_checkpoint(tmp_path)
    slim = tmp_path / "slim.pt"
    run = subprocess.run(
        [sys.executable, "-m", "chordexp.export", f"checkpoint={full}", "format=checkpoint", f"output={slim}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    state = load_checkpoint_file(slim)
    assert state["optimizer"] == {} and state["rng"] == {} and "model_hparams" in state
    assert state["config"]["checkpoint_dir"] == full.parent.name  # no path of the training machine
    assert slim.stat().st_size < full.stat().st_size and load_checkpoint_file(full)["rng"] != {}
    audio = piano_like(TRIADS["C:maj"], sr=16000)
    a = ChordRecognizer.from_checkpoint(full).transcribe(audio, 16000).segments
    b = ChordRecognizer.from_checkpoint(slim).transcribe(audio, 16000).segments
    assert a == b


def test_the_ready_model_matches_its_card_and_hears_plain_triads():
    card = json.loads(READY_CARD.read_text())
    assert sha256_of(READY_MODEL) == card["sha256"] and READY_MODEL.stat().st_size < 10e6
    assert "experiment=release" in card["command"]
    recognizer = ChordRecognizer.from_checkpoint(ready_model())
    for label, keys in TRIADS.items():
        segments = recognizer.transcribe(piano_like(keys), SR).segments
        longest = max(segments, key=lambda s: s[1] - s[0])
        assert longest[2] == label, (label, segments)


def test_predict_without_a_checkpoint_uses_the_ready_model(tmp_path):
    soundfile.write(tmp_path / "song.wav", piano_like(TRIADS["A:min"]), SR)
    run = subprocess.run(
        [sys.executable, "-m", "chordexp.predict", f"input={tmp_path / 'song.wav'}", f"output={tmp_path / 'labs'}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = [line for line in (tmp_path / "labs" / "song.lab").read_text().splitlines() if not line.startswith("#")]
    assert any(line.split()[2] == "A:min" for line in lines), lines


def test_a_damaged_or_missing_ready_model_is_one_clear_error(tmp_path, monkeypatch):
    import chordexp.inference.packaged_model as module

    damaged = tmp_path / "release.pt"
    shutil.copy(READY_MODEL, damaged)
    with open(damaged, "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02\x03")
    monkeypatch.setattr(module, "READY_MODEL", damaged)
    with pytest.raises(CheckpointError, match="SHA-256") as error:
        module.ready_model()
    assert "\n" not in str(error.value)
    monkeypatch.setattr(module, "READY_MODEL", tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="pass checkpoint=PATH"):
        module.ready_model()
