"""FolderChordDataset and the label mapping: windows from real files, checked by ear (FFT).

The songs are sums of harmonic tones of known chords written with soundfile, so every
window's label can be checked against the pitches that actually sound in it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
import soundfile
import torch

from chordexp.chords import CHORD_INTERVALS, CHORD_TYPE_INDEX, format_label, parse_label
from chordexp.data import FolderChordDataset
from chordexp.data.collection import find_audio
from chordexp.data.folder import assign_splits
from chordexp.data.labels import LabelCounts, classify_label, map_label

torch.set_num_threads(1)

SR = 16000  # the datasets' rate: small and fast; the files are at 22050 and 44100 Hz
Spec = List[Tuple[float, float, str]]  # (start, end, label) of a song

#: name -> (file rate, channels, annotation). N is silence; X and the out-of-vocabulary
#: labels sound as the chord their label spells.
SONGS: Dict[str, Tuple[int, int, Spec]] = {
    "pop/one.wav": (44100, 1, [(0, 2, "C:maj"), (2, 4, "A:min"), (4, 5, "N")]),
    "pop/two.flac": (22050, 2, [(0, 3, "G:maj"), (3, 6, "F:maj/3"), (6, 8, "E:min")]),
    "three.wav": (22050, 1, [(0, 1.5, "N"), (1.5, 4.5, "D:min7"), (4.5, 7, "Bb:maj")]),
    "jazz/four.wav": (44100, 1, [(0, 2, "Eb:maj"), (2, 3, "X"), (3, 5, "C:maj(11)"), (5, 7, "F:(1,3,5,b7,9)")]),
}
#: What each label sounds as (pitch classes) and means: label -> (root, type, bass).
SOUNDING = {"X": "Ab:aug", "C:maj(11)": "C:maj", "F:(1,3,5,b7,9)": "F:9"}
EXPECTED = {"C:maj(11)": (0, CHORD_TYPE_INDEX["maj"], 0), "F:(1,3,5,b7,9)": (5, CHORD_TYPE_INDEX["9"], 5)}


def chord_midi(label: str) -> List[int]:
    """MIDI notes of a chord voiced from its root in octave 4 (N: none)."""
    label = SOUNDING.get(label, label)
    if label == "N":
        return []
    root, chord_type, bass = parse_label(label)
    name = format_label(root, chord_type).split(":")[1]
    notes = [60 + root + i for i in CHORD_INTERVALS[name]]
    if bass != root:
        notes.append(48 + bass)
    return notes


def render(spec: Spec, rate: int) -> np.ndarray:
    """The song: each chord's notes as harmonic tones (harmonics 1..3), N silent."""
    total = int(spec[-1][1] * rate)
    audio = np.zeros(total)
    t = np.arange(total) / rate
    for start, end, label in spec:
        part = slice(int(start * rate), int(end * rate))
        for note in chord_midi(label):
            f = 440.0 * 2 ** ((note - 69) / 12)
            audio[part] += sum(a * np.sin(2 * np.pi * h * f * t[part]) for h, a in ((1, 1.0), (2, 0.4), (3, 0.1)))
    return (0.15 * audio).astype(np.float32)


def write_song(folder: Path, name: str, rate: int, channels: int, spec: Spec, lab: str | None = None) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = render(spec, rate)
    soundfile.write(path, np.stack([audio] * channels, axis=1) if channels > 1 else audio, rate)
    text = lab if lab is not None else "".join(f"{s:.3f} {e:.3f} {label}\n" for s, e, label in spec)
    path.with_suffix(".lab").write_text(text)
    return path


def write_good_songs(folder: Path) -> Path:
    for name, (rate, channels, spec) in SONGS.items():
        write_song(folder, name, rate, channels, spec)
    return folder


#: Bad files: name -> a word their warning must contain.
BAD = {
    "corrupt.wav": "cannot decode",
    "badline.wav": "badline.lab:2",
    "pastend.wav": "labels run to",
    "nolab.wav": "no .lab",
    "overlap.wav": "overlap.lab:2",
    "silent.wav": "silent",
}


def write_bad_songs(folder: Path) -> None:
    spec = [(0, 3, "C:maj")]
    (folder / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8)
    (folder / "corrupt.lab").write_text("0 3 C:maj\n")
    write_song(folder, "badline.wav", 22050, 1, spec, lab="0 1 C:maj\n1.0 oops G:maj\n")
    write_song(folder, "pastend.wav", 22050, 1, spec, lab="0 3 C:maj\n3 9 G:maj\n")
    write_song(folder, "nolab.wav", 22050, 1, spec).with_suffix(".lab").unlink()
    write_song(folder, "overlap.wav", 22050, 1, spec, lab="0 2 C:maj\n1.5 3 G:maj\n")
    soundfile.write(folder / "silent.wav", np.zeros(3 * 22050, dtype=np.float32), 22050)
    (folder / "silent.lab").write_text("0 3 N\n")


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    return write_good_songs(tmp_path_factory.mktemp("songs"))


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> Path:
    folder = write_good_songs(tmp_path_factory.mktemp("messy"))
    write_bad_songs(folder)
    return folder


def make(root: Path, split: str = "train", size: int = 64, **kwargs) -> FolderChordDataset:
    options = dict(sample_rate=SR, clip_seconds=1.0, val_fraction=0.5, pitch_shift=0, min_label_fraction=0.8)
    options.update(kwargs)
    return FolderChordDataset(size, split=split, seed=0, root=root, **options)


def top_notes(audio: np.ndarray, count: int, sr: int = SR) -> List[int]:
    """The ``count`` MIDI notes (36..95) with the most spectral energy within 30 cents."""
    power = np.abs(np.fft.rfft(audio.astype(np.float64) * np.hanning(len(audio)))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1.0 / sr)[1:]
    midi = 12 * np.log2(freqs / 440.0) + 69
    near = (np.abs(midi - np.rint(midi)) < 0.3) & (midi >= 36) & (midi < 96)
    energy = np.bincount(np.rint(midi[near]).astype(int), power[1:][near], minlength=96)
    return sorted(int(n) for n in np.argsort(energy)[::-1][:count])


def truth(dataset: FolderChordDataset, index: int) -> str:
    """The annotated label covering most of item ``index``'s window (before any shift)."""
    window = dataset.window(index)
    name = dataset.song_paths[window.song]
    length = dataset.num_samples * 2 ** (window.shift / 12) / dataset.sample_rate
    spec = SONGS[name][2]
    cover = [min(e, window.start + length) - max(s, window.start) for s, e, _ in spec]
    return spec[int(np.argmax(cover))][2]


def silent_share(audio: np.ndarray, frame: int = 160) -> float:
    frames = audio[: len(audio) // frame * frame].reshape(-1, frame)
    return float(np.mean(np.sqrt(np.mean(frames**2, axis=1)) < 1e-4))


def labels(targets) -> Tuple[int, int, int]:
    return int(targets["root"]), int(targets["chord_type"]), int(targets["bass_note"])


# ------------------------------------------------------------------ windows and labels
@pytest.mark.parametrize("split", ["train", "val"])
def test_each_window_is_labelled_with_the_chord_sounding_in_it(songs, split):
    dataset = make(songs, split)
    seen = set()
    for i in range(len(dataset)):
        audio, targets = dataset[i]
        assert audio.dtype == torch.float32 and audio.shape == (SR,)
        assert all(t.dtype == torch.long and t.dim() == 0 for t in targets.values())
        label = truth(dataset, i)
        expected = EXPECTED.get(label) or parse_label(label)
        assert labels(targets) == expected, (i, label)
        notes = chord_midi(label)
        if notes:
            assert top_notes(audio.numpy(), len(notes)) == sorted(notes), (i, label)
        else:
            assert silent_share(audio.numpy()) >= 0.75
        seen.add(label)
    assert len(seen) >= 4  # windows come from many chords, not one


def test_windows_span_every_song_of_the_split_weighted_by_duration(songs):
    dataset = make(songs, "train", size=400)
    counts = np.bincount([dataset.window(i).song for i in range(len(dataset))], minlength=len(dataset.songs))
    assert counts.min() > 0
    usable = np.array([SONGS[name][2][-1][1] - 1.0 for name in dataset.song_paths])
    np.testing.assert_allclose(counts / counts.sum(), usable / usable.sum(), atol=0.08)


def test_x_and_unusable_spans_never_label_a_window(songs):
    dataset = make(songs, "train", size=300, val_fraction=0.01, min_label_fraction=0.5)
    assert "jazz/four.wav" in dataset.song_paths
    assert all(truth(dataset, i) != "X" for i in range(len(dataset)))
    assert all(dataset.window(i).label[1] != 0 or truth(dataset, i) == "N" for i in range(len(dataset)))


def test_same_item_twice_and_from_a_new_object_is_identical(songs):
    a, b = make(songs, "train", pitch_shift=4), make(songs, "train", pitch_shift=4)
    for i in (5, 0, 63, -1):
        (xa, ta), (xa2, ta2), (xb, tb) = a[i], a[i], b[i]
        assert torch.equal(xa, xa2) and torch.equal(xa, xb)
        assert labels(ta) == labels(ta2) == labels(tb)
    other = FolderChordDataset(64, split="train", seed=1, root=songs, sample_rate=SR, val_fraction=0.5)
    assert [other.window(i) for i in range(8)] != [a.window(i) for i in range(8)]


def test_train_and_val_hold_disjoint_songs_and_together_all_of_them(songs):
    train, val = make(songs, "train"), make(songs, "val")
    assert set(train.song_paths).isdisjoint(val.song_paths)
    assert sorted(train.song_paths + val.song_paths) == sorted(SONGS)
    # the split depends on the path only, not on what else is in the folder
    split = assign_splits(find_audio(songs), songs, 0, 0.5)
    assert {p.relative_to(songs).as_posix() for p, s in split.items() if s == "val"} == set(val.song_paths)


def test_a_tiny_val_fraction_still_leaves_one_val_song(songs):
    val = make(songs, "val", val_fraction=0.001)
    assert len(val.songs) == 1


# ------------------------------------------------------------------ pitch shift
def test_pitch_shift_moves_the_sound_and_the_labels_by_k_semitones(songs):
    dataset = make(songs, "train", size=200, pitch_shift=3)
    shifts = {dataset.window(i).shift for i in range(len(dataset))}
    assert shifts == {-3, -2, -1, 0, 1, 2, 3}
    checked = 0
    for i in range(len(dataset)):
        window = dataset.window(i)
        label = truth(dataset, i)
        notes = chord_midi(label)
        if window.shift == 0 or not notes or checked >= 12:
            continue
        audio, targets = dataset[i]
        k = window.shift
        root, chord_type, bass = EXPECTED.get(label) or parse_label(label)
        assert labels(targets) == ((root + k) % 12, chord_type, (bass + k) % 12), (i, label, k)
        assert top_notes(audio.numpy(), len(notes)) == sorted(n + k for n in notes), (i, label, k)
        checked += 1
    assert checked == 12


def test_val_is_never_shifted(songs):
    dataset = make(songs, "val", size=100, pitch_shift=6)
    assert {dataset.window(i).shift for i in range(len(dataset))} == {0}


def test_n_stays_n_under_a_shift(songs):
    dataset = make(songs, "train", size=300, pitch_shift=6, val_fraction=0.01)
    no_chord = [dataset.window(i) for i in range(len(dataset)) if truth(dataset, i) == "N"]
    assert no_chord and all(w.label == (0, 0, 0) for w in no_chord)
    assert any(w.shift != 0 for w in no_chord)


# ------------------------------------------------------------------ bad files
def test_each_bad_file_is_logged_once_by_name_and_skipped(messy, caplog):
    caplog.set_level(logging.INFO, logger="chordexp.data.folder")
    train, val = make(messy, "train"), make(messy, "val")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(BAD)
    for name, why in BAD.items():
        stem = Path(name).stem
        lines = [w for w in warnings if f"{stem}." in w]
        assert len(lines) == 1 and why in lines[0], (name, lines)
        assert "\n" not in lines[0]
    assert sorted(train.song_paths + val.song_paths) == sorted(SONGS)
    summaries = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "labels:" in r.getMessage()]
    assert len(summaries) == 2 and all("exact" in s and "mapped" in s and "skipped" in s for s in summaries)
    assert any("C:maj(11) -> C:maj" in s for s in summaries)


def test_on_error_raise_names_the_bad_file(tmp_path):
    write_good_songs(tmp_path)
    write_song(tmp_path, "badline.wav", 22050, 1, [(0, 3, "C:maj")], lab="0 1 C:maj\n1.0 oops G:maj\n")
    split = assign_splits(find_audio(tmp_path), tmp_path, 0, 0.5)[tmp_path / "badline.wav"]
    with pytest.raises(ValueError, match=r"badline\.lab:2") as err:
        make(tmp_path, split, on_error="raise")
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)
    make(tmp_path, "val" if split == "train" else "train", on_error="raise")  # the other split is clean


def test_a_folder_of_only_bad_songs_is_an_error_naming_it(tmp_path, caplog):
    write_bad_songs(tmp_path)
    with pytest.raises(ValueError, match="no usable songs") as err:
        make(tmp_path, "train")
    assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize("case", ["missing", "empty", "unset"])
def test_a_missing_or_empty_root_is_an_error_naming_it(tmp_path, case):
    root = {"missing": tmp_path / "nowhere", "empty": tmp_path, "unset": "???"}[case]
    (tmp_path / "notes.txt").write_text("not audio")
    with pytest.raises(ValueError, match="data folder") as err:
        make(root)
    assert str(root) in str(err.value) or "data.dataset.root" in str(err.value)


def test_a_song_shorter_than_a_window_is_skipped(tmp_path, caplog):
    write_good_songs(tmp_path)
    write_song(tmp_path, "short.wav", 22050, 1, [(0, 0.8, "C:maj")])
    datasets = [make(tmp_path, s, clip_seconds=1.0) for s in ("train", "val")]
    assert all("short.wav" not in d.song_paths for d in datasets)
    assert sum("short.wav" in r.getMessage() and "window" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    "bad",
    [
        dict(split="test"),
        dict(val_fraction=0.0),
        dict(on_error="ignore"),
        dict(unknown_chords="guess"),
        dict(pitch_shift=-1),
        dict(min_label_fraction=0),
    ],
)
def test_bad_arguments_fail_naming_the_argument(songs, bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        make(songs, **bad)


# ------------------------------------------------------------------ label mapping
@pytest.mark.parametrize(
    "label,expected,outcome",
    [
        ("C:maj", "C:maj", "exact"),
        ("G:min7/b3", "G:min7/b3", "exact"),
        ("Bb:maj(9)", "Bb:maj(9)", "exact"),
        ("N", "N", "exact"),
        ("C:maj(11)", "C:maj", "mapped"),  # {1,3,5,4}: maj and sus4 tie at 3/4, maj is earlier
        ("C:(1,3,5,b7,9)", "C:9", "mapped"),  # exactly the 9 chord's tones
        ("C:min(b13)", "C:min", "mapped"),  # {1,b3,5,b6}: min 3/4 beats min6 3/5
        ("C:sus4(9)", "C:sus4", "mapped"),  # sus2 and sus4 tie at 3/4: the label's quality wins
        ("C:maj(11)/b7", "C:maj/b7", "mapped"),  # the bass is kept, and not counted as a tone
        ("D:(1,b3)", "D:min", "mapped"),  # min and dim tie at 2/3 with 3 tones: vocabulary order
        ("A:(1,3,#5,b7,b9)", "A:aug(b7)", "mapped"),  # aug(b7) 4/5 beats 7(b9) 4/6
        ("E:7(b13)", "E:7", "mapped"),
        ("F#:(1,5)", "F#:5", "mapped"),
    ],
)
def test_labels_map_onto_the_vocabulary_by_the_documented_rule(label, expected, outcome):
    triple, got = classify_label(label)
    assert got == outcome and format_label(*triple) == expected


@pytest.mark.parametrize("label", ["X", "H:maj", "C:maj/G", "C:nonsense", "", "C:maj(11"])
def test_x_and_unparseable_labels_are_skipped(label):
    assert classify_label(label) == (None, "skipped")
    assert map_label(label) is None


def test_skip_mode_drops_out_of_vocabulary_labels_but_keeps_exact_ones():
    assert map_label("C:maj(11)", unknown_chords="skip") is None
    assert map_label("C:maj7", unknown_chords="skip") == parse_label("C:maj7")


def test_label_counts_tally_labels_and_seconds():
    counts = LabelCounts()
    for label, seconds in (("C:maj", 2.0), ("C:maj(11)", 1.5), ("C:maj(11)", 0.5), ("X", 1.0)):
        triple, outcome = classify_label(label)
        counts.add(label, outcome, seconds, triple)
    assert counts.labels == {"exact": 1, "mapped": 2, "skipped": 1}
    assert counts.seconds == {"exact": 2.0, "mapped": 2.0, "skipped": 1.0}
    assert "C:maj(11) -> C:maj x2" in counts.summary() and "X x1" in counts.summary()


def test_skip_mode_in_the_dataset_leaves_mapped_spans_unused(songs):
    dataset = make(songs, "train", size=200, unknown_chords="skip", val_fraction=0.01)
    assert dataset.counts.labels["mapped"] == 0 and dataset.counts.labels["skipped"] >= 3
    assert all(truth(dataset, i) not in EXPECTED for i in range(len(dataset)))


# ------------------------------------------------------------------ cache and tolerances
def test_each_song_is_decoded_once_at_construction_and_never_per_item(songs, monkeypatch):
    import chordexp.data.folder as folder

    calls = []
    real = folder.load_audio
    monkeypatch.setattr(folder, "load_audio", lambda path, rate: calls.append(path) or real(path, rate))
    dataset = make(songs, "train", size=50, pitch_shift=2)
    assert sorted(p.relative_to(songs).as_posix() for p in calls) == sorted(dataset.song_paths)
    for i in range(len(dataset)):
        dataset[i]
    assert len(calls) == len(dataset.songs)
    assert all(s.audio.dtype == np.float32 and s.audio.ndim == 1 for s in dataset.songs)


def test_labels_slightly_past_the_audio_end_are_clipped_not_rejected(tmp_path, caplog):
    write_good_songs(tmp_path)
    write_song(tmp_path, "late.wav", 22050, 1, [(0, 3, "C:maj")], lab="0 2 C:maj\n2 3.8 G:maj\n")
    datasets = [make(tmp_path, s) for s in ("train", "val")]
    song = next(s for d in datasets for s in d.songs if s.audio_path.name == "late.wav")
    assert song.segments[-1, 1] == pytest.approx(3.0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
