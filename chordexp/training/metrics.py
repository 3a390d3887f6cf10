"""Epoch metrics (MetricsTracker) and classification metric functions.

Shapes: logits ``(N, C)``, integer targets ``(N,)``. Accuracies are percentages.
Rule for "no chord": root and bass mean nothing where the true ``chord_type`` is N (0),
so their accuracies count only items with a chord, as the loss does.

Song mode: frame logits ``(B, T, C)`` and frame targets ``(B, T)`` with an optional bool
mask ``(B, T)`` (True = a real frame). Every valid frame counts as one item, as if the
valid frames were flattened into ``(N, C)`` / ``(N,)``; padded frames count nowhere.
"""

from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor

from chordexp.chords import NO_CHORD

TASKS = ("chord_type", "root", "bass_note")
LOSS_KEYS = ("total_loss", "chord_type_loss", "root_loss", "bass_note_loss")
METRIC_KEYS = LOSS_KEYS + tuple(f"{task}_acc" for task in TASKS)
MASK_KEY = "mask"  # chordexp.data.frames.MASK_KEY


def is_frame_targets(targets: Mapping[str, Tensor]) -> bool:
    """Whether ``targets`` hold frame labels ``(B, T)`` rather than clip labels ``(B,)``."""
    return targets["chord_type"].dim() >= 2


def valid_frames(targets: Mapping[str, Tensor]) -> Tensor:
    """Bool mask of the items that count, shaped like ``targets["chord_type"]``:
    ``targets["mask"]`` when there is one, else all True."""
    labels = targets["chord_type"]
    mask = targets.get(MASK_KEY)
    if mask is None:
        return torch.ones(labels.shape, dtype=torch.bool, device=labels.device)
    if mask.shape != labels.shape:
        raise ValueError(f"targets['mask'] has shape {tuple(mask.shape)}, the labels {tuple(labels.shape)}")
    return mask.bool()


class MetricsTracker:
    """Accumulates losses and accuracies over batches, on the outputs' device.

    ``update`` launches a few small kernels and never synchronises; ``get_metrics``
    reads everything back at once. Losses are averaged weighted by ``batch_size`` for
    clip targets and by the number of valid frames for frame targets (so an epoch's
    chord-type loss is the mean over all its valid frames, whatever the batches'
    padding), unless ``update`` is given another ``weight``. Accuracies count items, or
    valid frames. Root/bass accuracy is 0.0 when no item had a chord.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._loss_sums: Optional[Tensor] = None  # (4,) sum of loss * weight
        self._weight: Optional[Tensor] = None  # () float64: sum of the weights
        self._correct: Optional[Tensor] = None  # (3,) correct predictions per task
        self._counted: Optional[Tensor] = None  # (3,) items that count per task
        self._num_items = 0

    def update(
        self,
        loss_dict: Mapping[str, Union[Tensor, float]],
        outputs: Mapping[str, Tensor],
        targets: Mapping[str, Tensor],
        batch_size: int,
        weight: Union[Tensor, float, None] = None,
    ) -> None:
        """Add one batch: ``loss_dict`` has the loss keys (batch means), ``outputs``
        the logits and ``targets`` the labels of the three tasks (``(B,)``, or ``(B, T)``
        with an optional ``mask``). ``weight`` is what the batch's losses count for
        (default: ``batch_size``, or the number of valid frames); the trainer sets it
        under DDP, where a rank's loss is a share of the global batch's mean."""
        device = outputs["chord_type"].device
        if self._loss_sums is None:
            self._loss_sums = torch.zeros(len(LOSS_KEYS), device=device)
            self._weight = torch.zeros((), dtype=torch.float64, device=device)
            self._correct = torch.zeros(len(TASKS), dtype=torch.long, device=device)
            self._counted = torch.zeros(len(TASKS), dtype=torch.long, device=device)
        assert self._weight is not None and self._correct is not None and self._counted is not None
        valid = valid_frames(targets)
        if weight is None:
            weight = valid.sum() if is_frame_targets(targets) else batch_size
        losses = torch.stack(
            [torch.as_tensor(loss_dict[key], device=device).detach().float().reshape(()) for key in LOSS_KEYS]
        )
        self._loss_sums += losses * weight
        self._weight += weight
        has_chord = valid & (targets["chord_type"] != NO_CHORD)
        hits = [outputs[task].argmax(dim=-1) == targets[task] for task in TASKS]
        self._correct += torch.stack(
            [(hits[0] & valid).sum(), (hits[1] & has_chord).sum(), (hits[2] & has_chord).sum()]
        )
        num_chords = has_chord.sum()
        self._counted += torch.stack([valid.sum(), num_chords, num_chords])
        self._num_items += batch_size

    def sum_across_ranks(self, sum_: Callable[[Tensor], Tensor]) -> None:
        """Replace the sums so far by their totals over all ranks (``sum_`` all-reduces a
        tensor in place), so every rank reports the metrics of the whole validation set."""
        if self._loss_sums is None:  # a rank with no items still takes part
            self._loss_sums = torch.zeros(len(LOSS_KEYS))
            self._weight = torch.zeros((), dtype=torch.float64)
            self._correct = torch.zeros(len(TASKS), dtype=torch.long)
            self._counted = torch.zeros(len(TASKS), dtype=torch.long)
        assert self._weight is not None and self._correct is not None and self._counted is not None
        device = self._loss_sums.device
        packed = torch.cat(
            [
                self._loss_sums.double(),
                self._correct.double(),
                self._counted.double(),
                self._weight.double().reshape(1).to(device),
                torch.tensor([float(self._num_items)], dtype=torch.float64, device=device),
            ]
        )
        packed = sum_(packed)
        n_loss, n_task = len(LOSS_KEYS), len(TASKS)
        self._loss_sums = packed[:n_loss].float()
        self._correct = packed[n_loss : n_loss + n_task].round().long()
        self._counted = packed[n_loss + n_task : n_loss + 2 * n_task].round().long()
        self._weight = packed[-2].clone()
        self._num_items = int(packed[-1].item())

    def get_metrics(self) -> Dict[str, float]:
        """Averages so far, keys ``METRIC_KEYS`` (losses, then accuracies in percent)."""
        if self._loss_sums is None or self._num_items == 0:
            return {key: 0.0 for key in METRIC_KEYS}
        assert self._weight is not None and self._correct is not None and self._counted is not None
        values = torch.cat(
            [self._loss_sums.double(), self._correct.double(), self._counted.double(), self._weight.double().reshape(1)]
        ).tolist()
        losses, correct, counted, weight = values[:4], values[4:7], values[7:10], values[10]
        metrics = {key: total / weight if weight else 0.0 for key, total in zip(LOSS_KEYS, losses)}
        for task, hit, count in zip(TASKS, correct, counted):
            metrics[f"{task}_acc"] = 100.0 * hit / count if count else 0.0
        return metrics

    def summary(self) -> str:
        """One line for logs, e.g. ``loss 1.2345 (chord_type 0.6 ...) | acc chord_type 50.00% ...``."""
        m = self.get_metrics()
        losses = " ".join(f"{task} {m[f'{task}_loss']:.4f}" for task in TASKS)
        accs = " ".join(f"{task} {m[f'{task}_acc']:.2f}%" for task in TASKS)
        return f"loss {m['total_loss']:.4f} ({losses}) | acc {accs}"


def _flatten(logits: Tensor, targets: Tensor, mask: Optional[Tensor], name: str) -> Tuple[Tensor, Tensor]:
    """``(N, C)`` / ``(N,)`` from clip or frame inputs, keeping only ``mask``'s True items."""
    if logits.dim() not in (2, 3) or targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"{name}: need logits (N, C) or (B, T, C) with targets of their leading shape, got "
            f"{tuple(logits.shape)} and {tuple(targets.shape)}"
        )
    flat_logits, flat_targets = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    if mask is None:
        return flat_logits, flat_targets
    if mask.shape != targets.shape:
        raise ValueError(f"{name}: mask shape {tuple(mask.shape)} differs from the targets' {tuple(targets.shape)}")
    keep = mask.reshape(-1).bool()
    return flat_logits[keep], flat_targets[keep]


def compute_topk_accuracy(logits: Tensor, targets: Tensor, k: int = 1, *, mask: Optional[Tensor] = None) -> float:
    """Percentage of items whose target is among the ``k`` highest logits; 0.0 if empty.
    Frame inputs ``(B, T, C)`` / ``(B, T)`` count each frame where ``mask`` is True."""
    if logits.dim() not in (2, 3) or not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"need logits (N, C) or (B, T, C) and 1 <= k <= C, got shape {tuple(logits.shape)} and k={k}")
    logits, targets = _flatten(logits, targets, mask, "compute_topk_accuracy")
    if targets.numel() == 0:
        return 0.0
    topk = logits.topk(k, dim=-1).indices  # (N, k)
    hits = (topk == targets.reshape(-1, 1)).any(dim=-1)
    return 100.0 * hits.float().mean().item()


def compute_confusion_matrix(
    logits: Tensor, targets: Tensor, num_classes: Optional[int] = None, *, mask: Optional[Tensor] = None
) -> Tensor:
    """Counts ``(C, C)`` (long): row = true class, column = predicted (argmax) class.

    ``num_classes`` defaults to ``logits.shape[-1]``; it may be larger, never smaller.
    Frame inputs ``(B, T, C)`` / ``(B, T)`` count each frame where ``mask`` is True.
    """
    if logits.dim() not in (2, 3):
        raise ValueError(f"need logits (N, C) or (B, T, C), got shape {tuple(logits.shape)}")
    num_classes = logits.shape[-1] if num_classes is None else int(num_classes)
    if num_classes < logits.shape[-1]:
        raise ValueError(f"num_classes={num_classes} is smaller than the {logits.shape[-1]} logit columns")
    logits, targets = _flatten(logits, targets, mask, "compute_confusion_matrix")
    predicted = logits.argmax(dim=-1)
    flat = targets.reshape(-1).long() * num_classes + predicted
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def compute_per_class_metrics(
    logits: Tensor, targets: Tensor, num_classes: Optional[int] = None, *, mask: Optional[Tensor] = None
) -> Dict[str, Tensor]:
    """Per-class ``precision``, ``recall``, ``f1`` (float, 0 where undefined) and
    ``support`` (long, number of true items), each of shape ``(C,)``. Frame inputs
    count each frame where ``mask`` is True."""
    confusion = compute_confusion_matrix(logits, targets, num_classes, mask=mask).double()
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
