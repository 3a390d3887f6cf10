"""Datasets and loaders: synthetic chord audio, dummy noise, reproducible DataLoaders.

Every dataset yields ``(audio, targets)``: audio float32 ``(num_samples,)``, targets a
dict of 0-dim long tensors ``chord_type`` (0..31), ``root`` and ``bass_note`` (0..11);
song datasets (``SyntheticSongDataset``) give ``(T,)`` frame targets and a ``mask``
instead (``chordexp.data.frames``).
"""

from chordexp.data.dummy import DummyChordDataset
from chordexp.data.folder import FolderChordDataset
from chordexp.data.folder_songs import FolderSongDataset
from chordexp.data.loaders import build_loaders
from chordexp.data.memory import InMemoryDataset
from chordexp.data.songs import SyntheticSongDataset
from chordexp.data.synthetic import SyntheticChordDataset

__all__ = [
    "SyntheticChordDataset",
    "SyntheticSongDataset",
    "DummyChordDataset",
    "FolderChordDataset",
    "FolderSongDataset",
    "InMemoryDataset",
    "build_loaders",
]
