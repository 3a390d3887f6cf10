"""Multi-task chord loss: chord type, root and bass, each a cross-entropy."""
from __future__ import annotations

from typing import Callable, Dict, Optional

from torch import Tensor, nn
from torch.nn import functional as F

from chordexp.chords import NO_CHORD


class ChordRecognitionLoss(nn.Module):
    """Weighted sum of three cross-entropies with label smoothing.

    Root and bass are undefined for "no chord": where ``chord_type == N`` they are
    left out of the root and bass terms (averaged over the remaining items only; a
    batch of nothing but N gives 0 for both).

    Inputs: ``outputs`` and ``targets`` dicts with keys ``chord_type`` (logits
    ``(B, 32)`` / labels ``(B,)``), ``root`` and ``bass_note`` (``(B, 12)`` / ``(B,)``).
    Returns ``total_loss``, ``chord_type_loss``, ``root_loss``, ``bass_note_loss``.
    """

    def __init__(
        self,
        chord_type_weight: float = 1.0,
        root_weight: float = 1.0,
        bass_weight: float = 0.5,
        label_smoothing: float = 0.1,
    ) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.chord_type_weight = chord_type_weight
        self.root_weight = root_weight
        self.bass_weight = bass_weight
        self.label_smoothing = label_smoothing
        # Maps this process's count of items with a chord to the count the root and bass
        # means divide by. Under DDP the trainer makes it (global count / world size), so
        # the gradients DDP averages are those of the global batch's mean.
        self.chord_count: Optional[Callable[[Tensor], Tensor]] = None

    def _masked_ce(self, logits: Tensor, target: Tensor, has_chord: Tensor) -> Tensor:
        per_item = F.cross_entropy(
            logits.float(), target, label_smoothing=self.label_smoothing, reduction="none"
        )
        weight = has_chord.to(per_item.dtype)
        count = weight.sum() if self.chord_count is None else self.chord_count(weight.sum().detach())
        return (per_item * weight).sum() / count.clamp_min(1.0)

    def forward(self, outputs: Dict[str, Tensor], targets: Dict[str, Tensor]) -> Dict[str, Tensor]:
        has_chord = targets["chord_type"] != NO_CHORD
        chord_type_loss = F.cross_entropy(
            outputs["chord_type"].float(), targets["chord_type"], label_smoothing=self.label_smoothing
        )
        root_loss = self._masked_ce(outputs["root"], targets["root"], has_chord)
        bass_note_loss = self._masked_ce(outputs["bass_note"], targets["bass_note"], has_chord)
        total = (
            self.chord_type_weight * chord_type_loss
            + self.root_weight * root_loss
            + self.bass_weight * bass_note_loss
        )
        return {
            "total_loss": total,
            "chord_type_loss": chord_type_loss,
            "root_loss": root_loss,
            "bass_note_loss": bass_note_loss,
        }
