"""Fixtures for the trainer tests: a tiny stand-in model and a learnable toy task.

The stand-in maps ``(B, NUM_SAMPLES)`` audio to the three logit heads with no
batch-dependent layers, so the tests do not depend on ``ChordRecognitionModel``.
Toy labels are readable from the audio: chord_type = 1 + argmax of samples 0..6,
root = argmax of samples 8..11, bass = argmax of samples 12..15; every 4th item is N.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from chordexp.config import TrainingConfig
from chordexp.training import Trainer

NUM_SAMPLES = 64


class TinyChordModel(nn.Module):
    """(B, N) audio -> {'chord_type': (B, 32), 'root': (B, 12), 'bass_note': (B, 12)}."""

    def __init__(self, num_samples: int = NUM_SAMPLES, hidden: int = 48, dropout: float = 0.0) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Dropout(dropout), nn.Linear(num_samples, hidden), nn.Tanh())
        self.heads = nn.ModuleDict(
            {
                "chord_type": nn.Linear(hidden, 32),
                "root": nn.Linear(hidden, 12),
                "bass_note": nn.Linear(hidden, 12),
            }
        )
        self.last_hidden_dtype: torch.dtype = torch.float32

    def forward(self, audio: Tensor) -> Dict[str, Tensor]:
        hidden = self.body(audio)
        self.last_hidden_dtype = hidden.dtype
        return {task: head(hidden) for task, head in self.heads.items()}


class ToyChordDataset(Dataset):
    """``size`` items of ``(audio (NUM_SAMPLES,), {task: long scalar})``, fixed by ``seed``."""

    def __init__(self, size: int, seed: int = 0, with_no_chord: bool = True) -> None:
        g = torch.Generator().manual_seed(seed)
        self.audio = torch.randn(size, NUM_SAMPLES, generator=g)
        chord_type = 1 + self.audio[:, :7].argmax(dim=1)
        if with_no_chord:
            chord_type[::4] = 0
        self.targets = {
            "chord_type": chord_type,
            "root": self.audio[:, 8:12].argmax(dim=1),
            "bass_note": self.audio[:, 12:16].argmax(dim=1),
        }

    def __len__(self) -> int:
        return self.audio.shape[0]

    def __getitem__(self, i: int) -> Tuple[Tensor, Dict[str, Tensor]]:
        return self.audio[i], {task: labels[i] for task, labels in self.targets.items()}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every trainer test runs on one torch thread (the machine is shared)."""


@pytest.fixture
def make_config(tmp_path) -> Callable[..., TrainingConfig]:
    """Small, fast defaults; checkpoints under ``tmp_path/ckpt``."""

    def make(**overrides: Any) -> TrainingConfig:
        fields: Dict[str, Any] = dict(
            learning_rate=1e-2,
            num_epochs=2,
            warmup_epochs=0,
            scheduler="constant",
            device="cpu",
            checkpoint_dir=str(tmp_path / "ckpt"),
            save_every=0,
            log_every=0,
            patience=0,
        )
        fields.update(overrides)
        return TrainingConfig(**fields)

    return make


@pytest.fixture
def make_trainer(make_config) -> Callable[..., Trainer]:
    """``make_trainer(seed=0, train_size=16, val_size=8, batch_size=4, shuffle=False,
    dropout=0.0, with_no_chord=True, model=None, optimizer_factory=None, **config)``.

    Seeds torch's global RNG with ``seed`` before building the model, as an entry
    point would.
    """

    def make(
        seed: int = 0,
        train_size: int = 16,
        val_size: int = 8,
        batch_size: int = 4,
        shuffle: bool = False,
        dropout: float = 0.0,
        with_no_chord: bool = True,
        model: nn.Module = None,
        optimizer_factory=None,
        **config: Any,
    ) -> Trainer:
        torch.manual_seed(seed)
        if model is None:
            model = TinyChordModel(dropout=dropout)
        train = DataLoader(
            ToyChordDataset(train_size, seed=1, with_no_chord=with_no_chord), batch_size=batch_size, shuffle=shuffle
        )
        val = DataLoader(ToyChordDataset(val_size, seed=2), batch_size=batch_size)
        return Trainer(model, train, val, make_config(**config), optimizer_factory=optimizer_factory)

    return make


@pytest.fixture
def tiny_model() -> Callable[..., TinyChordModel]:
    """The stand-in model class: ``tiny_model(num_samples=64, hidden=48, dropout=0.0)``."""
    return TinyChordModel


@pytest.fixture
def toy_dataset() -> Callable[..., ToyChordDataset]:
    """The toy dataset class: ``toy_dataset(size, seed=0, with_no_chord=True)``."""
    return ToyChordDataset
