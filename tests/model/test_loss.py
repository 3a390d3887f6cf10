"""ChordRecognitionLoss: weighted sum of three cross-entropies, N masks root and bass."""

import math

import pytest
import torch
from torch.nn import functional as F

from chordexp.model.loss import ChordRecognitionLoss


def logits_and_targets():
    torch.manual_seed(0)
    outputs = {"chord_type": torch.randn(4, 32), "root": torch.randn(4, 12), "bass_note": torch.randn(4, 12)}
    targets = {
        "chord_type": torch.tensor([1, 0, 5, 9]),
        "root": torch.tensor([3, 7, 0, 11]),
        "bass_note": torch.tensor([3, 2, 4, 11]),
    }
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


# ----------------------------------------------------------------- frame targets (song mode)
def frame_case():
    """Batch of 2 sequences of T=5 frames: item 0 has 4 valid frames, item 1 has 2 (rest padding)."""
    torch.manual_seed(1)
    outputs = {"chord_type": torch.randn(2, 5, 32), "root": torch.randn(2, 5, 12), "bass_note": torch.randn(2, 5, 12)}
    targets = {
        "chord_type": torch.tensor([[1, 0, 5, 5, 0], [9, 0, 0, 0, 0]]),
        "root": torch.tensor([[3, 7, 0, 0, 0], [11, 4, 0, 0, 0]]),
        "bass_note": torch.tensor([[3, 2, 4, 4, 0], [11, 1, 0, 0, 0]]),
        "mask": torch.tensor([[True, True, True, True, False], [True, True, False, False, False]]),
    }
    return outputs, targets


def test_frame_loss_equals_cross_entropy_over_the_flattened_valid_frames():
    outputs, targets = frame_case()
    loss = ChordRecognitionLoss(chord_type_weight=2.0, root_weight=0.5, bass_weight=0.25, label_smoothing=0.0)
    result = loss(outputs, targets)
    # valid frames, flattened: (0,0) (0,1) (0,2) (0,3) (1,0) (1,1); N at (0,1) and (1,1)
    valid = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)]
    chord = [(0, 0), (0, 2), (0, 3), (1, 0)]

    def ce(task, frames):
        logits = torch.stack([outputs[task][b, t] for b, t in frames])
        labels = torch.stack([targets[task][b, t] for b, t in frames])
        return F.cross_entropy(logits, labels)

    ct, root, bass = ce("chord_type", valid), ce("root", chord), ce("bass_note", chord)
    assert torch.isclose(result["chord_type_loss"], ct)
    assert torch.isclose(result["root_loss"], root)
    assert torch.isclose(result["bass_note_loss"], bass)
    assert torch.isclose(result["total_loss"], 2.0 * ct + 0.5 * root + 0.25 * bass)
    # frame-weighted: item 0's four frames count twice as much as item 1's two (not a mean of item means)
    per_item = [
        F.cross_entropy(outputs["chord_type"][0, :4], targets["chord_type"][0, :4]),
        F.cross_entropy(outputs["chord_type"][1, :2], targets["chord_type"][1, :2]),
    ]
    assert torch.isclose(result["chord_type_loss"], (4 * per_item[0] + 2 * per_item[1]) / 6)


def test_padded_frames_contribute_nothing_to_the_loss_or_its_gradient():
    outputs, targets = frame_case()
    loss = ChordRecognitionLoss(label_smoothing=0.1)
    reference = loss(outputs, targets)
    padded = ~targets["mask"]
    noisy = {k: v.clone() for k, v in outputs.items()}
    garbage = {k: v.clone() for k, v in targets.items()}
    for task in ("chord_type", "root", "bass_note"):
        noisy[task][padded] = 1e4 * torch.randn(int(padded.sum()), noisy[task].shape[-1])
        garbage[task][padded] = -1  # not even a valid class: never read
    leaves = {k: v.requires_grad_(True) for k, v in noisy.items()}
    result = loss(leaves, garbage)
    for key, value in reference.items():
        assert torch.isclose(result[key], value), key
    result["total_loss"].backward()
    for task, leaf in leaves.items():
        assert leaf.grad[padded].abs().max().item() == 0.0, task
        assert leaf.grad[~padded].abs().max().item() > 0.0, task


def test_frame_loss_without_a_mask_counts_every_frame():
    outputs, targets = frame_case()
    targets.pop("mask")
    loss = ChordRecognitionLoss(label_smoothing=0.0)
    flat_out = {k: v.reshape(10, -1) for k, v in outputs.items()}
    flat_tgt = {k: v.reshape(10) for k, v in targets.items()}
    frames, clips = loss(outputs, targets), loss(flat_out, flat_tgt)  # same numbers as 10 clips
    for key in frames:
        assert torch.isclose(frames[key], clips[key]), key


def test_all_no_chord_sequence_has_zero_root_and_bass_loss():
    outputs, targets = frame_case()
    targets["chord_type"] = torch.zeros(2, 5, dtype=torch.long)
    result = ChordRecognitionLoss()(outputs, targets)
    assert result["root_loss"].item() == 0.0 and result["bass_note_loss"].item() == 0.0
    assert result["total_loss"].item() == pytest.approx(result["chord_type_loss"].item())
    assert result["chord_type_loss"].item() > 0


def test_frame_logits_that_do_not_match_the_labels_are_named():
    outputs, targets = frame_case()
    outputs["root"] = outputs["root"][:, :4]  # T off by one
    with pytest.raises(ValueError, match=r"root: frame logits \(2, 4, 12\)"):
        ChordRecognitionLoss()(outputs, targets)
    outputs, targets = frame_case()
    targets["mask"] = targets["mask"][:, :3]
    with pytest.raises(ValueError, match="mask"):
        ChordRecognitionLoss()(outputs, targets)


def test_count_hooks_make_rank_losses_average_to_the_global_batch_loss():
    """What the trainer's DDP wiring does: two "ranks" with different numbers of valid and
    chord frames; each divides by global count / 2, so their mean (what DDP averages) is
    the loss of the whole batch, for values and gradients alike."""
    outputs, targets = frame_case()
    loss = ChordRecognitionLoss(label_smoothing=0.1)
    whole_leaves = {k: v.clone().requires_grad_(True) for k, v in outputs.items()}
    whole = loss(whole_leaves, targets)
    whole["total_loss"].backward()
    leaves = {k: v.clone().requires_grad_(True) for k, v in outputs.items()}
    valid = targets["mask"]
    chords = valid & (targets["chord_type"] != 0)
    hooked = ChordRecognitionLoss(label_smoothing=0.1)
    hooked.frame_count = lambda count: valid.sum().float() / 2  # rank 0: 4 valid frames, rank 1: 2
    hooked.chord_count = lambda count: chords.sum().float() / 2  # rank 0: 3 chord frames, rank 1: 1
    ranks = [
        hooked({k: v[r : r + 1] for k, v in leaves.items()}, {k: v[r : r + 1] for k, v in targets.items()})
        for r in range(2)
    ]
    for key in whole:
        assert torch.isclose((ranks[0][key] + ranks[1][key]) / 2, whole[key]), key
    ((ranks[0]["total_loss"] + ranks[1]["total_loss"]) / 2).backward()
    for task in leaves:
        torch.testing.assert_close(leaves[task].grad, whole_leaves[task].grad)
