"""``DummyChordDataset``: Gaussian noise with random valid labels, for smoke tests.

It exercises the whole pipeline at almost no cost and learns nothing. Items are a
pure function of ``(seed, split, index)``, like the synthetic dataset's.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from chordexp.chords import NO_CHORD, NUM_CHORD_TYPES
from chordexp.data.dataset_contract import (
    CLIP_TAG,
    SPLITS,
    Item,
    as_targets,
    check_common,
    check_index,
    is_int,
    item_rng,
)
from chordexp.errors import ConfigValueError

_DUMMY_SPLIT_OFFSET = 100  # keeps dummy streams apart from synthetic ones


class DummyChordDataset(Dataset):
    """``size`` items of ``(audio, targets)``: audio float32 ``(num_samples,)``, standard
    deviation 0.1; targets as in ``SyntheticChordDataset`` (root = bass = 0 for ``N``)."""

    def __init__(self, size: int, num_samples: int = 44100, seed: int = 0, split: str = "train") -> None:
        check_common(size, seed)
        if not is_int(num_samples) or num_samples <= 0:
            raise ConfigValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        if split not in SPLITS:
            raise ConfigValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.size, self.num_samples, self.seed, self.split = int(size), int(num_samples), int(seed), split
        self._split_id = _DUMMY_SPLIT_OFFSET + SPLITS.index(split)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Item:
        rng = item_rng(self.seed, CLIP_TAG, self._split_id, check_index(index, self.size))
        labels = self._labels(rng)
        audio = rng.standard_normal(self.num_samples, dtype=np.float32)
        audio *= np.float32(0.1)
        return torch.from_numpy(audio), as_targets(*labels)

    def targets(self, index: int) -> Dict[str, int]:
        rng = item_rng(self.seed, CLIP_TAG, self._split_id, check_index(index, self.size))
        chord_type, root, bass_note = self._labels(rng)
        return {"chord_type": chord_type, "root": root, "bass_note": bass_note}

    @staticmethod
    def _labels(rng: np.random.Generator) -> Tuple[int, int, int]:
        chord_type, root, bass = (int(x) for x in rng.integers((NUM_CHORD_TYPES, 12, 12)))
        return (NO_CHORD, 0, 0) if chord_type == NO_CHORD else (chord_type, root, bass)
