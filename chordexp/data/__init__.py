"""Datasets and loaders: synthetic chord audio, dummy noise, reproducible DataLoaders.

Every dataset yields ``(audio, targets)``: audio float32 ``(num_samples,)``, targets a
dict of 0-dim long tensors ``chord_type`` (0..31), ``root`` and ``bass_note`` (0..11).
"""
from chordexp.data.dummy import DummyChordDataset
from chordexp.data.folder import FolderChordDataset
from chordexp.data.loaders import build_loaders
from chordexp.data.memory import InMemoryDataset
from chordexp.data.synthetic import SyntheticChordDataset

__all__ = ["SyntheticChordDataset", "DummyChordDataset", "FolderChordDataset", "InMemoryDataset", "build_loaders"]
