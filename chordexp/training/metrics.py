"""Epoch metrics (MetricsTracker) and classification metric functions.

Shapes: logits ``(N, C)``, integer targets ``(N,)``. Accuracies are percentages.
Rule for "no chord": root and bass mean nothing where the true ``chord_type`` is N (0),
so their accuracies count only items with a chord, as the loss does.
"""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional, Union

import torch
from torch import Tensor

from chordexp.chords import NO_CHORD

TASKS = ("chord_type", "root", "bass_note")
LOSS_KEYS = ("total_loss", "chord_type_loss", "root_loss", "bass_note_loss")
METRIC_KEYS = LOSS_KEYS + tuple(f"{task}_acc" for task in TASKS)


class MetricsTracker:
    """Accumulates losses and accuracies over batches, on the outputs' device.

    ``update`` launches a few small kernels and never synchronises; ``get_metrics``
    reads everything back at once. Losses are averaged weighted by ``batch_size``.
    Root/bass accuracy is 0.0 when no item had a chord.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._loss_sums: Optional[Tensor] = None  # (4,) sum of loss * batch_size
        self._correct: Optional[Tensor] = None  # (3,) correct predictions per task
        self._counted: Optional[Tensor] = None  # (3,) items that count per task
        self._num_items = 0

    def update(
        self,
        loss_dict: Mapping[str, Union[Tensor, float]],
        outputs: Mapping[str, Tensor],
        targets: Mapping[str, Tensor],
        batch_size: int,
    ) -> None:
        """Add one batch: ``loss_dict`` has the loss keys (batch means), ``outputs``
        the logits and ``targets`` the labels of the three tasks."""
        device = outputs["chord_type"].device
        if self._loss_sums is None:
            self._loss_sums = torch.zeros(len(LOSS_KEYS), device=device)
            self._correct = torch.zeros(len(TASKS), dtype=torch.long, device=device)
            self._counted = torch.zeros(len(TASKS), dtype=torch.long, device=device)
        losses = torch.stack([
            torch.as_tensor(loss_dict[key], device=device).detach().float().reshape(())
            for key in LOSS_KEYS
        ])
        self._loss_sums += losses * batch_size
        has_chord = targets["chord_type"] != NO_CHORD
        hits = [outputs[task].argmax(dim=-1) == targets[task] for task in TASKS]
        self._correct += torch.stack([hits[0].sum(), (hits[1] & has_chord).sum(), (hits[2] & has_chord).sum()])
        num_chords = has_chord.sum()
        self._counted += torch.stack([torch.ones_like(num_chords) * has_chord.numel(), num_chords, num_chords])
        self._num_items += batch_size

    def sum_across_ranks(self, sum_: Callable[[Tensor], Tensor]) -> None:
        """Replace the sums so far by their totals over all ranks (``sum_`` all-reduces a
        tensor in place), so every rank reports the metrics of the whole validation set."""
        if self._loss_sums is None:  # a rank with no items still takes part
            self._loss_sums = torch.zeros(len(LOSS_KEYS))
            self._correct = torch.zeros(len(TASKS), dtype=torch.long)
            self._counted = torch.zeros(len(TASKS), dtype=torch.long)
        packed = torch.cat([self._loss_sums.double(), self._correct.double(), self._counted.double(),
                            torch.tensor([float(self._num_items)], dtype=torch.float64,
                                         device=self._loss_sums.device)])
        packed = sum_(packed)
        n_loss, n_task = len(LOSS_KEYS), len(TASKS)
        self._loss_sums = packed[:n_loss].float()
        self._correct = packed[n_loss:n_loss + n_task].round().long()
        self._counted = packed[n_loss + n_task:n_loss + 2 * n_task].round().long()
        self._num_items = int(packed[-1].item())

    def get_metrics(self) -> Dict[str, float]:
        """Averages so far, keys ``METRIC_KEYS`` (losses, then accuracies in percent)."""
        if self._loss_sums is None or self._num_items == 0:
            return {key: 0.0 for key in METRIC_KEYS}
        values = torch.cat([self._loss_sums.double(), self._correct.double(), self._counted.double()]).tolist()
        losses, correct, counted = values[:4], values[4:7], values[7:]
        metrics = {key: total / self._num_items for key, total in zip(LOSS_KEYS, losses)}
        for task, hit, count in zip(TASKS, correct, counted):
            metrics[f"{task}_acc"] = 100.0 * hit / count if count else 0.0
        return metrics

    def summary(self) -> str:
        """One line for logs, e.g. ``loss 1.2345 (chord_type 0.6 ...) | acc chord_type 50.00% ...``."""
        m = self.get_metrics()
        losses = " ".join(f"{task} {m[f'{task}_loss']:.4f}" for task in TASKS)
        accs = " ".join(f"{task} {m[f'{task}_acc']:.2f}%" for task in TASKS)
        return f"loss {m['total_loss']:.4f} ({losses}) | acc {accs}"


def compute_topk_accuracy(logits: Tensor, targets: Tensor, k: int = 1) -> float:
    """Percentage of items whose target is among the ``k`` highest logits; 0.0 if empty."""
    if logits.dim() != 2 or not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"need logits (N, C) and 1 <= k <= C, got shape {tuple(logits.shape)} and k={k}")
    if targets.numel() == 0:
        return 0.0
    topk = logits.topk(k, dim=-1).indices  # (N, k)
    hits = (topk == targets.reshape(-1, 1)).any(dim=-1)
    return 100.0 * hits.float().mean().item()


def compute_confusion_matrix(logits: Tensor, targets: Tensor, num_classes: Optional[int] = None) -> Tensor:
    """Counts ``(C, C)`` (long): row = true class, column = predicted (argmax) class.

    ``num_classes`` defaults to ``logits.shape[-1]``; it may be larger, never smaller.
    """
    if logits.dim() != 2:
        raise ValueError(f"need logits (N, C), got shape {tuple(logits.shape)}")
    num_classes = logits.shape[-1] if num_classes is None else int(num_classes)
    if num_classes < logits.shape[-1]:
        raise ValueError(f"num_classes={num_classes} is smaller than the {logits.shape[-1]} logit columns")
    predicted = logits.argmax(dim=-1)
    flat = targets.reshape(-1).long() * num_classes + predicted
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def compute_per_class_metrics(
    logits: Tensor, targets: Tensor, num_classes: Optional[int] = None
) -> Dict[str, Tensor]:
    """Per-class ``precision``, ``recall``, ``f1`` (float, 0 where undefined) and
    ``support`` (long, number of true items), each of shape ``(C,)``."""
    confusion = compute_confusion_matrix(logits, targets, num_classes).double()
    true_pos = confusion.diagonal()
    support = confusion.sum(dim=1)
    predicted = confusion.sum(dim=0)
    precision = torch.where(predicted > 0, true_pos / predicted.clamp_min(1), 0.0)
    recall = torch.where(support > 0, true_pos / support.clamp_min(1), 0.0)
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-300), 0.0)
    return {
        "precision": precision.float(),
        "recall": recall.float(),
        "f1": f1.float(),
        "support": support.long(),
    }
