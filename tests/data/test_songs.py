"""SyntheticSongDataset: deterministic excerpts, frame labels that follow the score,
a realistic harmonic language, one-line errors."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from chordexp.chords import CHORD_TYPES, NO_CHORD
from chordexp.data import SyntheticSongDataset
from chordexp.data.frames import FrameGrid, frame_targets
from chordexp.data.harmony import plan_song
from chordexp.data.songs import song_rng


@pytest.fixture(scope="module")
def songs():
    return SyntheticSongDataset(size=6, split="train", seed=3, sample_rate=11025, clip_seconds=6.0)


def test_items_are_deterministic_per_seed_split_index_in_any_worker(songs):
    direct = [songs[i] for i in range(4)]
    loader = DataLoader(songs, batch_size=2, num_workers=2, multiprocessing_context="fork")
    batched = [item for audio, targets in loader for item in zip(audio, targets["chord_type"])]
    for (audio, targets), (audio_w, chord_w) in zip(direct, batched):
        assert torch.equal(audio, audio_w)
        assert torch.equal(targets["chord_type"], chord_w)
    again = SyntheticSongDataset(size=6, split="train", seed=3, sample_rate=11025, clip_seconds=6.0)
    assert torch.equal(again[1][0], direct[1][0])


def test_splits_and_seeds_are_different_streams(songs):
    val = SyntheticSongDataset(size=6, split="val", seed=3, sample_rate=11025, clip_seconds=6.0)
    other_seed = SyntheticSongDataset(size=6, split="train", seed=4, sample_rate=11025, clip_seconds=6.0)
    assert not torch.equal(songs[0][0], val[0][0])
    assert not torch.equal(songs[0][0], other_seed[0][0])


def test_item_shapes_levels_and_one_label_per_model_frame(songs):
    audio, targets = songs[0]
    grid = FrameGrid.for_model(11025)
    assert audio.shape == (6 * 11025,) and audio.dtype == torch.float32
    assert 0 < float(audio.abs().max()) <= 1.0
    frames = grid.num_frames(len(audio))
    assert set(targets) == {"chord_type", "root", "bass_note", "mask"}
    assert all(t.shape == (frames,) for t in targets.values())
    assert bool(targets["mask"].all())  # an excerpt is real audio to its end
    assert int((targets["chord_type"] > 0).sum()) > 0


def test_frame_labels_follow_the_rendered_timeline(songs):
    song = songs.render(song_rng(3, 0, 0), 6.0, excerpt=True)
    times = songs.grid.times(songs.grid.num_frames(len(song.audio)))
    starts, ends, triples = zip(*song.segments)
    targets = songs[0][1]
    for k, t in enumerate(times):
        covering = [triple for start, end, triple in song.segments if start <= t < end]
        expected = covering[0] if covering else (NO_CHORD, 0, 0)
        got = tuple(int(targets[key][k]) for key in ("chord_type", "root", "bass_note"))
        assert got == expected, (k, t)


def test_frame_targets_mask_padding_and_fill_gaps_with_n():
    times = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    targets = frame_targets([0.4, 1.0], [0.9, 1.6], [(1, 2, 2), (2, 9, 0)], times, valid_until=1.8)
    assert targets["chord_type"].tolist() == [0, 1, 2, 2, 0]
    assert targets["root"].tolist() == [0, 2, 9, 9, 0]
    assert targets["bass_note"].tolist() == [0, 2, 0, 0, 0]
    assert targets["mask"].tolist() == [True, True, True, True, False]


def test_whole_songs_cover_their_duration_with_labels():
    dataset = SyntheticSongDataset(size=2, split="val", seed=0, sample_rate=11025, clip_seconds=6.0)
    song = dataset.song(0, seconds=20.0)
    assert len(song.audio) == 20 * 11025
    labelled = song.labelled()
    assert labelled[0][0] == 0.0 and abs(labelled[-1][1] - 20.0) < 1e-9
    assert all(a[1] == pytest.approx(b[0]) for a, b in zip(labelled, labelled[1:]))
    assert abs(song.tuning_cents) <= 50.0
    assert not np.array_equal(song.audio[: 11025 * 6], dataset[0][0].numpy())  # songs are their own stream


def test_progressions_speak_a_pop_harmonic_language():
    seconds = collections.Counter()
    inverted = changes = total = 0.0
    for i in range(300):
        plan = plan_song(np.random.default_rng(i), 40.0)
        beat = plan.beat_seconds
        for event in plan.events:
            chord_type, root, bass = event.chord
            seconds[CHORD_TYPES[chord_type]] += event.beats * beat
            inverted += event.beats * beat * (chord_type != NO_CHORD and bass != root)
            total += event.beats * beat
            changes += 1
            assert event.beats == int(event.beats) and event.start_beat == int(event.start_beat)  # on beats
    share = {name: value / total for name, value in seconds.items()}
    assert 0.5 <= share["maj"] + share["min"] <= 0.75  # real pop: ~60-70 % plain triads
    assert share["7"] > 0.03 and share["min7"] > 0.02  # sevenths are common
    assert all(share.get(name, 0) < 0.02 for name in ("11", "7(#9)", "maj6(9)", "aug(b7)"))  # rare types are rare
    assert 0.03 < inverted / total < 0.2
    assert 0.01 < share["N"] < 0.1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(clip_seconds=0.5), "clip_seconds"),
        (dict(clip_seconds=float("nan")), "clip_seconds"),
        (dict(tuning_cents=-1.0), "tuning_cents"),
        (dict(n_prob=2.0), "n_prob"),
        (dict(split="dev"), "split"),
        (dict(sample_rate=1000), "sample_rate"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        SyntheticSongDataset(size=2, **kwargs)
    assert "\n" not in str(error.value)
