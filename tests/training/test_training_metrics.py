"""MetricsTracker and the metric functions against hand-computed values."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from chordexp.training.metrics import (
    METRIC_KEYS,
    MetricsTracker,
    compute_confusion_matrix,
    compute_per_class_metrics,
    compute_topk_accuracy,
)


def _logits(predicted, num_classes):
    return F.one_hot(torch.tensor(predicted), num_classes).float() * 5.0


def _losses(total, ct=0.0, root=0.0, bass=0.0):
    return {
        "total_loss": torch.tensor(total),
        "chord_type_loss": torch.tensor(ct),
        "root_loss": torch.tensor(root),
        "bass_note_loss": torch.tensor(bass),
    }


def test_tracker_counts_root_and_bass_only_where_there_is_a_chord():
    targets = {
        "chord_type": torch.tensor([0, 1, 2, 0]),
        "root": torch.tensor([5, 3, 4, 7]),
        "bass_note": torch.tensor([0, 3, 4, 1]),
    }
    outputs = {
        "chord_type": _logits([0, 1, 3, 5], 32),
        "root": _logits([5, 3, 0, 7], 12),
        "bass_note": _logits([1, 3, 4, 2], 12),
    }
    tracker = MetricsTracker()
    tracker.update(_losses(1.0), outputs, targets, batch_size=4)
    metrics = tracker.get_metrics()
    assert tuple(metrics) == METRIC_KEYS
    assert metrics["chord_type_acc"] == pytest.approx(50.0)  # 2 of 4
    assert metrics["root_acc"] == pytest.approx(50.0)  # items 1, 2 only (75% over all four)
    assert metrics["bass_note_acc"] == pytest.approx(100.0)  # items 1, 2 only (50% over all four)


def test_tracker_weights_losses_by_batch_size_and_resets():
    tracker = MetricsTracker()
    out2 = {"chord_type": _logits([1, 1], 32), "root": _logits([0, 0], 12), "bass_note": _logits([0, 0], 12)}
    tgt2 = {"chord_type": torch.tensor([1, 2]), "root": torch.tensor([0, 1]), "bass_note": torch.tensor([0, 0])}
    out4 = {k: torch.cat([v, v]) for k, v in out2.items()}
    tgt4 = {k: torch.cat([v, v]) for k, v in tgt2.items()}
    tracker.update(_losses(1.0, 0.5, 0.25, 2.0), out4, tgt4, batch_size=4)
    tracker.update(
        {"total_loss": 4.0, "chord_type_loss": 2.0, "root_loss": 1.0, "bass_note_loss": 0.5}, out2, tgt2, batch_size=2
    )
    m = tracker.get_metrics()
    assert m["total_loss"] == pytest.approx((4 * 1.0 + 2 * 4.0) / 6)
    assert m["chord_type_loss"] == pytest.approx((4 * 0.5 + 2 * 2.0) / 6)
    assert m["bass_note_loss"] == pytest.approx((4 * 2.0 + 2 * 0.5) / 6)
    assert m["chord_type_acc"] == pytest.approx(50.0) and m["bass_note_acc"] == pytest.approx(100.0)
    assert tracker.summary().startswith("loss 2.0000 (chord_type 1.0000 root 0.5000 bass_note 1.5000) | acc")
    assert "chord_type 50.00%" in tracker.summary()
    tracker.reset()
    assert tracker.get_metrics() == {key: 0.0 for key in METRIC_KEYS}


def test_tracker_root_accuracy_is_zero_when_every_item_is_no_chord():
    tracker = MetricsTracker()
    targets = {
        "chord_type": torch.zeros(2, dtype=torch.long),
        "root": torch.zeros(2, dtype=torch.long),
        "bass_note": torch.zeros(2, dtype=torch.long),
    }
    outputs = {"chord_type": _logits([0, 0], 32), "root": _logits([0, 0], 12), "bass_note": _logits([0, 0], 12)}
    tracker.update(_losses(0.1), outputs, targets, 2)
    m = tracker.get_metrics()
    assert m["chord_type_acc"] == 100.0 and m["root_acc"] == 0.0 and m["bass_note_acc"] == 0.0


def test_topk_accuracy():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    targets = torch.tensor([2, 0, 0, 2])
    assert compute_topk_accuracy(logits, targets, k=1) == pytest.approx(25.0)  # item 1
    assert compute_topk_accuracy(logits, targets, k=2) == pytest.approx(50.0)  # + item 0
    assert compute_topk_accuracy(logits, targets, k=3) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="k=4"):
        compute_topk_accuracy(logits, targets, k=4)


def test_confusion_matrix_rows_true_columns_predicted():
    logits = _logits([0, 1, 1, 2, 0], 3)
    targets = torch.tensor([0, 1, 2, 2, 1])
    expected = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 1]])
    confusion = compute_confusion_matrix(logits, targets)
    assert confusion.dtype == torch.long and torch.equal(confusion, expected)
    padded = compute_confusion_matrix(logits, targets, num_classes=4)
    assert padded.shape == (4, 4) and torch.equal(padded[:3, :3], expected) and padded[3].sum() == 0


def test_per_class_precision_recall_f1_support():
    logits = _logits([0, 1, 1, 2, 0, 0], 4)
    targets = torch.tensor([0, 1, 2, 2, 1, 0])
    m = compute_per_class_metrics(logits, targets)
    # class 0: tp 2, predicted 3, true 2; class 1: tp 1, pred 2, true 2; class 2: tp 1, pred 1, true 2;
    # class 3: never true nor predicted -> 0
    assert m["precision"].tolist() == pytest.approx([2 / 3, 1 / 2, 1.0, 0.0])
    assert m["recall"].tolist() == pytest.approx([1.0, 1 / 2, 1 / 2, 0.0])
    assert m["f1"].tolist() == pytest.approx([0.8, 0.5, 2 / 3, 0.0])
    assert m["support"].dtype == torch.long and m["support"].tolist() == [2, 2, 2, 0]


# ----------------------------------------------------------------- frame targets (song mode)
def _frame_batch():
    """(B, T) = (2, 4); item 0 has 3 valid frames, item 1 has 2. Padded labels are garbage."""
    targets = {
        "chord_type": torch.tensor([[0, 1, 2, 31], [3, 0, -1, -1]]),
        "root": torch.tensor([[5, 3, 4, 99], [7, 1, -1, -1]]),
        "bass_note": torch.tensor([[0, 3, 4, 99], [7, 2, -1, -1]]),
        "mask": torch.tensor([[True, True, True, False], [True, True, False, False]]),
    }
    outputs = {
        "chord_type": _logits([[0, 1, 3, 31], [3, 5, 0, 0]], 32),  # right: (0,0) (0,1) (1,0); wrong (0,2) (1,1)
        "root": _logits([[0, 3, 0, 0], [7, 1, 0, 0]], 12),  # chord frames (0,1) (0,2) (1,0): 2 of 3 right
        "bass_note": _logits([[1, 3, 4, 0], [0, 2, 0, 0]], 12),
    }  # chord frames: (0,1) (0,2) right, (1,0) wrong
    return outputs, targets


def test_tracker_frame_accuracies_count_valid_frames_and_apply_the_no_chord_rule():
    outputs, targets = _frame_batch()
    tracker = MetricsTracker()
    tracker.update(_losses(1.0), outputs, targets, batch_size=2)
    m = tracker.get_metrics()
    assert m["chord_type_acc"] == pytest.approx(100 * 3 / 5)  # padded (0,3) is a hit but does not count
    assert m["root_acc"] == pytest.approx(100 * 2 / 3)  # (0,0) is N: its wrong root does not count
    assert m["bass_note_acc"] == pytest.approx(100 * 2 / 3)  # (1,1) is N: its right bass does not count


def test_tracker_weights_frame_losses_by_valid_frames():
    outputs, targets = _frame_batch()  # 5 valid frames
    short = {k: v[:, :1] for k, v in outputs.items()}
    short_targets = {k: v[:, :1] for k, v in targets.items()}  # 2 valid frames, both hits for chord_type
    tracker = MetricsTracker()
    tracker.update(_losses(1.0, 0.5, 0.25, 2.0), outputs, targets, batch_size=2)
    tracker.update(_losses(4.0, 2.0, 1.0, 0.5), short, short_targets, batch_size=2)
    m = tracker.get_metrics()
    assert m["total_loss"] == pytest.approx((5 * 1.0 + 2 * 4.0) / 7)  # by frames, not by batch size ((1+4)/2)
    assert m["root_loss"] == pytest.approx((5 * 0.25 + 2 * 1.0) / 7)
    assert m["chord_type_acc"] == pytest.approx(100 * (3 + 2) / 7)
    # an explicit weight (the trainer's, under DDP) replaces the frame count
    weighted = MetricsTracker()
    weighted.update(_losses(1.0), outputs, targets, batch_size=2, weight=1.0)
    weighted.update(_losses(4.0), short, short_targets, batch_size=2, weight=3.0)
    assert weighted.get_metrics()["total_loss"] == pytest.approx((1.0 + 3 * 4.0) / 4)


def test_tracker_without_a_mask_counts_every_frame_like_flattened_clips():
    outputs, targets = _frame_batch()
    targets = {k: v.clamp(0, 11) for k, v in targets.items() if k != "mask"}  # every frame valid
    frames, clips = MetricsTracker(), MetricsTracker()
    frames.update(_losses(2.0), outputs, targets, batch_size=2)
    clips.update(
        _losses(2.0),
        {k: v.reshape(8, -1) for k, v in outputs.items()},
        {k: v.reshape(8) for k, v in targets.items()},
        batch_size=8,
    )
    assert frames.get_metrics() == pytest.approx(clips.get_metrics())


def test_sum_across_ranks_of_frame_trackers_equals_one_tracker_over_both_batches():
    outputs, targets = _frame_batch()
    halves = [
        ({k: v[r : r + 1] for k, v in outputs.items()}, {k: v[r : r + 1] for k, v in targets.items()}) for r in range(2)
    ]
    losses = [_losses(1.0, 0.5, 0.2, 0.1), _losses(3.0, 1.5, 0.6, 0.3)]
    ranks = [MetricsTracker(), MetricsTracker()]
    packed = []
    for tracker, (out, tgt), loss in zip(ranks, halves, losses):
        tracker.update(loss, out, tgt, batch_size=1)
        tracker.sum_across_ranks(lambda t: packed.append(t.clone()) or t)  # identity: see what each rank sends
    for r, tracker in enumerate(ranks):
        tracker.sum_across_ranks(lambda t, r=r: t + packed[1 - r])  # an all-reduce of the two
    single = MetricsTracker()
    for (out, tgt), loss in zip(halves, losses):
        single.update(loss, out, tgt, batch_size=1)
    for tracker in ranks:
        assert tracker.get_metrics() == pytest.approx(single.get_metrics())
    assert single.get_metrics()["total_loss"] == pytest.approx((3 * 1.0 + 2 * 3.0) / 5)


def test_metric_functions_take_frames_and_a_mask():
    outputs, targets = _frame_batch()
    logits, labels, mask = outputs["chord_type"], targets["chord_type"], targets["mask"]
    assert compute_topk_accuracy(logits, labels, mask=mask) == pytest.approx(60.0)  # 3 of 5 valid frames
    # no mask: all 8 frames, the padded ones now read as N and predicted N at (1,2) (1,3): 6 of 8
    assert compute_topk_accuracy(logits, labels.clamp(0, 31)) == pytest.approx(75.0)
    confusion = compute_confusion_matrix(logits, labels, mask=mask)  # padded -1 labels never read
    assert confusion.sum().item() == 5
    assert (confusion[0, 0], confusion[1, 1], confusion[3, 3], confusion[2, 3], confusion[0, 5]) == (1, 1, 1, 1, 1)
    flat_keep = mask.reshape(-1)
    expected = compute_confusion_matrix(logits.reshape(8, 32)[flat_keep], labels.reshape(8)[flat_keep])
    assert torch.equal(confusion, expected)
    per_class = compute_per_class_metrics(logits, labels, mask=mask)
    assert per_class["support"][[0, 1, 2, 3]].tolist() == [2, 1, 1, 1]
    assert per_class["recall"][[0, 1, 2, 3]].tolist() == pytest.approx([0.5, 1.0, 0.0, 1.0])
    assert per_class["precision"][[0, 3, 5]].tolist() == pytest.approx([1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="mask shape"):
        compute_topk_accuracy(logits, labels, mask=mask[:, :2])
