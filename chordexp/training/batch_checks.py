"""Label indices of a batch inside the ranges the heads have.

A dataset whose labels fall outside ``chord_type`` 0..31 or ``root`` / ``bass_note``
0..11 makes ``cross_entropy`` fail with "Target 12 is out of bounds" (on a GPU, a
device-side assert that ends the process) without saying which key or item. The
trainer checks each batch on the CPU, before it moves to the device, so the check costs
microseconds and never waits for a GPU.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from torch import Tensor

from chordexp.chords import NUM_CHORD_TYPES, NUM_PITCH_CLASSES
from chordexp.data.frames import MASK_KEY
from chordexp.errors import ConfigValueError, UserError

#: Classes per target key: the batch format of ``chordexp.training.trainer``.
NUM_CLASSES = {"chord_type": NUM_CHORD_TYPES, "root": NUM_PITCH_CLASSES, "bass_note": NUM_PITCH_CLASSES}


class TargetRangeError(UserError, ValueError):
    """A batch's labels do not fit the heads: the dataset's fault, named by key and item."""


def check_target_ranges(targets: Mapping[str, Tensor], where: str = "a batch from the data loader") -> None:
    """Raise :class:`TargetRangeError` naming the key, the value and its position in the batch for a
    label outside its range; tensors already on an accelerator are left alone.

    Frame targets ``(B, T)`` may carry ``mask`` (True = a real frame): it is not a label,
    and padded frames' labels are never read by the loss or the metrics, so only the
    valid frames are checked (a dataset may pad with any value)."""
    if not isinstance(targets, Mapping):
        return
    mask = targets.get(MASK_KEY)
    if mask is not None and mask.device.type != "cpu":
        mask = None
    for key, classes in NUM_CLASSES.items():
        value = targets.get(key)
        if value is None or value.device.type != "cpu" or value.numel() == 0:
            continue
        bad = (value < 0) | (value >= classes)
        if mask is not None:
            if mask.shape != value.shape:
                raise TargetRangeError(
                    f"{where}: target mask has shape {tuple(mask.shape)} but {key} has "
                    f"{tuple(value.shape)}; a frame mask must match the frame labels"
                )
            bad &= mask.bool()
        if bool(bad.any()):
            position = int(bad.flatten().nonzero()[0])
            at = (
                f"item {position}"
                if value.dim() < 2
                else f"item {position // value.shape[-1]}, frame {position % value.shape[-1]}"
            )
            raise TargetRangeError(
                f"{where}: target {key}={int(value.flatten()[position])} ({at} of the batch) "
                f"is outside 0..{classes - 1}; check the dataset's labels"
            )


def num_batches(loader: Iterable, name: str) -> int:
    """How many batches ``loader`` yields: the epoch's length, which a scheduler and the
    accumulation groups need; ConfigValueError for an unsized or empty loader."""
    try:
        count = len(loader)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigValueError(f"{name} must have a length (a DataLoader over a map-style dataset)") from None
    if count == 0:
        raise ConfigValueError(f"{name} yields no batches")
    return count
