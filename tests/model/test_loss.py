"""ChordRecognitionLoss: weighted sum of three cross-entropies, N masks root and bass."""
import math

import pytest
import torch
from torch.nn import functional as F

from chordexp.model.loss import ChordRecognitionLoss


def logits_and_targets():
    torch.manual_seed(0)
    outputs = {"chord_type": torch.randn(4, 32), "root": torch.randn(4, 12), "bass_note": torch.randn(4, 12)}
    targets = {"chord_type": torch.tensor([1, 0, 5, 9]), "root": torch.tensor([3, 7, 0, 11]),
               "bass_note": torch.tensor([3, 2, 4, 11])}
    return outputs, targets


def test_components_and_weighted_total_match_hand_computation():
    outputs, targets = logits_and_targets()
    loss = ChordRecognitionLoss(chord_type_weight=2.0, root_weight=0.5, bass_weight=0.25, label_smoothing=0.0)
    result = loss(outputs, targets)
    keep = torch.tensor([0, 2, 3])  # item 1 is N: no root or bass
    ct = F.cross_entropy(outputs["chord_type"], targets["chord_type"])
    root = F.cross_entropy(outputs["root"][keep], targets["root"][keep])
    bass = F.cross_entropy(outputs["bass_note"][keep], targets["bass_note"][keep])
    assert torch.isclose(result["chord_type_loss"], ct)
    assert torch.isclose(result["root_loss"], root)
    assert torch.isclose(result["bass_note_loss"], bass)
    assert torch.isclose(result["total_loss"], 2.0 * ct + 0.5 * root + 0.25 * bass)


def test_label_smoothing_of_uniform_logits_is_log_classes():
    loss = ChordRecognitionLoss(label_smoothing=0.1)
    outputs = {"chord_type": torch.zeros(2, 32), "root": torch.zeros(2, 12), "bass_note": torch.zeros(2, 12)}
    targets = {k: torch.tensor([1, 2]) for k in outputs}
    result = loss(outputs, targets)
    assert math.isclose(result["chord_type_loss"].item(), math.log(32), rel_tol=1e-6)
    assert math.isclose(result["root_loss"].item(), math.log(12), rel_tol=1e-6)


def test_all_no_chord_batch_has_zero_root_and_bass_loss():
    outputs, targets = logits_and_targets()
    targets["chord_type"] = torch.zeros(4, dtype=torch.long)
    result = ChordRecognitionLoss()(outputs, targets)
    assert result["root_loss"].item() == 0.0 and result["bass_note_loss"].item() == 0.0
    assert result["total_loss"].item() > 0


def test_bad_label_smoothing_is_rejected():
    with pytest.raises(ValueError, match="label_smoothing"):
        ChordRecognitionLoss(label_smoothing=1.5)
