"""A model trained for a few seconds transcribes a song of known chords: right labels,
boundaries where the chords change, a .lab that mir_eval scores."""

import numpy as np
import pytest
import torch

from chordexp.chords import CHORD_TYPE_INDEX, NUM_CHORD_TYPES, parse_label
from chordexp.data import InMemoryDataset, SyntheticChordDataset, build_loaders
from chordexp.data.synth_clips import ChordSynth
from chordexp.inference import ChordRecognizer
from chordexp.model import ChordRecognitionModel
from chordexp.training import Trainer, TrainingConfig

SR = 16000
TYPES = ("maj", "min", "7")  # a small vocabulary a model learns in seconds
SONG = ("C:maj", "A:min", "G:7", "F:maj")


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    torch.manual_seed(0)
    weights = [0.0] * NUM_CHORD_TYPES
    for name in ("N",) + TYPES:
        weights[CHORD_TYPE_INDEX[name]] = 1.0
    options = dict(sample_rate=SR, realism="plain", chord_type_weights=weights, inversion_prob=0.0)
    train = InMemoryDataset(SyntheticChordDataset(1600, "train", seed=1, **options))
    val = InMemoryDataset(SyntheticChordDataset(200, "val", seed=1, **options))
    train_loader, val_loader = build_loaders(train, val, batch_size=32, seed=1)
    model = ChordRecognitionModel(sample_rate=SR, d_model=64, num_blocks=1, num_heads=2, channels=8, dropout=0.0)
    config = TrainingConfig(
        learning_rate=3e-3,
        num_epochs=4,
        warmup_epochs=0,
        label_smoothing=0.0,
        checkpoint_dir=str(tmp_path_factory.mktemp("ckpt")),
        save_every=0,
    )
    trainer = Trainer(model, train_loader, val_loader, config)
    trainer.train()
    assert trainer.history["val_chord_type_acc"][-1] > 90.0  # it did learn the clips
    return ChordRecognizer(trainer.model.cpu(), self_transition=0.95)


def song_audio(seconds_per_chord: float = 2.0) -> np.ndarray:
    """The chords of SONG rendered by the plain synth (a different seed than training)."""
    synth = ChordSynth(
        SyntheticChordDataset(1, sample_rate=SR, realism="plain", noise_prob=0.0).options,
        SR,
        int(seconds_per_chord * SR),
    )
    rng = np.random.default_rng(1234)
    parts = []
    for label in SONG:
        root, chord_type, bass = parse_label(label)
        parts.append(synth.render(rng, chord_type, root, bass))
    return np.concatenate(parts)


def test_a_song_of_known_chords_gets_its_labels_and_boundaries(recognizer):
    result = recognizer.transcribe(song_audio(), SR)
    labels = [label for _, _, label in result.segments]
    assert labels == list(SONG)
    boundaries = [start for start, _, _ in result.segments[1:]]
    assert np.allclose(boundaries, [2.0, 4.0, 6.0], atol=0.3)
    assert result.segments[-1][1] == pytest.approx(8.0)
