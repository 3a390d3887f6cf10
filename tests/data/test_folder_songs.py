"""``data=folder_songs``: frame labels read from .lab files, pitch shift moving labels
and frame times together, short songs and skipped labels masked out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from chordexp.chords import parse_label
from chordexp.data import FolderSongDataset
from chordexp.experiment.components import build_datasets

RATE = 11025
#: (start, end, label, MIDI notes); the second song has an X stretch and is shorter than an excerpt
SONGS = {
    "a/first.wav": [
        (0, 4, "C:maj", (48, 60, 64, 67)),
        (4, 8, "A:min", (45, 57, 60, 64)),
        (8, 12, "F:maj/3", (45, 60, 65, 69)),
        (12, 16, "G:7", (43, 59, 62, 65)),
    ],
    "b/second.wav": [(0, 2, "N", ()), (2, 4, "X", (50, 62)), (4, 7, "D:min", (50, 62, 65, 69))],
}


def sine_song(spec) -> np.ndarray:
    t = np.arange(int(spec[-1][1] * RATE)) / RATE
    audio = np.zeros_like(t)
    for start, end, _, notes in spec:
        part = (t >= start) & (t < end)
        for note in notes:
            audio[part] += 0.1 * np.sin(2 * np.pi * 440 * 2 ** ((note - 69) / 12) * t[part])
    return audio.astype(np.float32)


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("songs")
    for name, spec in SONGS.items():
        path = root / name
        path.parent.mkdir(parents=True)
        soundfile.write(path, sine_song(spec), RATE)
        path.with_suffix(".lab").write_text("".join(f"{s} {e} {label}\n" for s, e, label, _ in spec))
    return root


def expected_label(spec, t: float, shift: int):
    for start, end, label, _ in spec:
        if start <= t < end:
            if label == "X":
                return None
            root, chord_type, bass = parse_label(label)
            if chord_type:
                root, bass = (root + shift) % 12, (bass + shift) % 12
            return chord_type, root, bass
    return None


def test_frame_labels_follow_the_lab_file_through_pitch_shifts(songs):
    dataset = FolderSongDataset(
        size=24, split="train", seed=0, root=songs, sample_rate=RATE, clip_seconds=5.0, val_fraction=0.01, pitch_shift=3
    )
    times = dataset.grid.times(dataset.grid.num_frames(dataset.num_samples))
    shifts = set()
    for index in range(len(dataset)):
        song_index, start, shift = dataset.excerpt(index)
        shifts.add(shift)
        spec = SONGS[dataset.song_paths[song_index]]
        audio, targets = dataset[index]
        assert audio.shape == (5 * RATE,)
        speed = 2 ** (shift / 12)
        for k, t in enumerate(times):
            song_time = start + t * speed
            truth = expected_label(spec, song_time, shift)
            if song_time >= spec[-1][1] or truth is None:
                assert not targets["mask"][k]
            elif min(abs(song_time - s) for s, *_ in spec) > 0.02:  # away from a boundary's rounding
                assert bool(targets["mask"][k])
                got = tuple(int(targets[key][k]) for key in ("chord_type", "root", "bass_note"))
                assert got == truth, (index, k, song_time)
    assert len(shifts) > 2


def test_validation_songs_are_whole_songs_with_their_labels(songs):
    dataset = FolderSongDataset(
        size=4, split="val", seed=0, root=songs, sample_rate=RATE, clip_seconds=5.0, val_fraction=0.5
    )
    song = dataset.song(0)
    assert len(song.audio) == dataset.songs[0].audio.shape[0]
    labels = [label for _, _, label in song.labelled()]
    spec = SONGS[dataset.song_paths[0]]
    assert labels == [label for *_, label, _ in spec if label != "X"]


def test_the_config_option_builds_song_mode_datasets(compose_cfg, songs):
    cfg = compose_cfg(
        "data=folder_songs",
        f"data.dataset.root={songs}",
        "data.train_size=4",
        "data.val_size=2",
        "data.dataset.val_fraction=0.5",
    )
    assert cfg.data.sequence and cfg.model.frame_outputs
    train_set, val_set = build_datasets(cfg)
    audio, targets = train_set[0]
    assert isinstance(train_set, FolderSongDataset) and set(targets) == {"chord_type", "root", "bass_note", "mask"}
    assert targets["chord_type"].shape == (train_set.grid.num_frames(len(audio)),)
    assert torch.equal(audio, build_datasets(cfg)[0][0][0])
