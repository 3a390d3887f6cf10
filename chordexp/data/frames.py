"""Frame-level targets: one label per model frame, from chord segments.

Song mode trains the model's frame logits directly, so a dataset must give one label
per frame the model will output for its audio. The frames are those of
``LogFrequencySpectrogram`` (``torch.stft`` with ``center=True``): frame ``k`` is
centred on sample ``k * hop_length``, and ``num_samples`` of audio give
``FrameGrid.num_frames(num_samples)`` frames. A frame takes the label of the segment
that covers its centre; frames past the end of the real audio (an excerpt padded to
length) are masked out.

Sequence targets are a dict of ``(T,)`` tensors: ``chord_type``, ``root``,
``bass_note`` (long) and ``mask`` (bool, True = a real frame to train and score on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence, Tuple, Union

import numpy as np
import torch

from chordexp.model.frontend import LogFrequencySpectrogram

Triple = Tuple[int, int, int]  # (chord_type, root, bass_note)
MASK_KEY = "mask"


@dataclass(frozen=True)
class FrameGrid:
    """The model's frame positions for audio at ``sample_rate`` (see the front end)."""

    sample_rate: int
    hop_length: int  # input samples between frame centres
    decimation: int
    inner_hop: int

    @classmethod
    def for_model(
        cls,
        sample_rate: int,
        fmin: float = 32.70,
        n_octaves: int = 6,
        bins_per_octave: int = 36,
        frames_per_second: float = 10.77,
    ) -> "FrameGrid":
        """The grid of a ``ChordRecognitionModel`` built with these front-end arguments."""
        front = LogFrequencySpectrogram(
            sample_rate=sample_rate,
            fmin=fmin,
            n_octaves=n_octaves,
            bins_per_octave=bins_per_octave,
            frames_per_second=frames_per_second,
        )
        return cls(int(sample_rate), int(front.hop_length), int(front.decimation), int(front.inner_hop))

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def num_frames(self, num_samples: int) -> int:
        """Frames the front end gives for ``num_samples`` (same formula as the model's)."""
        return ((int(num_samples) - 1) // self.decimation + 1) // self.inner_hop + 1

    def times(self, num_frames: int) -> np.ndarray:
        """Frame centres in seconds, ``(num_frames,)``."""
        return np.arange(num_frames) * (self.hop_length / self.sample_rate)


def frame_targets(
    starts: Union[Sequence[float], np.ndarray],
    ends: Union[Sequence[float], np.ndarray],
    triples: Sequence[Triple],
    times: np.ndarray,
    valid_until: float,
) -> Dict[str, torch.Tensor]:
    """Labels at ``times`` (s) from segments ``[starts[i], ends[i])`` labelled ``triples[i]``.

    A time covered by no segment is ``N``; a time at or after ``valid_until`` (the end of
    the real audio) is masked out. Returns the sequence-targets dict (see the module).
    """
    starts_a = np.asarray(starts, dtype=np.float64)
    ends_a = np.asarray(ends, dtype=np.float64)
    labels = np.zeros((len(times), 3), dtype=np.int64)
    if len(starts_a):
        table = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
        index = np.searchsorted(starts_a, times, side="right") - 1  # last segment starting at or before t
        inside = (index >= 0) & (times < ends_a[np.clip(index, 0, None)])
        labels[inside] = table[index[inside]]
    return {
        "chord_type": torch.from_numpy(labels[:, 0].copy()),
        "root": torch.from_numpy(labels[:, 1].copy()),
        "bass_note": torch.from_numpy(labels[:, 2].copy()),
        MASK_KEY: torch.from_numpy(times < valid_until),
    }
