"""What an epoch leaves behind besides checkpoints: its row of the history, the one log
line, and the metrics the callbacks (trackers, an Optuna pruner) receive. Plain
functions over the trainer's metrics, so the loop says when and this module says what."""

from __future__ import annotations

import logging
import math
import sys
from typing import Dict, Iterable, List, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.optim import Optimizer
from tqdm import tqdm

from chordexp.training.distributed import DistContext, sum_across
from chordexp.training.metrics import LOSS_KEYS, METRIC_KEYS, TASKS, is_frame_targets, valid_frames
from chordexp.training.monitor import HISTORY_KEYS

logger = logging.getLogger("chordexp.training.trainer")  # the run's epoch lines keep their logger


def history_row(
    train_metrics: Mapping[str, float], val_metrics: Mapping[str, float]
) -> Tuple[Dict[str, float], Dict[str, float]]:
    """The epoch's standard history values (``HISTORY_KEYS``) and the song validator's,
    as ``val_<name>``."""
    row = {
        "train_loss": train_metrics["total_loss"],
        "val_loss": val_metrics["total_loss"],
        **{f"val_{task}_acc": val_metrics[f"{task}_acc"] for task in TASKS},
        "learning_rate": train_metrics["learning_rate"],
    }
    extra = {f"val_{name}": float(value) for name, value in val_metrics.items() if name not in METRIC_KEYS}
    return row, extra


def append_to_history(history: Dict[str, List[float]], row: Mapping[str, float], extra: Mapping[str, float]) -> None:
    """One value per key and epoch; a song metric missing this epoch (or new this epoch)
    is NaN where it has no value."""
    for key, number in row.items():
        history[key].append(float(number))
    epochs = len(history["val_loss"])
    for key in [*extra, *(k for k in history if k not in HISTORY_KEYS and k not in extra)]:
        history.setdefault(key, [math.nan] * (epochs - 1)).append(extra.get(key, math.nan))


def log_epoch(
    epoch: int,
    num_epochs: int,
    train_metrics: Mapping[str, float],
    val_metrics: Mapping[str, float],
    extra: Mapping[str, float],
    seconds: float,
    improved: bool,
) -> None:
    """The epoch's line in the run log."""
    logger.info(
        "epoch %d/%d train_loss %.4f val_loss %.4f acc chord_type %.2f%% root %.2f%% bass_note %.2f%%%s "
        "lr %.3e %.1fs%s",
        epoch,
        num_epochs,
        train_metrics["total_loss"],
        val_metrics["total_loss"],
        val_metrics["chord_type_acc"],
        val_metrics["root_acc"],
        val_metrics["bass_note_acc"],
        "".join(f" {key} {value:.4f}" for key, value in extra.items()),
        train_metrics["learning_rate"],
        seconds,
        " (best)" if improved else "",
    )


def callback_metrics(
    train_metrics: Mapping[str, float], val_metrics: Mapping[str, float], seconds: float
) -> Dict[str, float]:
    """What ``Callback.on_epoch_end`` receives: ``train_<loss>``, ``val_<metric>``, the
    learning rate and the epoch's seconds."""
    metrics = {f"train_{key}": float(train_metrics[key]) for key in LOSS_KEYS}
    metrics.update((f"val_{key}", float(value)) for key, value in val_metrics.items())
    metrics.update(learning_rate=float(train_metrics["learning_rate"]), epoch_seconds=float(seconds))
    return metrics


def batch_weight(
    targets: Mapping[str, Tensor], batch_size: int, device: torch.device, distributed: Optional[DistContext]
) -> Union[int, Tensor]:
    """What a batch's mean losses count for in an epoch average: its size for clip
    targets, its valid frames for frame targets (a device tensor: no sync). Under DDP
    a rank's frame losses are shares of the global batch's mean (the criterion's
    hooks), so each rank counts for the global batch's valid frames / world size."""
    if not is_frame_targets(targets):
        return batch_size
    count = valid_frames(targets).sum().to(torch.float64 if device.type != "mps" else torch.float32)
    if distributed is not None:
        count = sum_across(count) / distributed.world_size
    return count


def log_step(
    epoch: int, num_epochs: int, batch: int, num_batches: int, losses: Mapping[str, Tensor], optimizer: Optimizer
) -> Dict[str, float]:
    """The run log's line for a batch (every ``log_every``); returns what ``Callback.on_step``
    receives: the batch's losses and the learning rate."""
    values = {key: float(losses[key].detach()) for key in LOSS_KEYS}
    values["learning_rate"] = float(optimizer.param_groups[0]["lr"])
    logger.info(
        "epoch %d/%d batch %d/%d loss %.4f lr %.3e",
        epoch,
        num_epochs,
        batch,
        num_batches,
        values["total_loss"],
        values["learning_rate"],
    )
    return values


def progress(loader: Iterable, description: str) -> Iterable:
    """A tqdm bar on an interactive terminal; the plain loader otherwise."""
    if not sys.stderr.isatty():
        return loader
    return tqdm(loader, desc=description, leave=False, dynamic_ncols=True)
