"""The training engine: epochs of forward/backward/step, validation, checkpoints and
history. Its parts, one job each: ``monitor.py`` (the monitored metric, best epoch, early
stopping), ``epoch_report.py`` (a batch's weight in the epoch averages, the step and epoch
log lines, the history row and callback metrics), ``step_policy.py`` (mixed precision,
clipping, non-finite losses), ``checkpoint.py`` (the training state saved and restored,
an epoch's checkpoint files), ``song_metrics.py`` (the song validator, shared across DDP
ranks), ``distributed.py`` (the DDP-wrapped, compiled training module; the criterion),
``batch_checks.py`` (label ranges, the loaders' lengths).

Batches are ``(audio, targets)``: audio float ``(B, num_samples)``, targets a dict of
long ``(B,)`` tensors ``chord_type`` (32 classes, 0 = N), ``root`` and ``bass_note``
(12 each). The model maps audio to a dict of logits ``(B, num_classes)`` with the same
keys; the criterion maps ``(outputs, targets)`` to the four loss keys.

Song mode: targets ``(B, T)`` per key plus a bool ``mask`` ``(B, T)`` (True = a real
frame; ``chordexp.data.frames``) and logits ``(B, T, num_classes)``. Losses and
accuracies are then means over valid frames, and epoch averages weight each batch by its
number of valid frames.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from chordexp.config import ADAMW_FUSED, MONITORS, TrainingConfig, check_training_config, monitor_direction  # noqa: F401  (re-exported)
from chordexp.device import resolve_device
from chordexp.errors import TrainingInterrupted
from chordexp.training.batch_checks import check_target_ranges, num_batches
from chordexp.training.callbacks import Callback
from chordexp.training.checkpoint import (
    atomic_write_bytes,
    restore_training_state,
    serialize,
    training_state,
    write_epoch_checkpoints,
)
from chordexp.training.distributed import DistContext, any_across, sum_across, training_criterion, training_modules
from chordexp.training.epoch_report import (
    append_to_history,
    batch_weight,
    callback_metrics,
    history_row,
    log_epoch,
    log_step,
    progress,
)
from chordexp.training.metrics import LOSS_KEYS, MetricsTracker
from chordexp.training.monitor import HISTORY_KEYS, Monitor
from chordexp.training.schedulers import create_scheduler
from chordexp.training.song_metrics import SongValidator, song_metrics
from chordexp.training.step_policy import MIN_LOSS_SCALE, NonFiniteLossError, StepPolicy  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]


def _part_attribute(part: str, name: str) -> Any:
    """A Trainer attribute that one of its parts keeps (``self.<part>.<name>``), read and set
    as a plain attribute of the Trainer."""
    return property(
        lambda self: getattr(getattr(self, part), name),
        lambda self, value: setattr(getattr(self, part), name, value),
        doc=f"``{part}.{name}``",
    )


class Trainer:
    """Trains ``model`` on ``train_loader``, validating on ``val_loader`` after every epoch.

    ``optimizer_factory`` maps the model's parameters to an optimizer (default:
    AdamW(lr=config.learning_rate, weight_decay=config.weight_decay)); the criterion
    defaults to ``ChordRecognitionLoss(label_smoothing=config.label_smoothing)``.
    Under DDP a ChordRecognitionLoss divides by the global batch's counts: build it with
    ``chord_count``/``frame_count`` (``chordexp.training.distributed.global_mean_count``);
    one built without them is replaced by a copy that has them (``with_counts``), so the
    numbers are those of the global batch either way. Other criteria are used as given.

    State for run summaries: ``history``, ``current_epoch`` (completed epochs),
    ``best_val_loss``, ``best_epoch`` (0 = none yet), ``stopped_early``,
    ``last_val_metrics``, ``last_train_metrics``; ``skipped_steps`` and
    ``scaler_skipped_steps`` (``StepPolicy``). ``checkpoint_extra`` (plain data, e.g. the
    run's config) is saved in every checkpoint under ``extra``.

    ``song_validator(model) -> {name: value}`` runs after each loader validation (on
    rank 0 under DDP, its values broadcast to every rank); its metrics join the
    validation metrics under their own names, the history and the epoch callbacks as
    ``val_<name>`` and the epoch log line.

    ``config.monitor`` (default ``val_loss``) is the validation history key that
    ``best.pt``, early stopping (``patience``, ``min_delta``), ``best_epoch`` and
    ``best_monitor_value`` follow, minimised or maximised per ``config.monitor_mode``
    (``Monitor``). ``best_val_loss`` always means the best validation loss: with the
    default monitor the loss of ``best_epoch``; with another monitor the lowest val_loss
    of any epoch, which need not be ``best_epoch``'s.

    Seeding is the caller's job (seed before building the model and loaders); the
    trainer never reseeds. ``config.deterministic`` switches on
    ``torch.use_deterministic_algorithms`` for the process.
    """

    def __init__(
        self,
        model: nn.Module,
        train_loader: Iterable[Any],  # a DataLoader, or any sized iterable of (audio, targets) batches
        val_loader: Iterable[Any],
        config: Optional[TrainingConfig] = None,
        criterion: Optional[nn.Module] = None,
        *,
        optimizer_factory: Optional[OptimizerFactory] = None,
        callbacks: Sequence[Callback] = (),
        distributed: Optional[DistContext] = None,
        song_validator: Optional[SongValidator] = None,
    ) -> None:
        self.config = config if config is not None else TrainingConfig()
        check_training_config(self.config)
        self.song_validator = song_validator
        self.monitoring = Monitor(self.config, song_metrics=song_validator is not None)
        self.device = resolve_device(self.config.device)
        if self.config.deterministic:
            torch.use_deterministic_algorithms(True)
        self.distributed = distributed
        self.is_main = distributed is None or distributed.is_main
        # train_model is what train_epoch calls: the DDP wrapper under torchrun, compiled if asked
        self.model, self.train_model = training_modules(model, self.device, distributed, self.config.compile)
        self.train_loader, self.val_loader = train_loader, val_loader
        self.steps_per_epoch = num_batches(train_loader, "train_loader")
        num_batches(val_loader, "val_loader")
        self.criterion = training_criterion(criterion, self.config.label_smoothing, distributed, self.device)
        if optimizer_factory is None:
            self.optimizer: Optimizer = torch.optim.AdamW(
                self.model.parameters(),
                lr=self.config.learning_rate,
                weight_decay=self.config.weight_decay,
                fused=ADAMW_FUSED,
            )
        else:
            self.optimizer = optimizer_factory(self.model.parameters())
        self.scheduler, self.scheduler_per_batch = create_scheduler(self.optimizer, self.config, self.steps_per_epoch)
        self.checkpoint_dir = Path(self.config.checkpoint_dir)
        self.step_policy = StepPolicy(
            self.config, self.model, self.optimizer, self.device, distributed, self.checkpoint_dir
        )
        self.checkpoint_extra: Dict[str, Any] = {}
        self.callbacks: List[Callback] = list(callbacks)
        self.stop_reason: Optional[str] = None

        self.history: Dict[str, List[float]] = {key: [] for key in HISTORY_KEYS}
        self.current_epoch = 0
        self.stopped_early = False
        self.last_train_metrics: Dict[str, float] = {}
        self.last_val_metrics: Dict[str, float] = {}

    # state its parts keep, read (and set) here as before
    monitor = _part_attribute("monitoring", "name")
    monitor_mode = _part_attribute("monitoring", "mode")
    best_monitor_value = _part_attribute("monitoring", "best_value")
    best_epoch = _part_attribute("monitoring", "best_epoch")
    best_val_loss = _part_attribute("monitoring", "best_val_loss")
    epochs_without_improvement = _part_attribute("monitoring", "epochs_without_improvement")
    scaler = _part_attribute("step_policy", "scaler")
    skipped_steps = _part_attribute("step_policy", "skipped_steps")
    scaler_skipped_steps = _part_attribute("step_policy", "scaler_skipped_steps")

    # ------------------------------------------------------------------ training
    def train(self) -> Dict[str, List[float]]:
        """Train from ``current_epoch`` to ``config.num_epochs`` (or until early
        stopping), validating, checkpointing and logging after every epoch."""
        num_epochs = self.config.num_epochs
        if self.current_epoch >= num_epochs:
            logger.info("already trained %d of %d epochs; nothing to do", self.current_epoch, num_epochs)
        self.stopped_early = False
        for callback in self.callbacks:
            callback.on_train_start(self)
        try:
            while self.current_epoch < num_epochs:
                start = time.perf_counter()
                train_metrics = self.train_epoch()
                val_metrics = self.validate()
                self._end_epoch(train_metrics, val_metrics, time.perf_counter() - start)
                if self.stop_reason is not None and self.current_epoch < num_epochs:
                    raise TrainingInterrupted(
                        f"{self.stop_reason} after epoch {self.current_epoch}, "
                        f"saved in {self.checkpoint_dir / 'last.pt'}",
                        self.stop_reason,
                    )
                if self.stopped_early:  # patience ran out, or a callback (an Optuna pruner) ended the run
                    logger.info("%s", self.monitoring.stop_line(self.current_epoch))
                    break
        finally:
            for callback in self.callbacks:
                callback.on_train_end(self)
        return self.history

    def train_epoch(self) -> Dict[str, float]:
        """One pass over ``train_loader``; advances ``current_epoch``.

        Returns the loss keys (averaged weighted by batch size, or by valid frames for
        frame targets) and ``learning_rate``, the rate of the epoch's first optimizer step
        (constant over the epoch except for per-batch schedulers such as onecycle). A
        batch group whose step ``on_nonfinite='skip'`` drops (``StepPolicy``) is left out
        of the averages; one the fp16 GradScaler skips for overflowing gradients is not.
        """
        cfg, epoch, num_batches = self.config, self.current_epoch + 1, self.steps_per_epoch
        accum, steps = cfg.grad_accum_steps, self.step_policy
        learning_rate = self.optimizer.param_groups[0]["lr"]
        loss_sums = torch.zeros(len(LOSS_KEYS), device=self.device)  # sum of loss * batch weight
        group_sums = torch.zeros_like(loss_sums)  # the current accumulation group's share
        num_items: Union[int, Tensor] = 0  # batch sizes, or (device tensors of) valid frames
        group_items: Union[int, Tensor] = 0
        self.model.train()
        steps.start_epoch()
        for i, (audio, targets) in enumerate(progress(self.train_loader, f"epoch {epoch}/{cfg.num_epochs}")):
            audio, targets = self._to_device(audio, targets)
            weight = batch_weight(targets, audio.shape[0], self.device, self.distributed)
            steps_now = (i + 1) % accum == 0 or i + 1 == num_batches
            with self._grad_sync(steps_now):
                # forward: (B, num_samples) -> {task: (B, C)}, then the loss and its backward
                with steps.autocast():
                    outputs = self.train_model(audio)
                    losses = self.criterion(outputs, targets)
                steps.backward(losses["total_loss"], group_size=min(accum, num_batches - (i // accum) * accum))
            group_sums += torch.stack([losses[key].detach().float() for key in LOSS_KEYS]) * weight
            group_items = group_items + weight
            if steps_now:
                if steps.step(group_sums, epoch, i + 1):  # a skipped step's group counts nowhere
                    loss_sums += group_sums
                    num_items += group_items
                group_items = 0
                group_sums.zero_()
                if self.scheduler_per_batch:
                    steps.step_scheduler(self.scheduler)
            if cfg.log_every > 0 and (i + 1) % cfg.log_every == 0:
                steps.check_finite(epoch)
                self._log_step(epoch, i + 1, losses)
            if self._stop_agreed():
                raise TrainingInterrupted(
                    f"{self.stop_reason} during epoch {epoch} (batch {i + 1}/{num_batches}): the partial epoch is "
                    f"dropped; {self.checkpoint_dir / 'last.pt'} holds epoch {self.current_epoch}",
                    self.stop_reason,
                )
        steps.end_epoch(epoch)
        if not self.scheduler_per_batch:
            steps.step_scheduler(self.scheduler)
        self.current_epoch = epoch
        if self.distributed is not None:  # the global mean over every rank's items
            count = torch.as_tensor(num_items, dtype=loss_sums.dtype, device=loss_sums.device).reshape(1)
            totals = sum_across(torch.cat([loss_sums, count]))
            loss_sums, num_items = totals[:-1], totals[-1]
        metrics = dict(zip(LOSS_KEYS, (loss_sums / max(float(num_items), 1)).tolist()))
        metrics["learning_rate"] = float(learning_rate)
        self.last_train_metrics = metrics
        return metrics

    def _grad_sync(self, sync: bool) -> contextlib.AbstractContextManager:
        """DDP averages gradients only on a group's last backward (``no_sync`` before)."""
        if self.distributed is None or sync:
            return contextlib.nullcontext()
        return self.train_model.no_sync()  # type: ignore[operator]

    def _stop_agreed(self) -> bool:
        """Whether to stop now; under DDP a request on any rank stops every rank."""
        if self.distributed is None:
            return self.stop_reason is not None
        if any_across(self.stop_reason is not None, self.device) and self.stop_reason is None:
            self.stop_reason = "a stop request on another rank"
        return self.stop_reason is not None

    def request_stop(self, reason: str) -> None:
        """Ask ``train()`` to stop at the next safe point (after the current batch, or
        after the current epoch's checkpoints); it raises TrainingInterrupted there.
        Safe to call from a signal handler."""
        self.stop_reason = reason

    @torch.no_grad()
    def validate(self) -> Dict[str, float]:
        """Losses and accuracies (percent) over ``val_loader``; root and bass accuracy
        count only items (valid frames) whose true chord_type is not N. Then the
        ``song_validator``'s metrics, if there is one, under their own names."""
        self.model.eval()
        tracker = MetricsTracker()
        for audio, targets in self.val_loader:
            audio, targets = self._to_device(audio, targets)
            weight = batch_weight(targets, audio.shape[0], self.device, self.distributed)
            with self.step_policy.autocast():
                outputs = self.model(audio)
                losses = self.criterion(outputs, targets)
            tracker.update(losses, outputs, targets, audio.shape[0], weight=weight)
        if self.distributed is not None:
            tracker.sum_across_ranks(sum_across)
        metrics = tracker.get_metrics()
        if self.song_validator is not None:
            metrics.update(song_metrics(self.song_validator, self.model, self.distributed))
        self.last_val_metrics = metrics
        return self.last_val_metrics

    # ------------------------------------------------------------- epoch helpers
    def _end_epoch(self, train_metrics: Dict[str, float], val_metrics: Dict[str, float], seconds: float) -> None:
        """Update early stopping, record history, write checkpoints, log one line."""
        row, extra = history_row(train_metrics, val_metrics)
        improved = self.monitoring.update(self.current_epoch, {**row, **extra})
        self.stopped_early = self.monitoring.patience_ran_out
        append_to_history(self.history, row, extra)
        if self.is_main:  # under DDP rank 0 alone writes (all ranks hold the same state)
            write_epoch_checkpoints(
                self.checkpoint_dir,
                serialize(training_state(self)),
                self.current_epoch,
                improved,
                self.config.save_every,
            )
        log_epoch(self.current_epoch, self.config.num_epochs, train_metrics, val_metrics, extra, seconds, improved)
        if self.callbacks:
            metrics = callback_metrics(train_metrics, val_metrics, seconds)
            for callback in self.callbacks:
                callback.on_epoch_end(self, self.current_epoch, metrics)

    def _log_step(self, epoch: int, batch: int, losses: Mapping[str, Tensor]) -> None:
        values = log_step(epoch, self.config.num_epochs, batch, self.steps_per_epoch, losses, self.optimizer)
        for callback in self.callbacks:
            callback.on_step(self, (epoch - 1) * self.steps_per_epoch + batch, values)

    def _to_device(self, audio: Tensor, targets: Mapping[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        check_target_ranges(targets)  # on the CPU: a bad label is named, not an opaque loss error
        audio = audio.to(self.device, non_blocking=True)
        return audio, {key: value.to(self.device, non_blocking=True) for key, value in targets.items()}

    # --------------------------------------------------------------- checkpoints
    def save_checkpoint(self, path: PathLike) -> None:
        """Write the full training state to ``path`` atomically (loads with weights_only=True)."""
        atomic_write_bytes(path, serialize(training_state(self)))

    def load_checkpoint(self, path: PathLike) -> None:
        """Restore model, optimizer, scheduler position, scaler, progress and RNG states,
        so that ``train()`` continues exactly where the saved run stopped (up to this
        trainer's ``config.num_epochs``). Raises CheckpointError naming ``path``."""
        restore_training_state(self, path)
        logger.info(
            "resumed from %s after epoch %d (best %s %.4f at epoch %d)",
            path,
            self.current_epoch,
            self.monitor,
            self.best_monitor_value,
            self.best_epoch,
        )

    def export_history(self, path: PathLike) -> None:
        """Write ``history`` as JSON (one list per key); under DDP only on rank 0."""
        if not self.is_main:
            return
        atomic_write_bytes(path, (json.dumps(self.history, indent=2) + "\n").encode())
