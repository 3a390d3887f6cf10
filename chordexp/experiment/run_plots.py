"""Per-run PNG plots: learning curves from the history, and the chord-type confusion
matrix of a checkpoint on the validation loader.

``write_run_plots(folder, history, checkpoint, val_loader)`` writes
``<folder>/plots/learning_curves.png`` and ``<folder>/plots/confusion_chord_type.png``.
Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no display), so this
works in sweeps, on servers and in worker processes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Sequence, Union

import numpy as np
import torch

from chordexp.chords import CHORD_TYPES, NUM_CHORD_TYPES
from chordexp.inference import ChordRecognizer
from chordexp.training.metrics import compute_confusion_matrix

logger = logging.getLogger(__name__)

Device = Union[str, Any]  # a name or a torch.device

LOSS_CURVES = ("train_loss", "val_loss")
ACCURACY_CURVES = ("val_chord_type_acc", "val_root_acc", "val_bass_note_acc")
#: Cells at or above this row share get their percentage written in the confusion plot.
ANNOTATE_FROM = 0.05


def _figure(width: float, height: float):
    """A Figure on an explicit Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="tight")  # one layout pass; "constrained" costs several draws
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    return path


# --------------------------------------------------------------------------- learning curves


def plot_learning_curves(history: Mapping[str, Sequence[float]], path: Path) -> Path:
    """:func:`learning_curves_figure` as a PNG at ``path``; returns ``path``."""
    return _save(learning_curves_figure(history), path)


def learning_curves_figure(history: Mapping[str, Sequence[float]]):
    """Three panels over epochs 1..N: train/val loss (the lowest val_loss marked), the
    three validation accuracies (percent) and the learning rate on a log axis.

    Curves missing from ``history`` are left out; an empty history gives empty panels.
    """
    from matplotlib.ticker import MaxNLocator

    figure = _figure(15, 4.5)
    loss_ax, acc_ax, lr_ax = figure.subplots(1, 3)

    def draw(ax, names: Iterable[str]) -> None:
        for name in names:
            values = list(history.get(name) or [])
            if values:
                ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=name)

    draw(loss_ax, LOSS_CURVES)
    val_loss = list(history.get("val_loss") or [])
    if val_loss and np.isfinite(val_loss).any():
        best = int(np.nanargmin(np.where(np.isfinite(val_loss), val_loss, np.nan)))
        loss_ax.plot(
            [best + 1],
            [val_loss[best]],
            marker="*",
            markersize=12,
            linestyle="none",
            color="black",
            label=f"lowest val_loss (epoch {best + 1})",
        )
    loss_ax.set_title("loss")
    draw(acc_ax, ACCURACY_CURVES)
    acc_ax.set_title("validation accuracy (%)")
    acc_ax.set_ylim(0, 100)
    draw(lr_ax, ("learning_rate",))
    learning_rate = np.asarray(history.get("learning_rate") or [], dtype=float)
    if learning_rate.size and (learning_rate > 0).all():
        lr_ax.set_yscale("log")  # warmup and decay span decades
    lr_ax.set_title("learning rate")

    for ax in (loss_ax, acc_ax, lr_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="best")
    return figure


# --------------------------------------------------------------------------- confusion matrix


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the share of a true class given to each prediction);
    rows without items stay 0."""
    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: Path) -> Path:
    """:func:`confusion_figure` as a PNG at ``path``; returns ``path``."""
    return _save(confusion_figure(matrix, class_names), path)


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str]):
    """Row-normalised confusion (rows: true class with its item count, columns: predicted),
    class names on both axes, shares of at least 5 % written in their cells; readable at
    32 classes. The title gives the overall accuracy and the number of items."""
    counts = np.asarray(matrix)
    size = len(class_names)
    if counts.shape != (size, size):
        raise ValueError(f"confusion matrix of shape {counts.shape} does not fit {size} class names")
    shares = normalize_rows(counts)
    support = counts.sum(axis=1)
    total = int(counts.sum())

    side = max(6.0, 0.36 * size + 2.5)
    figure = _figure(side + 1.5, side)
    ax = figure.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="share of the true class")
    ticks = np.arange(size)
    ax.set_xticks(ticks, [str(name) for name in class_names], rotation=90, fontsize=8)
    ax.set_yticks(ticks, [f"{name} ({int(n)})" for name, n in zip(class_names, support)], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (items)")
    for row, col in zip(*np.nonzero(shares >= ANNOTATE_FROM)):
        share = shares[row, col]
        ax.text(
            col,
            row,
            f"{100 * share:.0f}",
            ha="center",
            va="center",
            fontsize=7,
            color="white" if share > 0.6 else "black",
        )
    accuracy = 100.0 * np.trace(counts) / total if total else 0.0
    ax.set_title(f"confusion, row-normalised (%): accuracy {accuracy:.1f} % over {total} items")
    return figure


def confusion_over_loader(
    model: Any, loader: Iterable, num_classes: int = NUM_CHORD_TYPES, device: Device = "cpu"
) -> np.ndarray:
    """Counts ``(C, C)`` of true ``chord_type`` (rows) against the model's argmax
    (columns) over every batch of ``loader``; the model runs in eval mode."""
    total = torch.zeros(num_classes, num_classes, dtype=torch.long)
    model.eval()
    with torch.no_grad():
        for audio, targets in loader:
            logits = model(audio.to(device))["chord_type"]
            mask = targets.get("mask")  # frame targets: padded frames count nowhere
            total += compute_confusion_matrix(
                logits.float().cpu(),
                targets["chord_type"].cpu(),
                num_classes,
                mask=None if mask is None else mask.cpu(),
            )
    return total.numpy()


def chord_type_confusion(checkpoint: Path, loader: Iterable, device: Device = "cpu") -> np.ndarray:
    """The 32 x 32 chord-type confusion counts of ``checkpoint``'s model over ``loader``.

    The model is rebuilt from the checkpoint's ``model_hparams`` as ``chordexp.predict``
    does; raises CheckpointError for a missing or unusable checkpoint.
    """
    model = ChordRecognizer.from_checkpoint(checkpoint, device=device).model
    return confusion_over_loader(model, loader, NUM_CHORD_TYPES, device)


# --------------------------------------------------------------------------- run folder


def write_run_plots(
    folder: Path, history: Mapping[str, Sequence[float]], checkpoint: Path, val_loader: Iterable, device: Device = "cpu"
) -> List[Path]:
    """``<folder>/plots/learning_curves.png`` and, when ``checkpoint`` exists,
    ``<folder>/plots/confusion_chord_type.png`` (else a warning); returns the paths written."""
    plots = Path(folder) / "plots"
    written = [plot_learning_curves(history, plots / "learning_curves.png")]
    checkpoint = Path(checkpoint)
    if checkpoint.is_file():
        matrix = chord_type_confusion(checkpoint, val_loader, device)
        written.append(plot_confusion_matrix(matrix, CHORD_TYPES, plots / "confusion_chord_type.png"))
    else:
        logger.warning("no checkpoint at %s: the chord-type confusion plot is skipped", checkpoint)
    return written
