"""Prediction: checkpoint + audio files -> MIREX .lab files, via the API and the CLI."""

import subprocess
import sys
from pathlib import Path

import mir_eval
import numpy as np
import pytest
import soundfile
import torch
from torch.utils.data import DataLoader, TensorDataset

from chordexp.inference import ChordRecognizer
from chordexp.model import ChordRecognitionModel
from chordexp.training import Trainer, TrainingConfig

SR = 16000


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


def write_tiny_checkpoint(folder):
    """A real (untrained) training checkpoint of a small 16 kHz model, as ``folder/model.pt``."""
    torch.manual_seed(0)
    model = ChordRecognitionModel(sample_rate=SR, d_model=32, num_blocks=1, num_heads=2, channels=4)
    data = TensorDataset(torch.randn(4, SR), torch.zeros(4, dtype=torch.long))
    loader = DataLoader(data, batch_size=2)
    trainer = Trainer(model, loader, loader, TrainingConfig(num_epochs=1, checkpoint_dir=str(folder)))
    path = folder / "model.pt"
    trainer.save_checkpoint(path)
    return path


def chord_audio(seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    mono = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono, 0.5 * mono], axis=1)


def read_lab(path: Path):
    intervals, labels = mir_eval.io.load_labeled_intervals(str(path))
    for label in labels:
        mir_eval.chord.encode(label)  # raises on anything mir_eval cannot parse
    return intervals, labels


def test_transcription_covers_the_audio_with_parseable_labels(checkpoint):
    recognizer = ChordRecognizer.from_checkpoint(checkpoint)
    result = recognizer.transcribe(chord_audio(7.3, 22050), 22050)
    starts = [s for s, _, _ in result.segments]
    ends = [e for _, e, _ in result.segments]
    assert starts[0] == 0.0 and ends[-1] == pytest.approx(7.3, abs=1e-3)
    assert all(a == b for a, b in zip(ends[:-1], starts[1:]))  # contiguous, no gaps
    for _, _, label in result.segments:
        mir_eval.chord.encode(label)
    assert result.probabilities["chord_type"].shape == (len(result.frame_times), 32)
    assert np.allclose(result.probabilities["root"].sum(axis=1), 1.0, atol=1e-4)


def test_stereo_and_resampled_input_give_the_same_frames_as_mono_at_the_model_rate(checkpoint):
    recognizer = ChordRecognizer.from_checkpoint(checkpoint)
    mono = recognizer.transcribe(chord_audio(3.0, SR), SR)
    stereo = recognizer.transcribe(chord_audio(3.0, 44100, channels=2) * np.float32(1.0), 44100)
    assert len(stereo.frame_times) == len(mono.frame_times)
    # same music (louder/softer channel mix and resampled): nearly the same posteriors
    assert np.abs(stereo.probabilities["chord_type"] - mono.probabilities["chord_type"]).max() < 0.05


def test_cli_writes_one_lab_per_file_keeping_folders(checkpoint, tmp_path):
    songs = tmp_path / "songs"
    (songs / "album").mkdir(parents=True)
    soundfile.write(songs / "a.wav", chord_audio(2.0, 44100, channels=2), 44100)
    soundfile.write(songs / "album" / "b.flac", chord_audio(65.0, 22050), 22050)
    (songs / "notes.txt").write_text("not audio")
    out = tmp_path / "labs"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "chordexp.predict",
            f"checkpoint={checkpoint}",
            f"input={songs}",
            f"output={out}",
            "probabilities=true",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    intervals, _ = read_lab(out / "a.lab")
    assert intervals[-1, 1] == pytest.approx(2.0, abs=1e-3)
    intervals, _ = read_lab(out / "album" / "b.lab")
    assert intervals[-1, 1] == pytest.approx(65.0, abs=1e-3)
    probs = np.load(out / "album" / "b.probs.npz")
    assert probs["chord_type"].shape[1] == 32 and len(probs["times"]) == probs["root"].shape[0]
    assert sorted(p.name for p in out.rglob("*.lab")) == ["a.lab", "b.lab"]


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d, c: [f"checkpoint={c}", f"input={d / 'missing.wav'}", f"output={d}"], "missing.wav"),
        (lambda d, c: [f"checkpoint={d / 'none.pt'}", f"input={d / 'ok.wav'}", f"output={d}"], "none.pt"),
        (lambda d, c: [f"checkpoint={d / 'ok.wav'}", f"input={d / 'ok.wav'}", f"output={d}"], "ok.wav"),
        (lambda d, c: [f"checkpoint={c}", f"input={d / 'bad.wav'}", f"output={d / 'o'}"], "bad.wav"),
        (lambda d, c: [f"checkpoint={c}", f"input={d / 'ok.wav'}"], "output"),
        (lambda d, c: [f"checkpoint={c}", f"input={d / 'ok.wav'}", f"output={d}", "bogus=1"], "bogus"),
    ],
    ids=["missing-input", "missing-checkpoint", "not-a-checkpoint", "corrupt-audio", "no-output", "unknown-key"],
)
def test_bad_input_gives_one_line_and_exit_2(checkpoint, tmp_path, make_args, message):
    soundfile.write(tmp_path / "ok.wav", chord_audio(1.0, SR), SR)
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    result = subprocess.run(
        [sys.executable, "-m", "chordexp.predict", *make_args(tmp_path, checkpoint)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


# --------------------------------------------------------------------------- one output per input


def test_output_names_keep_every_dot_and_the_extension_where_names_collide():
    from chordexp.output_dirs import transcription_names

    root = Path("/songs")
    files = [
        root / name
        for name in (
            "01 - Mr. Brightside.wav",
            "01 - Mr. Jones.wav",
            "song.v1.wav",
            "song.v2.flac",
            "a.wav",
            "a.flac",
            "a.wav.mp3",
            "B.wav",
            "b.ogg",
            "album/a.wav",
            "c",
        )
    ]
    names = [p.as_posix() for p in transcription_names(files, root)]
    assert names == [
        "01 - Mr. Brightside.lab",
        "01 - Mr. Jones.lab",
        "song.v1.lab",
        "song.v2.lab",
        "a.wav.lab",
        "a.flac.lab",
        "a.wav.mp3.lab",  # a.wav.lab was taken: the full name
        "B.wav.lab",
        "b.ogg.lab",  # alike regardless of case
        "album/a.lab",
        "c.lab",
    ]
    assert len(set(names)) == len(files)
    assert [p.as_posix() for p in transcription_names([root / "x.y.wav"], None)] == ["x.y.lab"]


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _predict(checkpoint, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chordexp.predict", f"checkpoint={checkpoint}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_input_gets_its_own_marked_lab_that_evaluate_pairs_with_its_reference(checkpoint, tmp_path):
    songs, out = tmp_path / "songs", tmp_path / "out"
    songs.mkdir()
    names = ["01 - Mr. Brightside.wav", "01 - Mr. Jones.wav", "song.v1.wav", "song.v2.wav", "a.wav", "a.flac"]
    for name in names:
        soundfile.write(songs / name, chord_audio(1.5, SR), SR)
    refs = tmp_path / "refs"
    refs.mkdir()
    for ref in ("a", "song.v1", "01 - Mr. Jones"):
        (refs / f"{ref}.lab").write_text("0.0 1.5 C:maj\n")
    done = _predict(checkpoint, f"input={songs}", f"output={out}", "probabilities=true")
    assert done.returncode == 0, done.stderr
    labs = sorted(p.name for p in out.glob("*.lab"))
    assert labs == sorted(
        ["01 - Mr. Brightside.lab", "01 - Mr. Jones.lab", "song.v1.lab", "song.v2.lab", "a.wav.lab", "a.flac.lab"]
    )
    assert (out / "a.flac.probs.npz").is_file() and (out / "song.v1.probs.npz").is_file()
    for lab in out.glob("*.lab"):
        first = lab.read_text().splitlines()[0]
        assert first.startswith("# chordexp prediction of ") and first.endswith((".wav", ".flac"))
        intervals, _ = read_lab(lab)  # mir_eval reads the mark as a comment
        assert intervals[-1, 1] == pytest.approx(1.5, abs=1e-3)
        from chordexp.labfile import load_lab

        load_lab(lab, disjoint=True)

    from chordexp.scoring import evaluate_dirs

    result = evaluate_dirs(out, refs)
    assert sorted(result["files"]) == ["01 - Mr. Jones", "a.flac", "a.wav", "song.v1"]
    assert result["missing_predictions"] == []

    before = {p.name: _sha(p) for p in out.iterdir()}  # predict again: its own files are replaced
    done = _predict(checkpoint, f"input={songs}", f"output={out}", "probabilities=true", "silence_db=null")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(before)


def test_predict_never_replaces_a_reference_beside_the_audio(checkpoint, tmp_path):
    """``output=`` the input folder, the layout of annotated collections: the reference
    ``.lab`` stays byte-identical and nothing else is written either."""
    songs = tmp_path / "songs"
    songs.mkdir()
    soundfile.write(songs / "a.wav", chord_audio(1.0, SR), SR)
    soundfile.write(songs / "b.wav", chord_audio(1.0, SR), SR)
    (songs / "b.lab").write_text("0.0 1.0 C:maj\n")
    before = {p.name: _sha(p) for p in songs.iterdir()}
    done = _predict(checkpoint, f"input={songs}", f"output={songs}")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {songs / 'b.lab'} exists and is not a chordexp transcription (a reference .lab?); it is never "
        f"replaced: choose another output= folder (nothing was written)"
    ]
    assert {p.name: _sha(p) for p in songs.iterdir()} == before


def test_non_finite_output_and_too_short_audio_are_errors_naming_the_file(checkpoint, tmp_path):
    """Not an all-N transcription: one line each, the other files transcribed, exit 2."""
    songs, out = tmp_path / "songs", tmp_path / "out"
    songs.mkdir()
    soundfile.write(songs / "good.wav", chord_audio(1.0, SR), SR)
    soundfile.write(songs / "one.wav", np.zeros(1, np.float32), SR)
    loud = chord_audio(1.0, SR).astype(np.float64)
    soundfile.write(songs / "loud.wav", (loud / np.abs(loud).max() * 3.3e38).astype(np.float32), SR, subtype="FLOAT")
    done = _predict(checkpoint, f"input={songs}", f"output={out}")
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3, done.stderr
    for expected in (
        f"{songs / 'loud.wav'}: the model's output is not finite (NaN or inf): its samples reach 3.3e+38",
        f"{songs / 'one.wav'}: too short to transcribe (1 sample(s) at 16000 Hz)",
        f"2 file(s) under {songs} could not be transcribed",
    ):
        assert sum(line.startswith(f"error: {expected}") for line in errors) == 1, (expected, errors)
    assert sorted(p.name for p in out.iterdir()) == ["good.lab"]


def test_a_folder_of_songs_includes_symlinked_folders_and_survives_a_link_loop(checkpoint, tmp_path):
    from chordexp.audio_names import find_audio_files

    songs, elsewhere = tmp_path / "songs", tmp_path / "elsewhere" / "album"
    elsewhere.mkdir(parents=True)
    songs.mkdir()
    soundfile.write(songs / "a.wav", chord_audio(1.0, SR), SR)
    soundfile.write(elsewhere / "b.wav", chord_audio(1.0, SR), SR)
    (songs / "album").symlink_to(elsewhere, target_is_directory=True)
    (songs / "loop").symlink_to(songs, target_is_directory=True)  # a link to a folder above
    assert [p.relative_to(songs).as_posix() for p in find_audio_files(songs)] == ["a.wav", "album/b.wav"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "chordexp.predict",
            f"checkpoint={checkpoint}",
            f"input={songs}",
            f"output={tmp_path / 'o'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.relative_to(tmp_path / "o").as_posix() for p in (tmp_path / "o").rglob("*.lab")) == [
        "a.lab",
        "album/b.lab",
    ]
