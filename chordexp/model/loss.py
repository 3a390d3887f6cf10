"""Multi-task chord loss: chord type, root and bass, each a cross-entropy."""

from __future__ import annotations

import copy
from typing import Callable, Dict, Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from chordexp.chords import NO_CHORD
from chordexp.config import LABEL_SMOOTHING, check_setting

MASK_KEY = "mask"  # chordexp.data.frames.MASK_KEY: True = a real frame


class ChordRecognitionLoss(nn.Module):
    """Weighted sum of three cross-entropies with label smoothing.

    Root and bass are undefined for "no chord": where ``chord_type == N`` they are
    left out of the root and bass terms (averaged over the remaining items only; a
    batch of nothing but N gives 0 for both).

    Inputs: ``outputs`` and ``targets`` dicts with keys ``chord_type`` (logits
    ``(B, 32)`` / labels ``(B,)``), ``root`` and ``bass_note`` (``(B, 12)`` / ``(B,)``).
    Returns ``total_loss``, ``chord_type_loss``, ``root_loss``, ``bass_note_loss``.

    Song mode: frame logits ``(B, T, C)`` with frame labels ``(B, T)`` and an optional
    ``targets["mask"]`` ``(B, T)`` (True = a real frame). Every frame counts once, as if
    the valid frames of the batch were one flat batch: chord type is the mean over valid
    frames, root and bass the mean over valid frames whose chord type is not N. Padded
    frames contribute nothing (their labels are not even read).
    """

    def __init__(
        self,
        chord_type_weight: float = 1.0,
        root_weight: float = 1.0,
        bass_weight: float = 0.5,
        label_smoothing: float = LABEL_SMOOTHING,
        *,
        chord_count: Optional[Callable[[Tensor], Tensor]] = None,
        frame_count: Optional[Callable[[Tensor], Tensor]] = None,
    ) -> None:
        super().__init__()
        check_setting("label_smoothing", label_smoothing)
        self.chord_type_weight = chord_type_weight
        self.root_weight = root_weight
        self.bass_weight = bass_weight
        self.label_smoothing = label_smoothing
        # Map this process's count (items/frames with a chord; valid frames) to the count
        # a mean divides by (None: the count itself). Under DDP both are (global count /
        # world size: chordexp.training.distributed.global_mean_count), given when the loss
        # is built, so the gradients DDP averages are those of the global batch's mean,
        # even when ranks hold different numbers of chords or valid frames. frame_count is
        # used by frame targets only: a clip batch's chord-type mean needs none (equal shards).
        self.chord_count = chord_count
        self.frame_count = frame_count

    def with_counts(self, count: Callable[[Tensor], Tensor]) -> "ChordRecognitionLoss":
        """A copy of this loss whose means divide by ``count(this process's count)`` (both
        counts): how a loss built without them joins a DDP run. This loss is unchanged."""
        counted = copy.copy(self)
        counted.chord_count = counted.frame_count = count
        return counted

    def _masked_ce(
        self, logits: Tensor, target: Tensor, has_chord: Tensor, count_hook: Optional[Callable[[Tensor], Tensor]] = None
    ) -> Tensor:
        per_item = F.cross_entropy(logits.float(), target, label_smoothing=self.label_smoothing, reduction="none")
        weight = has_chord.to(per_item.dtype)
        count = weight.sum() if count_hook is None else count_hook(weight.sum().detach())
        return (per_item * weight).sum() / count.clamp_min(1.0)

    def forward(self, outputs: Dict[str, Tensor], targets: Dict[str, Tensor]) -> Dict[str, Tensor]:
        if targets["chord_type"].dim() >= 2:
            return self._frame_losses(outputs, targets)
        has_chord = targets["chord_type"] != NO_CHORD
        chord_type_loss = F.cross_entropy(
            outputs["chord_type"].float(), targets["chord_type"], label_smoothing=self.label_smoothing
        )
        root_loss = self._masked_ce(outputs["root"], targets["root"], has_chord, self.chord_count)
        bass_note_loss = self._masked_ce(outputs["bass_note"], targets["bass_note"], has_chord, self.chord_count)
        return self._combine(chord_type_loss, root_loss, bass_note_loss)

    def _frame_losses(self, outputs: Dict[str, Tensor], targets: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Frame targets ``(B, T)``: flatten to ``(B*T,)`` and weight each frame 0 or 1."""
        shape = targets["chord_type"].shape
        valid = frame_mask(targets).reshape(-1)
        flat: Dict[str, Tensor] = {}
        for task in ("chord_type", "root", "bass_note"):
            logits, labels = outputs[task], targets[task]
            if logits.shape[:-1] != shape or labels.shape != shape:
                raise ValueError(
                    f"{task}: frame logits {tuple(logits.shape)} and labels {tuple(labels.shape)} do "
                    f"not match the targets' (B, T) = {tuple(shape)}"
                )
            # padded frames may hold any label (even -1): they are read as class 0 and weighted 0
            flat[task] = torch.where(valid, labels.reshape(-1), torch.zeros_like(labels.reshape(-1)))
        has_chord = valid & (flat["chord_type"] != NO_CHORD)
        chord_type_loss = self._masked_ce(
            outputs["chord_type"].reshape(valid.numel(), -1), flat["chord_type"], valid, self.frame_count
        )
        root_loss = self._masked_ce(
            outputs["root"].reshape(valid.numel(), -1), flat["root"], has_chord, self.chord_count
        )
        bass_note_loss = self._masked_ce(
            outputs["bass_note"].reshape(valid.numel(), -1), flat["bass_note"], has_chord, self.chord_count
        )
        return self._combine(chord_type_loss, root_loss, bass_note_loss)

    def _combine(self, chord_type_loss: Tensor, root_loss: Tensor, bass_note_loss: Tensor) -> Dict[str, Tensor]:
        total = (
            self.chord_type_weight * chord_type_loss + self.root_weight * root_loss + self.bass_weight * bass_note_loss
        )
        return {
            "total_loss": total,
            "chord_type_loss": chord_type_loss,
            "root_loss": root_loss,
            "bass_note_loss": bass_note_loss,
        }


def frame_mask(targets: Dict[str, Tensor]) -> Tensor:
    """The bool ``(B, T)`` mask of frame targets: ``targets["mask"]``, or all True."""
    shape = targets["chord_type"].shape
    mask = targets.get(MASK_KEY)
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=targets["chord_type"].device)
    if mask.shape != shape:
        raise ValueError(f"targets['mask'] has shape {tuple(mask.shape)}, the frame labels {tuple(shape)}")
    return mask.bool()
