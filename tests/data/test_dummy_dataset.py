"""DummyChordDataset: deterministic Gaussian noise with valid random labels."""

from __future__ import annotations

import pytest
import torch

from chordexp.data import DummyChordDataset


def test_items_are_deterministic_and_differ_by_index_seed_and_split():
    a, b = DummyChordDataset(8, num_samples=1000, seed=3), DummyChordDataset(8, num_samples=1000, seed=3)
    assert torch.equal(a[5][0], b[5][0]) and a.targets(5) == b.targets(5)
    assert not torch.equal(a[5][0], a[6][0])
    assert not torch.equal(a[5][0], DummyChordDataset(8, num_samples=1000, seed=4)[5][0])
    assert not torch.equal(a[5][0], DummyChordDataset(8, num_samples=1000, seed=3, split="val")[5][0])


def test_items_have_the_framework_format_and_valid_labels():
    ds = DummyChordDataset(200, num_samples=500)
    for i in range(len(ds)):
        audio, targets = ds[i]
        assert audio.shape == (500,) and audio.dtype == torch.float32
        assert all(v.dtype == torch.long and v.dim() == 0 for v in targets.values())
        chord_type, root, bass = (int(targets[k]) for k in ("chord_type", "root", "bass_note"))
        assert 0 <= chord_type < 32 and 0 <= root < 12 and 0 <= bass < 12
        if chord_type == 0:
            assert root == bass == 0
    assert len({int(ds[i][1]["chord_type"]) for i in range(len(ds))}) > 20


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(size=0), "size"),
        (dict(size=2, num_samples=0), "num_samples"),
        (dict(size=2, seed=-1), "seed"),
        (dict(size=2, split="x"), "split"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DummyChordDataset(**kwargs)
