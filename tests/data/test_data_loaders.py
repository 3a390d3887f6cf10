"""build_loaders: batch format, seeded order, workers that change nothing."""

from __future__ import annotations

import pytest
import torch

from chordexp.data import DummyChordDataset, SyntheticChordDataset, build_loaders


def epochs(loader, count=2):
    return [[(audio, {k: v.clone() for k, v in t.items()}) for audio, t in loader] for _ in range(count)]


def test_batches_have_the_framework_format_and_keep_the_last_partial_batch():
    train, val = build_loaders(DummyChordDataset(10, num_samples=100), DummyChordDataset(6, num_samples=100), 4)
    batches = list(train)
    assert [b[0].shape for b in batches] == [(4, 100), (4, 100), (2, 100)]
    audio, targets = batches[0]
    assert audio.dtype == torch.float32
    assert set(targets) == {"chord_type", "root", "bass_note"}
    assert all(v.shape == (4,) and v.dtype == torch.long for v in targets.values())
    assert sum(len(b[0]) for b in val) == 6


def test_train_order_is_seeded_and_reshuffled_each_epoch_while_val_stays_in_order():
    data = DummyChordDataset(32, num_samples=8)
    order = lambda loader: [int(i) for a, _ in loader for i in (a[:, 0] * 1e6).long()]  # noqa: E731
    a, val = build_loaders(data, data, 8, seed=1)
    b, _ = build_loaders(data, data, 8, seed=1)
    c, _ = build_loaders(data, data, 8, seed=2)
    first, second = order(a), order(a)
    assert first == order(b) and second == order(b)
    assert first != second and first != order(c)
    assert sorted(first) == sorted(second)
    assert order(val) == [int(data[i][0][0] * 1e6) for i in range(32)]


def test_two_workers_give_the_same_batches_as_none():
    train = SyntheticChordDataset(12, seed=4, clip_seconds=0.25, realism="plain")
    val = SyntheticChordDataset(6, split="val", seed=4, clip_seconds=0.25, realism="plain")
    serial = build_loaders(train, val, 4, num_workers=0, seed=9)
    parallel = build_loaders(train, val, 4, num_workers=2, seed=9)
    assert parallel[0].persistent_workers and not serial[0].persistent_workers
    for one, other in zip(serial, parallel):
        for epoch_a, epoch_b in zip(epochs(one), epochs(other)):
            assert len(epoch_a) == len(epoch_b)
            for (xa, ta), (xb, tb) in zip(epoch_a, epoch_b):
                assert torch.equal(xa, xb)
                assert all(torch.equal(ta[k], tb[k]) for k in ta)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=-2), "batch_size"),
        (dict(batch_size=4, num_workers=-1), "num_workers"),
    ],
)
def test_bad_batch_size_or_worker_count_raise_value_error(kwargs, match):
    data = DummyChordDataset(4, num_samples=8)
    with pytest.raises(ValueError, match=match):
        build_loaders(data, data, **kwargs)
