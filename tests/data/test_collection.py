"""Collections as researchers keep them: parallel annotation trees, JAMS, folds, split lists, groups."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Dict, List, Tuple

import jams
import numpy as np
import pytest
import soundfile
import torch

from chordexp.data import FolderChordDataset, FolderSongDataset
from chordexp.data.collection import (
    SongError,
    assign_folds,
    assign_splits,
    discover,
    fold_of,
    group_key,
    read_annotation,
    read_split_file,
)

torch.set_num_threads(1)

SR = 8000
Spec = List[Tuple[float, float, str]]
SPEC: Spec = [(0.0, 2.0, "C:maj"), (2.0, 4.0, "A:min")]


def write_audio(path: Path, seconds: float = 4.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    soundfile.write(path, (0.2 * np.sin(2 * np.pi * 261.6 * t)).astype(np.float32), SR)
    return path


def write_lab(path: Path, spec: Spec = SPEC) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{s} {e} {label}\n" for s, e, label in spec))
    return path


def write_jams(path: Path, spec: Spec = SPEC, namespace: str = "chord") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    jam = jams.JAMS()
    jam.file_metadata.duration = spec[-1][1]
    annotation = jams.Annotation(namespace=namespace)
    for start, end, label in spec:
        annotation.append(time=start, duration=end - start, value=label)
    jam.annotations.append(annotation)
    with warnings.catch_warnings():  # jams validates through a deprecated jsonschema call
        warnings.simplefilter("ignore")
        jam.save(str(path), strict=False)  # strict=False: bad labels too, for the bad-file tests
    return path


@pytest.fixture()
def tree(tmp_path) -> Tuple[Path, Path]:
    """``audio/<album>/<song>.wav`` with ``annotations/<album>/<song>.lab|.jams``."""
    audio, ann = tmp_path / "audio", tmp_path / "annotations"
    for album, song in (("album1", "s1"), ("album1", "s2"), ("album2", "s3"), ("album2", "s4")):
        write_audio(audio / album / f"{song}.wav")
    write_lab(ann / "album1" / "s1.lab")
    write_jams(ann / "album1" / "s2.jams", [(0.0, 1.0, "N"), (1.0, 4.0, "G:7")])
    write_lab(ann / "album2" / "s3.lab", [(0.0, 4.0, "D:min")])
    write_jams(ann / "album2" / "s4.jams", [(0.0, 4.0, "E:maj")], namespace="chord_harte")
    return audio, ann


# ------------------------------------------------------------------ discovery and reading
def test_the_parallel_tree_pairs_audio_and_annotations_by_relative_path(tree):
    audio, ann = tree
    entries = discover(audio, ann)
    assert [e.song_id for e in entries] == ["album1/s1.wav", "album1/s2.wav", "album2/s3.wav", "album2/s4.wav"]
    assert [e.annotation.relative_to(ann).as_posix() for e in entries] == [
        "album1/s1.lab",
        "album1/s2.jams",
        "album2/s3.lab",
        "album2/s4.jams",
    ]
    assert all(e.annotation is None for e in discover(audio))  # nothing beside the audio


def test_a_lab_wins_over_a_jams_of_the_same_name(tmp_path):
    write_audio(tmp_path / "a.wav")
    write_lab(tmp_path / "a.lab")
    write_jams(tmp_path / "a.jams")
    assert discover(tmp_path)[0].annotation == tmp_path / "a.lab"


def test_jams_reads_like_the_same_lab(tmp_path):
    lab = read_annotation(write_lab(tmp_path / "a.lab"))
    for namespace in ("chord", "chord_harte"):
        intervals, labels, rows = read_annotation(write_jams(tmp_path / f"{namespace}.jams", namespace=namespace))
        np.testing.assert_allclose(intervals, lab[0])
        assert labels == lab[1] and rows == [1, 2]


@pytest.mark.parametrize(
    "case,pattern",
    [
        ("overlap", r"b\.jams:2: starts at 1 s, before the previous interval ends \(2 s\)"),
        ("badlabel", r"b\.jams:2: 'H:maj' is not a chord label"),
        ("namespace", r"b\.jams: no annotation of namespace chord or chord_harte \(it holds: beat\)"),
        ("notjson", r"b\.jams: not a readable JAMS file"),
    ],
)
def test_a_bad_jams_is_one_line_naming_the_file(tmp_path, case, pattern):
    path = tmp_path / "b.jams"
    if case == "overlap":
        write_jams(path, [(0.0, 2.0, "C:maj"), (1.0, 3.0, "A:min")])
    elif case == "badlabel":
        write_jams(path, [(0.0, 2.0, "C:maj"), (2.0, 3.0, "H:maj")])
    elif case == "namespace":
        jam = jams.JAMS()
        jam.file_metadata.duration = 2.0
        beats = jams.Annotation(namespace="beat")
        beats.append(time=0.5, duration=0.0, value=1)
        jam.annotations.append(beats)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            jam.save(str(path))
    else:
        path.write_text("{ not json")
    with pytest.raises(SongError, match=pattern) as caught:
        read_annotation(path)
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------ splits
IDS = [f"artist{a}/album{b}/song{s}.wav" for a in range(12) for b in range(2) for s in range(4)]


def test_folds_are_disjoint_and_cover_every_song():
    folds = [
        {song for song, side in assign_splits(IDS, 3, num_folds=5, fold=i).items() if side == "val"} for i in range(5)
    ]
    assert all(folds)
    assert set().union(*folds) == set(IDS) and sum(map(len, folds)) == len(IDS)
    for i in range(5):  # each run trains on everything but its fold
        split = assign_splits(IDS, 3, num_folds=5, fold=i)
        assert {s for s, side in split.items() if side == "train"} == set(IDS) - folds[i]


def test_adding_a_song_moves_no_other_song():
    before = {i: assign_splits(IDS, 3, num_folds=5, fold=i) for i in range(5)}
    grown = IDS + [f"new/song{k}.wav" for k in range(30)]
    for i in range(5):
        after = assign_splits(grown, 3, num_folds=5, fold=i)
        assert {s: after[s] for s in IDS} == before[i]
    hashed = assign_splits(IDS, 3, 0.2)
    assert {s: assign_splits(grown, 3, 0.2)[s] for s in IDS} == hashed
    assert [fold_of(s, 3, 5) for s in IDS] == [fold_of(s, 3, 5) for s in IDS]  # pure
    assert [fold_of(s, 3, 5) for s in IDS] != [fold_of(s, 4, 5) for s in IDS]  # the seed matters


@pytest.mark.parametrize("options", [{"num_folds": 4, "fold": 1}, {"val_fraction": 0.3}])
def test_grouping_keeps_each_artist_in_one_split(options):
    split = assign_splits(IDS, 0, group_depth=1, **options)
    sides: Dict[str, set] = {}
    for song, side in split.items():
        sides.setdefault(group_key(song, 1), set()).add(side)
    assert len(sides) == 12 and all(len(s) == 1 for s in sides.values())
    assert set(split.values()) == {"train", "val"}
    ungrouped = assign_splits(IDS, 0, **options)  # without the key some artist straddles the split
    assert any(len({ungrouped[s] for s in IDS if s.startswith(f"artist{a}/")}) == 2 for a in range(12))


def test_group_key_is_the_first_folders():
    assert group_key("a/b/c.wav", 1) == "a/" and group_key("a/b/c.wav", 2) == "a/b/"
    assert group_key("a/b/c.wav", 0) == "a/b/c.wav" and group_key("c.wav", 1) == "c.wav"


@pytest.mark.parametrize("seed", range(20))
def test_every_fold_holds_songs_when_there_are_as_many_songs_as_folds(seed):
    """Hashes spread unevenly over a few songs (5 folds of 10 once left one empty); and
    adding a song still moves few others: at most one per fold that was rebalanced."""
    songs = [f"album/song{i}.wav" for i in range(10)]
    sizes = [sum(side == "val" for side in assign_splits(songs, seed, num_folds=5, fold=f).values()) for f in range(5)]
    assert all(sizes) and sum(sizes) == 10
    before = assign_folds(songs, seed, 5)
    after = assign_folds(songs + ["album/new.wav"], seed, 5)
    moved = [s for s in songs if before[s] != after[s]]
    assert len(moved) <= 2 and len(set(after.values())) == 5
    assert assign_folds(list(reversed(songs)), seed, 5) == before  # the set of songs decides, not their order


def test_too_many_folds_for_the_songs_is_one_clear_line():
    with pytest.raises(ValueError, match=r"fold \d of 5 leaves the \w+ split empty .*data\.num_folds"):
        for i in range(5):
            assign_splits(["a.wav", "b.wav"], 0, num_folds=5, fold=i)


def test_a_split_file_decides_and_unlisted_songs_are_left_out(tmp_path):
    ids = ["x/one.wav", "x/two.flac", "three.wav"]
    path = tmp_path / "split.txt"
    path.write_text("# my split\ntrain x/one.wav\n\nval\t  x/two\n")
    assert read_split_file(path, ids) == {"x/one.wav": "train", "x/two.flac": "val", "three.wav": "excluded"}


@pytest.mark.parametrize(
    "text,pattern",
    [
        ("test a.wav\n", r"split\.txt:1: want 'train SONG_ID' or 'val SONG_ID', got 'test a\.wav'"),
        ("train a.wav\nval zzz.wav\n", r"split\.txt:2: 'zzz\.wav' is not an audio file of the collection"),
        ("train a.wav\nval a\n", r"split\.txt:2: 'a' is listed already on line 1"),
    ],
)
def test_a_bad_split_file_names_file_and_line(tmp_path, text, pattern):
    (tmp_path / "split.txt").write_text(text)
    with pytest.raises(ValueError, match=pattern):
        read_split_file(tmp_path / "split.txt", ["a.wav", "b.wav"])


# ------------------------------------------------------------------ the datasets on these layouts
def make(cls, root: Path, split: str, **kw):
    kw.setdefault("pitch_shift", 0)
    return cls(8, split=split, root=root, sample_rate=SR, clip_seconds=1.0, **kw)


@pytest.mark.parametrize("cls", [FolderChordDataset, FolderSongDataset])
def test_both_folder_datasets_read_the_parallel_tree_and_jams_with_folds(tree, cls):
    audio, ann = tree
    seen = []
    for fold in range(2):
        train = make(cls, audio, "train", annotations=ann, num_folds=2, fold=fold)
        val = make(cls, audio, "val", annotations=ann, num_folds=2, fold=fold)
        assert set(train.song_paths).isdisjoint(val.song_paths)
        assert sorted(train.song_paths + val.song_paths) == [
            "album1/s1.wav",
            "album1/s2.wav",
            "album2/s3.wav",
            "album2/s4.wav",
        ]
        seen += val.song_paths
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 4  # each song is val in exactly one fold
    songs = {s.audio_path.name: s for s in train.songs + val.songs}
    assert songs["s2.wav"].segments.tolist() == [[0.0, 1.0], [1.0, 4.0]]  # from the JAMS file
    assert songs["s4.wav"].labels.tolist() == [[4, 1, 4]]  # E:maj, from chord_harte


def test_group_depth_and_split_file_reach_the_dataset(tree, tmp_path):
    audio, ann = tree
    train = make(FolderChordDataset, audio, "train", annotations=ann, group_depth=1, val_fraction=0.5)
    val = make(FolderChordDataset, audio, "val", annotations=ann, group_depth=1, val_fraction=0.5)
    albums = lambda ds: {p.split("/")[0] for p in ds.song_paths}  # noqa: E731
    assert albums(train).isdisjoint(albums(val)) and albums(train) | albums(val) == {"album1", "album2"}
    split = tmp_path / "split.txt"
    split.write_text("train album1/s1.wav\ntrain album2/s3\nval album2/s4.wav\n")
    train = make(FolderChordDataset, audio, "train", annotations=ann, split_file=str(split))
    val = make(FolderChordDataset, audio, "val", annotations=ann, split_file=str(split))
    assert (train.song_paths, val.song_paths) == (["album1/s1.wav", "album2/s3.wav"], ["album2/s4.wav"])


def test_a_song_without_annotation_in_the_tree_is_skipped_naming_where(tree, caplog):
    audio, ann = tree
    (ann / "album1" / "s1.lab").unlink()
    caplog.set_level(logging.WARNING, logger="chordexp.data.folder")
    train = make(FolderChordDataset, audio, "train", annotations=ann, num_folds=2, fold=0)
    val = make(FolderChordDataset, audio, "val", annotations=ann, num_folds=2, fold=0)
    assert "album1/s1.wav" not in train.song_paths + val.song_paths
    (line,) = [r.getMessage() for r in caplog.records if "s1.wav" in r.getMessage()]
    assert f"no .lab or .jams annotation in {ann / 'album1'} (expected s1.lab or s1.jams)" in line


@pytest.mark.parametrize(
    "kw,pattern",
    [
        ({"num_folds": 1}, r"num_folds must be 0 .* or an integer >= 2, got 1"),
        ({"num_folds": 5, "fold": 5}, r"fold must be an integer in 0\.\.4 \(num_folds=5\), got 5"),
        ({"group_depth": -1}, r"group_depth must be an integer >= 0, got -1"),
        (
            {"num_folds": 2, "split_file": "s.txt"},
            r"split_file and num_folds=2 both choose the split: give one of them",
        ),
        ({"annotations": "/nonexistent/ann"}, r"annotation folder /nonexistent/ann: no such directory"),
    ],
)
def test_bad_collection_options_are_one_line(tree, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        make(FolderChordDataset, tree[0], "train", **kw)


def test_data_fold_on_the_command_line_reaches_the_dataset(compose_cfg, tree):
    from chordexp.experiment.components import build_datasets

    audio, ann = tree
    held_out = []
    for fold in range(2):
        cfg = compose_cfg(
            "data=folder",
            f"data.dataset.root={audio}",
            f"data.dataset.annotations={ann}",
            "data.num_folds=2",
            f"data.fold={fold}",
            "data.sample_rate=8000",
            "data.train_size=4",
            "data.val_size=2",
            "data.dataset.pitch_shift=0",
        )
        assert (cfg.data.dataset.num_folds, cfg.data.dataset.fold) == (2, fold)
        train_set, val_set = build_datasets(cfg)
        assert set(train_set.song_paths).isdisjoint(val_set.song_paths)
        held_out += val_set.song_paths
    assert sorted(held_out) == ["album1/s1.wav", "album1/s2.wav", "album2/s3.wav", "album2/s4.wav"]


def test_without_the_jams_package_a_jams_file_is_one_line_saying_what_to_install(tmp_path, monkeypatch):
    path = write_jams(tmp_path / "a.jams")
    monkeypatch.setitem(sys.modules, "jams", None)  # import jams now raises ImportError
    with pytest.raises(SongError, match=r"a\.jams: reading JAMS files needs the jams package: pip install"):
        read_annotation(path)
