"""Writing stays inside the folder asked for: a run's checkpoint_dir inside the run folder,
predict's .lab files inside ``output=`` (no ``..``, no absolute path, no symbolic link
leading out), and label files' contents never become paths."""

from __future__ import annotations

from pathlib import Path

import fault_files as ff
import pytest
import soundfile

from chordexp.config import stays_inside
from chordexp.errors import UsageError
from chordexp.inference import ChordRecognizer, transcribe_files
from chordexp.labfile import LabFileError, load_lab
from chordexp.output_dirs import contained_target


@pytest.mark.parametrize(
    "value, inside",
    [
        ("checkpoints", True),
        ("a/b/ckpt", True),
        ("./ckpt", True),
        ("~/ckpt", True),
        ("/tmp/ckpt", False),
        ("../ckpt", False),
        ("a/../../ckpt", False),
        ("a/../b", False),
        (".", False),
        ("", False),
        ("C:\\ckpt", False),
        ("..\\ckpt", False),
    ],
)
def test_checkpoint_dir_must_stay_inside_the_run_folder(value, inside):
    assert stays_inside(value) is inside


@pytest.mark.parametrize("relative", ["../escape.lab", "a/../../escape.lab", "/etc/escape.lab"])
def test_a_lab_path_with_dots_or_absolute_is_refused(tmp_path, relative):
    with pytest.raises(UsageError, match=r"would be written outside output="):
        contained_target(tmp_path / "out", Path(relative))


def test_symbolic_links_in_the_output_cannot_lead_out(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "album").symlink_to(elsewhere, target_is_directory=True)
    (out / "song.lab").symlink_to(elsewhere / "victim.lab")
    assert contained_target(out, Path("inner/ok.lab")) == out / "inner" / "ok.lab"
    for relative in ("album/b.lab", "song.lab"):
        with pytest.raises(UsageError, match=rf"{relative}: would be written outside output="):
            contained_target(out, Path(relative))


def _songs_with_symlinked_output(tmp_path: Path):
    """``songs/album/b.wav`` and an ``out/`` whose ``album`` is a symlink to ``elsewhere/``."""
    songs, out, elsewhere = tmp_path / "songs", tmp_path / "out", tmp_path / "elsewhere"
    (songs / "album").mkdir(parents=True)
    soundfile.write(songs / "album" / "b.wav", ff.chord_audio(1.0), ff.SR)
    out.mkdir()
    elsewhere.mkdir()
    (out / "album").symlink_to(elsewhere, target_is_directory=True)
    return songs, out, elsewhere


def test_predict_writes_nothing_through_a_symlinked_output_folder(tmp_path):
    checkpoint = tmp_path / "ckpt.pt"
    checkpoint.write_bytes(ff.checkpoint_bytes())
    songs, out, elsewhere = _songs_with_symlinked_output(tmp_path)
    recognizer = ChordRecognizer.from_checkpoint(checkpoint)
    with pytest.raises(UsageError, match=r"album/b\.lab: would be written outside output="):
        transcribe_files(recognizer, songs, out, progress=False, echo=lambda *a: None)
    assert list(elsewhere.iterdir()) == []
    (out / "album").unlink()  # the same input into a plain folder works, nested as the input
    transcribe_files(recognizer, songs, out, progress=False, echo=lambda *a: None)
    assert (out / "album" / "b.lab").is_file()


@pytest.mark.parametrize("label", ["../../../tmp/pwn", "/etc/passwd", "C:maj/../../x"])
def test_path_like_labels_are_rejected_as_labels(tmp_path, label):
    lab = tmp_path / "a.lab"
    lab.write_text(f"0.0 1.0 {label}\n")
    with pytest.raises(LabFileError, match=r"a\.lab:1: .* is not a chord label mir_eval can parse"):
        load_lab(lab)


def test_the_baseline_writes_nothing_through_a_symlinked_output_folder(tmp_path):
    from chordexp.baseline import main

    songs, out, elsewhere = _songs_with_symlinked_output(tmp_path)
    with pytest.raises(UsageError, match=r"album/b\.lab: would be written outside output="):
        main([f"input={songs}", f"output={out}"])
    assert list(elsewhere.iterdir()) == []
