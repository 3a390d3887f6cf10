"""Per-run plots: learning curves, the chord-type confusion matrix and the run folder's plots/."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from torch import Tensor, nn
from torch.utils.data import DataLoader

from chordexp.chords import CHORD_TYPE_INDEX, CHORD_TYPES, NUM_CHORD_TYPES
from chordexp.data import DummyChordDataset
from chordexp.experiment import run_plots
from chordexp.experiment.run_plots import (
    chord_type_confusion,
    confusion_figure,
    confusion_over_loader,
    learning_curves_figure,
    normalize_rows,
    plot_confusion_matrix,
    plot_learning_curves,
    write_run_plots,
)
from chordexp.model import ChordRecognitionModel
from chordexp.training import CheckpointError, Trainer, TrainingConfig

SR = 16000
CLIP = SR // 4
HISTORY = {
    "train_loss": [3.1, 2.2, 1.6, 1.2],
    "val_loss": [3.0, 2.4, 2.1, 2.2],
    "val_chord_type_acc": [10.0, 30.0, 45.0, 44.0],
    "val_root_acc": [20.0, 50.0, 60.0, 61.0],
    "val_bass_note_acc": [30.0, 55.0, 70.0, 72.0],
    "learning_rate": [5e-4, 1e-3, 5e-4, 1e-5],
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def read_png(path: Path) -> np.ndarray:
    """The image (H, W, 4) after checking the PNG signature: a real, non-blank picture."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image[..., :3].std() > 0.05  # something is drawn, not a blank canvas
    return image


class ReadsLabelFromAudio(nn.Module):
    """Predicts chord type ``round(audio[:, 0])``: a model whose answers the test chooses."""

    def forward(self, audio: Tensor) -> Dict[str, Tensor]:
        predicted = audio[:, 0].round().long()
        return {
            "chord_type": nn.functional.one_hot(predicted, NUM_CHORD_TYPES).float(),
            "root": torch.zeros(len(audio), 12),
            "bass_note": torch.zeros(len(audio), 12),
        }


def batches(pairs: List[tuple], batch_size: int):
    """(true, predicted) pairs -> batches for ReadsLabelFromAudio."""
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        audio = torch.zeros(len(chunk), 8)
        audio[:, 0] = torch.tensor([predicted for _, predicted in chunk], dtype=torch.float32)
        yield audio, {"chord_type": torch.tensor([true for true, _ in chunk])}


def small_model() -> ChordRecognitionModel:
    torch.manual_seed(0)
    return ChordRecognitionModel(
        sample_rate=SR, d_model=8, num_blocks=1, num_heads=1, channels=2, dropout=0.0, context_seconds=CLIP / SR
    )


def loaders(train_size: int = 8, val_size: int = 12):
    train = DataLoader(DummyChordDataset(train_size, num_samples=CLIP, split="train"), batch_size=4)
    val = DataLoader(DummyChordDataset(val_size, num_samples=CLIP, split="val"), batch_size=5)
    return train, val


def val_label_counts(loader) -> np.ndarray:
    labels = torch.cat([targets["chord_type"] for _, targets in loader])
    return np.bincount(labels.numpy(), minlength=NUM_CHORD_TYPES)


# --------------------------------------------------------------------------- learning curves


def test_learning_curves_png(tmp_path):
    path = plot_learning_curves(HISTORY, tmp_path / "deep" / "curves.png")
    assert path == tmp_path / "deep" / "curves.png"
    assert read_png(path).shape[:2] == (450, 1500)


def test_learning_curves_draw_every_curve_over_epochs_from_one():
    loss, acc, lr = learning_curves_figure(HISTORY).axes[:3]
    lines = {line.get_label(): line for ax in (loss, acc, lr) for line in ax.get_lines()}
    for key, values in HISTORY.items():
        assert list(lines[key].get_xdata()) == [1, 2, 3, 4] and list(lines[key].get_ydata()) == values
    assert lines["lowest val_loss (epoch 3)"].get_ydata()[0] == 2.1
    assert lr.get_yscale() == "log" and loss.get_yscale() == "linear"


def test_learning_curves_of_a_run_without_epochs(tmp_path):
    empty = {key: [] for key in HISTORY}
    assert all(not ax.get_lines() for ax in learning_curves_figure(empty).axes[:3])
    assert plot_learning_curves(empty, tmp_path / "empty.png").is_file()


# --------------------------------------------------------------------------- confusion


def test_confusion_over_loader_counts_true_rows_against_predicted_columns():
    pairs = [(1, 1), (1, 1), (1, 2), (2, 2), (0, 31), (31, 0), (5, 5), (5, 7), (1, 1)]
    expected = np.zeros((NUM_CHORD_TYPES, NUM_CHORD_TYPES), dtype=np.int64)
    for true, predicted in pairs:
        expected[true, predicted] += 1
    matrix = confusion_over_loader(ReadsLabelFromAudio(), list(batches(pairs, 4)))
    assert matrix.shape == (32, 32) and np.array_equal(matrix, expected)


def test_normalize_rows():
    shares = normalize_rows(np.array([[3, 1], [0, 0]]))
    assert shares.tolist() == [[0.75, 0.25], [0.0, 0.0]]


def test_chord_type_confusion_rebuilds_the_checkpoint_model(tmp_path):
    """A checkpoint whose chord-type head always answers min7: every item lands in the
    min7 column of its true row."""
    model = small_model()
    min7 = CHORD_TYPE_INDEX["min7"]
    with torch.no_grad():
        model.heads["chord_type"].weight.zero_()
        model.heads["chord_type"].bias.copy_(torch.nn.functional.one_hot(torch.tensor(min7), 32) * 10.0)
    train, val = loaders()
    Trainer(model, train, val, TrainingConfig(device="cpu", checkpoint_dir=str(tmp_path))).save_checkpoint(
        tmp_path / "min7.pt"
    )

    matrix = chord_type_confusion(tmp_path / "min7.pt", val)
    counts = val_label_counts(val)
    assert len(np.nonzero(counts)[0]) > 3  # the labels vary, so rows differ
    assert np.array_equal(matrix[:, min7], counts)
    assert matrix.sum() == counts.sum() == 12


def test_chord_type_confusion_needs_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        chord_type_confusion(tmp_path / "missing.pt", [])


def test_confusion_plot_has_the_class_names_on_both_axes(tmp_path):
    matrix = np.diag(np.arange(1, 33))
    matrix[3, 4] = 7
    figure = confusion_figure(matrix, CHORD_TYPES)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(CHORD_TYPES)
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        f"{name} ({n})" for name, n in zip(CHORD_TYPES, matrix.sum(axis=1))
    ]
    assert np.allclose(ax.get_images()[0].get_array(), normalize_rows(matrix))
    assert {t.get_text() for t in ax.texts} == {"100", "36", "64"}  # row 3: 4 on the diagonal, 7 beside it
    image = read_png(plot_confusion_matrix(matrix, CHORD_TYPES, tmp_path / "confusion.png"))
    assert min(image.shape[:2]) >= 1000  # 32 names stay readable
    with pytest.raises(ValueError, match="does not fit"):
        confusion_figure(np.zeros((3, 3)), CHORD_TYPES)


# --------------------------------------------------------------------------- run folder


def test_write_run_plots_after_a_real_training_run(tmp_path, monkeypatch):
    figures = []
    real_confusion_figure = run_plots.confusion_figure

    def spy(matrix, class_names):
        figures.append((matrix, list(class_names)))
        return real_confusion_figure(matrix, class_names)

    monkeypatch.setattr(run_plots, "confusion_figure", spy)
    train, val = loaders()
    config = TrainingConfig(
        learning_rate=1e-3,
        num_epochs=2,
        warmup_epochs=0,
        scheduler="constant",
        device="cpu",
        checkpoint_dir=str(tmp_path / "checkpoints"),
        save_every=0,
        log_every=0,
        patience=0,
    )
    trainer = Trainer(small_model(), train, val, config)
    history = trainer.train()

    written = write_run_plots(tmp_path, history, tmp_path / "checkpoints" / "best.pt", val)
    assert written == [tmp_path / "plots" / "learning_curves.png", tmp_path / "plots" / "confusion_chord_type.png"]
    for path in written:
        read_png(path)
    ((matrix, names),) = figures
    assert names == list(CHORD_TYPES)
    assert np.array_equal(matrix.sum(axis=1), val_label_counts(val))


def test_write_run_plots_without_checkpoint_skips_the_confusion(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="chordexp.experiment.run_plots"):
        written = write_run_plots(tmp_path, HISTORY, tmp_path / "none.pt", [])
    assert written == [tmp_path / "plots" / "learning_curves.png"]
    assert not (tmp_path / "plots" / "confusion_chord_type.png").exists()
    assert "none.pt" in caplog.text and "skipped" in caplog.text
