"""Audio the benchmarks run on: rendered chord clips of the realistic generator, back
to back, so the numbers come from what the model is trained and used on."""

from __future__ import annotations

import numpy as np

from chordexp.data import SyntheticChordDataset


def rendered_audio(seconds: float, sample_rate: int = 44100, seed: int = 1) -> np.ndarray:
    """``seconds`` (rounded to whole clips, at least one) of 1-s chord clips, float32."""
    clips = max(1, int(round(seconds)))
    dataset = SyntheticChordDataset(clips, split="test", seed=seed, sample_rate=sample_rate)
    return np.concatenate([dataset[i][0].numpy() for i in range(clips)])
