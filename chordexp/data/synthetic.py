"""``SyntheticChordDataset``: labelled chord clips synthesised on the fly.

Item ``i`` is a pure function of ``(seed, split, i)``: its generator is seeded from
``SeedSequence([seed, CLIP_TAG, split_id, i])`` (``chordexp.data.dataset_contract``), never from global
state, so any process or DataLoader worker renders bit-identical audio, and the splits are
disjoint streams.
"""

from __future__ import annotations

from typing import Any, Dict

import torch
from torch.utils.data import Dataset

from chordexp.audio import SAMPLE_RATE_RULE, sample_rate_ok
from chordexp.data.dataset_contract import CLIP_TAG, SPLITS, Item, as_targets, check_common, check_index, item_rng
from chordexp.data.item_errors import item_error
from chordexp.data.synth_clips import ChordSynth, SynthOptions, make_options
from chordexp.errors import ConfigValueError


class SyntheticChordDataset(Dataset):
    """``size`` clips of one chord (or ``N``) each, ``clip_seconds`` long.

    Item: ``(audio, targets)``; audio float32 ``(num_samples,)`` within [-1, 1];
    targets 0-dim long tensors ``chord_type`` (0..31), ``root`` and ``bass_note``
    (0..11, both 0 for ``N``). ``bass_note`` is the pitch class of the lowest note.
    ``realism='plain'`` gives block chords with simple timbres, about 3x faster;
    every field of ``SynthOptions`` can be passed as a keyword (see ``synth_options.py``).
    """

    def __init__(
        self,
        size: int,
        split: str = "train",
        seed: int = 0,
        sample_rate: int = 44100,
        clip_seconds: float = 1.0,
        realism: str = "rich",
        **options: Any,
    ) -> None:
        check_common(size, seed)
        if split not in SPLITS:
            raise ConfigValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not sample_rate_ok(sample_rate):
            raise ConfigValueError(f"sample_rate must be {SAMPLE_RATE_RULE}, got {sample_rate!r}")
        if not isinstance(clip_seconds, (int, float)) or not 0.1 <= clip_seconds <= 60.0:
            raise ConfigValueError(f"clip_seconds must be in 0.1..60 s, got {clip_seconds!r}")
        self.size, self.split, self.seed = int(size), split, int(seed)
        self.sample_rate = int(sample_rate)
        self.num_samples = int(round(clip_seconds * sample_rate))
        self.options: SynthOptions = make_options(realism, **options)
        self._split_id = SPLITS.index(split)
        self._synth = ChordSynth(self.options, self.sample_rate, self.num_samples)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Item:
        rng = item_rng(self.seed, CLIP_TAG, self._split_id, check_index(index, self.size))
        try:
            labels = self._synth.sample_labels(rng)
            audio = self._synth.render(rng, *labels)
        except Exception as error:  # name the item: the DataLoader would not
            raise item_error(self, index, error) from error
        return torch.from_numpy(audio), as_targets(*labels)

    def targets(self, index: int) -> Dict[str, int]:
        """Item ``index``'s labels without rendering its audio (cheap)."""
        rng = item_rng(self.seed, CLIP_TAG, self._split_id, check_index(index, self.size))
        chord_type, root, bass_note = self._synth.sample_labels(rng)
        return {"chord_type": chord_type, "root": root, "bass_note": bass_note}

    def __repr__(self) -> str:
        return (
            f"SyntheticChordDataset(size={self.size}, split={self.split!r}, seed={self.seed}, "
            f"sample_rate={self.sample_rate}, num_samples={self.num_samples}, realism={self.options.realism!r})"
        )
