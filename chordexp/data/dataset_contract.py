"""What every dataset here shares: the item type, the split names, the checks of ``size``,
``seed`` and an index, the targets of one clip and the generator of one item.

An item is a pure function of its dataset's seed and its position: its generator is seeded
from ``SeedSequence([seed, tag, *stream])``, never from global state, so any process or
DataLoader worker makes the same item. Each kind of dataset has its own ``tag`` (below, in
one place so that no two collide), which keeps its streams apart from every other user
of ``SeedSequence([seed, ...])``.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np
import torch

from chordexp.errors import ConfigValueError

SPLITS: Tuple[str, ...] = ("train", "val", "test")

#: Seed-sequence tags, one per kind of dataset.
CLIP_TAG = 0x43484F52  # "CHOR": synthetic and dummy clips
FOLDER_TAG = 0x464F4C44  # "FOLD": windows and excerpts cut from a folder of songs
SONG_TAG = 0x534F4E47  # "SONG": synthetic songs

Item = Tuple[torch.Tensor, Dict[str, torch.Tensor]]


def item_rng(seed: int, tag: int, *stream: int) -> np.random.Generator:
    """The generator that draws everything about one item: ``stream`` names it (split, index, ...)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, tag, *stream])))


def check_index(index: int, size: int) -> int:
    """``index`` as a position in ``0..size-1`` (negative counts from the end), or IndexError."""
    if not -size <= index < size:
        raise IndexError(f"index {index} is out of range for a dataset of size {size}")
    return index % size


def is_int(value: Any) -> bool:
    """An integer, Python's or numpy's, and not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_common(size: int, seed: int) -> None:
    """The arguments every dataset here takes: ``size`` > 0 and ``seed`` >= 0."""
    if not is_int(size) or size <= 0:
        raise ConfigValueError(f"size must be a positive integer, got {size!r}")
    if not is_int(seed) or seed < 0:
        raise ConfigValueError(f"seed must be a non-negative integer, got {seed!r}")


def as_targets(chord_type: int, root: int, bass_note: int) -> Dict[str, torch.Tensor]:
    """The item's targets: 0-dim long tensors (one tensor creation, three views)."""
    chord, root_t, bass = torch.tensor([chord_type, root, bass_note], dtype=torch.long).unbind()
    return {"chord_type": chord, "root": root_t, "bass_note": bass}
