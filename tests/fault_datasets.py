"""Datasets that fail on purpose, for runs started with ``allow_any_target=true``
(the subprocess gets ``tests/`` on its PYTHONPATH): a user's dataset with labels out of
range, one whose DataLoader worker is killed, one whose items fail to render."""

from __future__ import annotations

import os
import signal

from chordexp.data import DummyChordDataset, SyntheticChordDataset


class OutOfRangeLabels(DummyChordDataset):
    """Every item's root is 12 (valid roots are 0..11)."""

    def __getitem__(self, index: int):
        audio, targets = super().__getitem__(index)
        targets["root"] = targets["root"] * 0 + 12
        return audio, targets


class KilledWorker(DummyChordDataset):
    """The process that loads a train item dies by SIGKILL (as the OOM killer does it)."""

    def __getitem__(self, index: int):
        if self.split == "train":
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(index)


class _BrokenSynth:
    def __init__(self, synth) -> None:
        self.synth = synth

    def sample_labels(self, rng):
        return self.synth.sample_labels(rng)

    def render(self, rng, *labels):
        raise FloatingPointError("the synthesiser diverged")


class BrokenRender(SyntheticChordDataset):
    """Labels are drawn, then rendering every item fails."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._synth = _BrokenSynth(self._synth)
