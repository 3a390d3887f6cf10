"""``python -m chordexp.check_data``: the report on a folder with each kind of defect, and its exit status."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from chordexp.check_data import _entry, main
from chordexp.data.collection_check import check_collection, format_report

SR = 8000


def song(folder: Path, name: str, lab: str | None, seconds: float = 4.0) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    soundfile.write(path, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
    if lab is not None:
        path.with_suffix(".lab").write_text(lab)
    return path


@pytest.fixture(scope="module")
def defects(tmp_path_factory) -> Path:
    """One song per kind of defect, and one clean song."""
    root = tmp_path_factory.mktemp("defects")
    song(root, "good/clean.wav", "0 2 C:maj\n2 4 A:min\n")
    song(root, "bad/overlap.wav", "0 2 C:maj\n1.5 3 G:maj\n3 4 N\n")
    song(root, "bad/gap.wav", "0 1 C:maj\n2 4 G:maj\n")
    song(root, "bad/vocab.wav", "0 1 C:maj(11)\n1 2 X\n2 4 D:min\n")
    song(root, "bad/short_labels.wav", "0 2 C:maj\n", seconds=12.0)
    song(root, "bad/unlabelled.wav", None)
    song(root, "bad/unreadable.wav", "0 1 C:maj\n1 oops G:maj\n")
    (root / "bad" / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt not audio at all")
    (root / "bad" / "corrupt.lab").write_text("0 1 C:maj\n")
    (root / "bad" / "misnamed.lab").write_text("0 1 C:maj\n")  # its audio is called something else
    return root


def test_the_report_finds_each_kind_of_defect(defects):
    report = check_collection(defects)
    assert (report.songs, report.annotated) == (8, 7)
    assert report.seconds == pytest.approx(6 * 4.0 + 12.0)  # every file but corrupt.wav
    (undecodable,) = report.undecodable
    assert "corrupt.wav: cannot decode audio" in undecodable
    (unreadable,) = report.unreadable
    assert "unreadable.lab:2:" in unreadable
    (overlap,) = report.overlaps
    assert "overlap.lab:2: starts at 1.5 s, before the previous interval ends (2 s)" in overlap
    (gap,) = report.gaps
    assert "gap.lab:2: 1.00 s without a label (1..2 s)" in gap
    (unlabelled,) = report.unannotated
    assert "unlabelled.wav: no .lab or .jams annotation beside it" in unlabelled
    assert report.orphans == [f"{defects.resolve() / 'bad' / 'misnamed.lab'}: no audio file pairs with it"]
    (end,) = report.end_mismatch
    assert "short_labels.lab: labels end at 2.00 s, the audio at 12.00 s (-10.00 s)" in end
    assert report.mapped == {"C:maj(11) -> C:maj": 1} and report.skipped == {"X": 1}
    assert report.errors == 3
    # seconds per type, from every readable annotation as written (corrupt.lab too)
    assert report.type_seconds["min"] == pytest.approx(2 + 2)  # clean A:min, vocab D:min
    assert report.type_seconds["skipped"] == pytest.approx(1)
    assert report.type_seconds["N"] == pytest.approx(1)
    assert report.type_seconds["maj"] == pytest.approx(2 + 2 + 1.5 + 1 + 2 + 1 + 2 + 1)  # orphans not counted

    text = format_report(report)
    for line in (
        "songs: 8 audio files, 7 annotated, 1 without annotation",
        "ERROR audio that fails to decode: 1",
        "ERROR annotations that cannot be read: 1",
        "ERROR overlapping intervals: 1",
        "warning gaps between intervals: 1",
        "warning songs without an annotation: 1",
        "warning annotation files without audio: 1",
        "warning annotations ending far from the audio's end: 1",
        "note labels outside the vocabulary: 2",
        "  C:maj(11) -> C:maj x1",
        "  X -> skipped x1",
        "duration per chord type:",
        "3 error(s), 4 warning(s)",
    ):
        assert line in text.splitlines(), line


def test_the_command_exits_1_on_errors(defects, capsys):
    with pytest.raises(SystemExit) as caught:  # what `python -m chordexp.check_data` runs
        _entry([f"root={defects}"])
    assert caught.value.code == 1
    assert "3 error(s), 4 warning(s)" in capsys.readouterr().out


def test_a_clean_parallel_tree_passes(tmp_path, capsys):
    audio, ann = tmp_path / "audio", tmp_path / "annotations"
    song(audio, "album/one.wav", None)
    (ann / "album").mkdir(parents=True)
    (ann / "album" / "one.lab").write_text("0 2 C:maj\n2 4 G:7\n")
    assert main([f"root={audio}", f"annotations={ann}"]) == 0
    out = capsys.readouterr().out
    assert f"collection: {audio.resolve()} (annotations: {ann.resolve()})" in out
    assert "songs: 1 audio files, 1 annotated, 0 without annotation" in out
    assert "0 error(s), 0 warning(s)" in out


@pytest.mark.parametrize("end", ["24.0", "1e308"])
def test_labels_past_the_audio_are_an_error_as_training_refuses_them(tmp_path, capsys, end):
    """One rule for check_data and training: a 4-s song labelled to 24 s (or 1e308 s)."""
    from chordexp.data.collection import SongError
    from chordexp.data.folder_songs import FolderSongDataset

    song(tmp_path / "songs", "a.wav", f"0.0 2.0 C:maj\n2.0 {end} G:maj\n")
    song(tmp_path / "songs", "b.wav", "0 2 C:maj\n2 4 G:7\n")
    assert main([f"root={tmp_path / 'songs'}"]) == 1
    out = capsys.readouterr().out
    assert "ERROR labels past the end of the audio (training refuses these songs): 1" in out
    assert "1 error(s)" in out and len(max(out.splitlines(), key=len)) < 300
    refused = []
    for split in ("train", "val"):  # the song is in one of them (a hash split)
        try:
            FolderSongDataset(
                8, split=split, root=str(tmp_path / "songs"), sample_rate=SR, val_fraction=0.5, on_error="raise"
            )
        except SongError as error:
            refused.append(str(error))
    assert len(refused) == 1 and "labels run to" in refused[0] and "but a.wav lasts 4.00 s" in refused[0]


def test_the_length_is_read_block_by_block_and_equals_the_whole_files(tmp_path):
    import numpy as np
    import soundfile

    from chordexp.audio import read_audio
    from chordexp.data.collection_check import decoded_seconds

    path = tmp_path / "a.flac"
    soundfile.write(str(path), np.random.default_rng(0).uniform(-0.5, 0.5, (70001, 2)).astype(np.float32), 22050)
    audio, rate = read_audio(path)
    assert decoded_seconds(path) == len(audio) / rate == 70001 / 22050
