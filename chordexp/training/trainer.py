"""The training engine: epochs of forward/backward/step, validation, checkpoints,
early stopping and history.

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
import dataclasses
import json
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union, cast

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer
from tqdm import tqdm

from chordexp.config import MIXED_PRECISION_MODES, TrainingConfig, check_training_config
from chordexp.device import resolve_device
from chordexp.errors import ConfigValueError, TrainingInterrupted, UserError
from chordexp.model.loss import ChordRecognitionLoss
from chordexp.training.batch_checks import check_target_ranges
from chordexp.training.callbacks import Callback
from chordexp.training.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    atomic_write_bytes,
    capture_rng_state,
    check_model_state,
    load_checkpoint_file,
    restore_rng_state,
    serialize,
    to_plain,
)
from chordexp.training.distributed import (
    DistContext,
    any_across,
    broadcast_object,
    global_batch_norm,
    global_mean_count,
    sum_across,
)
from chordexp.training.metrics import LOSS_KEYS, METRIC_KEYS, TASKS, MetricsTracker, is_frame_targets, valid_frames
from chordexp.training.schedulers import create_scheduler, restore_scheduler

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
#: ``song_validator(model) -> {name: value}``: extra validation metrics (e.g. mir_eval scores
#: of whole transcribed songs), recorded in the history as ``val_<name>``.
SongValidator = Callable[[nn.Module], Mapping[str, float]]

HISTORY_KEYS = ("train_loss", "val_loss", "val_chord_type_acc", "val_root_acc", "val_bass_note_acc", "learning_rate")
#: What ``config.monitor`` may name without a song validator (with one, also ``val_<name>``).
MONITORS = tuple(key for key in HISTORY_KEYS if key.startswith("val_"))
#: Song-validator names that would collide with the loader metrics (or, as val_<name>, with val_loss).
RESERVED_SONG_METRICS = frozenset(METRIC_KEYS) | {"loss"}
#: The autocast dtype of each ``mixed_precision`` mode (None: full precision).
MIXED_PRECISION = dict(zip(MIXED_PRECISION_MODES, (None, torch.bfloat16, torch.float16)))
#: fp16's GradScaler absorbs gradient overflows (it skips the step and halves its scale)
#: while its scale stays at or above this floor. An overflow that takes the scale below it
#: means the gradients overflow with no scaling left (or are NaN): that is a non-finite
#: gradient for ``on_nonfinite``, as is a loss that is itself NaN or infinite.
MIN_LOSS_SCALE = 1.0


class NonFiniteLossError(UserError, FloatingPointError):
    """The training loss or gradient became NaN or infinite; nothing was saved from that epoch."""

    name_in_line = True


def monitor_direction(monitor: str, mode: str) -> str:
    """``'min'`` or ``'max'``: ``mode`` itself, or for ``'auto'`` min when the name holds
    "loss" (val_loss) and max otherwise (accuracies, song scores)."""
    if mode == "auto":
        return "min" if "loss" in monitor else "max"
    return mode


def _num_batches(loader: Iterable, name: str) -> int:
    try:
        count = len(loader)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigValueError(f"{name} must have a length (a DataLoader over a map-style dataset)") from None
    if count == 0:
        raise ConfigValueError(f"{name} yields no batches")
    return count


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
    ``last_val_metrics``, ``last_train_metrics``. ``checkpoint_extra`` (plain data,
    e.g. the run's config) is saved in every checkpoint under ``extra``.

    ``song_validator(model) -> {name: value}`` runs after each loader validation (on
    rank 0 under DDP, its values broadcast to every rank); its metrics join the
    validation metrics under their own names, the history and the epoch callbacks as
    ``val_<name>`` and the epoch log line.

    ``config.monitor`` (default ``val_loss``) is the validation history key that
    ``best.pt``, early stopping (``patience``, ``min_delta``), ``best_epoch`` and
    ``best_monitor_value`` follow, minimised or maximised per ``config.monitor_mode``.
    ``best_val_loss`` always means the best validation loss: with the default monitor
    the loss of ``best_epoch`` (as ever); with another monitor the lowest val_loss of
    any epoch, which need not be ``best_epoch``'s.

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
        self.monitor = self.config.monitor
        self.monitor_mode = monitor_direction(self.monitor, self.config.monitor_mode)
        if self.monitor not in MONITORS and (song_validator is None or not str(self.monitor).startswith("val_")):
            raise ConfigValueError(
                f"monitor={self.monitor!r} is not a validation metric; valid: {', '.join(MONITORS)}"
                + ("" if song_validator is not None else " (val_<name> needs a song_validator that returns <name>)")
            )
        self._monitor_checked = song_validator is None  # with one, checked at the first validation
        self.device = resolve_device(self.config.device)
        if self.config.deterministic:
            torch.use_deterministic_algorithms(True)
        self.distributed = distributed
        self.is_main = distributed is None or distributed.is_main
        self.model = model.to(self.device)
        self.train_model: nn.Module = self.model  # what train_epoch calls: the DDP wrapper under torchrun
        if distributed is not None:
            self.model = global_batch_norm(self.model, self.device)
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=device_ids)
        if self.config.compile:  # the training forward only: checkpoints keep the plain module's names
            # the compiled wrapper of a module is a module (OptimizedModule); torch's stub says Callable
            self.train_model = cast(nn.Module, torch.compile(self.train_model))
        self.train_loader, self.val_loader = train_loader, val_loader
        self.steps_per_epoch = _num_batches(train_loader, "train_loader")
        _num_batches(val_loader, "val_loader")
        # under DDP the loss's means are those of the global batch (its counts summed over ranks)
        mean_count = None if distributed is None else global_mean_count(distributed.world_size)
        if criterion is None:
            criterion = ChordRecognitionLoss(
                label_smoothing=self.config.label_smoothing, chord_count=mean_count, frame_count=mean_count
            )
        elif (
            mean_count is not None
            and isinstance(criterion, ChordRecognitionLoss)
            and criterion.chord_count is None
            and criterion.frame_count is None
        ):
            criterion = criterion.with_counts(mean_count)  # built without them: a copy that has them
        self.criterion = criterion.to(self.device) if isinstance(criterion, nn.Module) else criterion
        if optimizer_factory is None:
            self.optimizer: Optimizer = torch.optim.AdamW(
                self.model.parameters(), lr=self.config.learning_rate, weight_decay=self.config.weight_decay, fused=True
            )  # the fastest path, as conf/optimizer/adamw.yaml
        else:
            self.optimizer = optimizer_factory(self.model.parameters())
        self.scheduler, self.scheduler_per_batch = create_scheduler(self.optimizer, self.config, self.steps_per_epoch)
        self.amp_dtype = MIXED_PRECISION[self.config.mixed_precision]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.config.mixed_precision == "fp16")
        self.checkpoint_dir = Path(self.config.checkpoint_dir)
        self.checkpoint_extra: Dict[str, Any] = {}
        self.callbacks: List[Callback] = list(callbacks)
        self.stop_reason: Optional[str] = None
        self.skipped_steps = 0  # steps skipped for on_nonfinite='skip'
        self.scaler_skipped_steps = 0  # fp16: steps the GradScaler skipped for overflowing gradients
        self._scaler_skips = torch.zeros((), dtype=torch.long, device=self.device)  # this epoch's, on the device

        self.history: Dict[str, List[float]] = {key: [] for key in HISTORY_KEYS}
        self.current_epoch = 0
        self.best_val_loss = math.inf
        self.best_monitor_value = math.inf if self.monitor_mode == "min" else -math.inf
        self.best_epoch = 0
        self.epochs_without_improvement = 0
        self.stopped_early = False
        self.last_train_metrics: Dict[str, float] = {}
        self.last_val_metrics: Dict[str, float] = {}

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
                if self.stopped_early:
                    if 0 < self.config.patience <= self.epochs_without_improvement:
                        logger.info(
                            "early stopping after epoch %d: no %s improvement for %d epochs (best %.4f at epoch %d)",
                            self.current_epoch,
                            self.monitor,
                            self.epochs_without_improvement,
                            self.best_monitor_value,
                            self.best_epoch,
                        )
                    else:  # a callback ended the run (an Optuna pruner): it said why
                        logger.info(
                            "stopping after epoch %d: a callback ended the run (best %.4f at epoch %d)",
                            self.current_epoch,
                            self.best_monitor_value,
                            self.best_epoch,
                        )
                    break
        finally:
            for callback in self.callbacks:
                callback.on_train_end(self)
        return self.history

    def train_epoch(self) -> Dict[str, float]:
        """One pass over ``train_loader``; advances ``current_epoch``.

        Returns the loss keys (averaged weighted by batch size, or by valid frames for
        frame targets) and ``learning_rate``,
        the rate of the epoch's first optimizer step (constant over the epoch except
        for per-batch schedulers such as onecycle). With ``on_nonfinite='skip'`` a
        batch group whose loss or gradient is not finite takes no optimizer step and
        is left out of the averages (counted in ``skipped_steps``).

        With fp16 a step whose gradients overflow but whose loss is finite is the
        GradScaler's to skip (counted in ``scaler_skipped_steps``, logged once per
        epoch; its loss still counts in the averages); ``on_nonfinite`` handles a
        non-finite loss and an overflow that takes the scale below ``MIN_LOSS_SCALE``.
        """
        cfg, epoch, num_batches = self.config, self.current_epoch + 1, self.steps_per_epoch
        accum, skip = cfg.grad_accum_steps, cfg.on_nonfinite == "skip"
        learning_rate = self.optimizer.param_groups[0]["lr"]
        loss_sums = torch.zeros(len(LOSS_KEYS), device=self.device)  # sum of loss * batch weight
        group_sums = torch.zeros_like(loss_sums)  # the current accumulation group's share
        first_bad_batch = torch.tensor(-1, device=self.device)  # 1-based; -1 = all finite so far
        num_items: Union[int, Tensor] = 0  # batch sizes, or (device tensors of) valid frames
        group_items: Union[int, Tensor] = 0
        scaling = self.scaler.is_enabled()
        self._scaler_skips.zero_()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        for i, (audio, targets) in enumerate(self._progress(self.train_loader, epoch)):
            audio, targets = self._to_device(audio, targets)
            weight = self._batch_weight(targets, audio.shape[0])
            steps_now = (i + 1) % accum == 0 or i + 1 == num_batches
            with self._grad_sync(steps_now):
                # forward: (B, num_samples) -> {task: (B, C)}, then the loss
                with self._autocast():
                    outputs = self.train_model(audio)
                    losses = self.criterion(outputs, targets)
                loss = losses["total_loss"]
                # backward: accumulated batches (the last group may be shorter) average their losses
                group_size = min(accum, num_batches - (i // accum) * accum)
                self.scaler.scale(loss / group_size).backward()
            group_sums += torch.stack([losses[key].detach().float() for key in LOSS_KEYS]) * weight
            group_items = group_items + weight
            if steps_now:
                if scaling:  # fp16: gradient overflows are the scaler's (see _scaled_optimizer_step)
                    step_ok = self._scaled_optimizer_step(group_sums, skip, epoch, i + 1)
                else:
                    grad_norm = self._optimizer_step(group_sums if skip else None, epoch, i + 1)
                    step_ok = None if grad_norm is None else torch.isfinite(grad_norm)
                if step_ok is None:  # skipped: the group counts nowhere
                    group_items = 0
                else:
                    loss_sums += group_sums
                    num_items += group_items
                    group_items = 0
                    if not skip:  # stays on the device; log points are the only syncs
                        finite = torch.isfinite(group_sums).all() & step_ok
                        first_bad_batch = torch.where((first_bad_batch < 0) & ~finite, i + 1, first_bad_batch)
                group_sums.zero_()
                if self.scheduler_per_batch:
                    self._scheduler_step(scaling)
            if cfg.log_every > 0 and (i + 1) % cfg.log_every == 0:
                self._raise_if_nonfinite(first_bad_batch, epoch)
                self._log_step(epoch, i + 1, losses)
            if self._stop_agreed():
                raise TrainingInterrupted(
                    f"{self.stop_reason} during epoch {epoch} (batch {i + 1}/{num_batches}): the partial epoch is "
                    f"dropped; {self.checkpoint_dir / 'last.pt'} holds epoch {self.current_epoch}",
                    self.stop_reason,
                )
        self._raise_if_nonfinite(first_bad_batch, epoch)
        if scaling:
            self._log_scaler_skips(epoch)
        if not self.scheduler_per_batch:
            self._scheduler_step(scaling)
        self.current_epoch = epoch
        if self.distributed is not None:  # the global mean over every rank's items
            count = torch.as_tensor(num_items, dtype=loss_sums.dtype, device=loss_sums.device).reshape(1)
            totals = sum_across(torch.cat([loss_sums, count]))
            loss_sums, num_items = totals[:-1], totals[-1]
        metrics = dict(zip(LOSS_KEYS, (loss_sums / max(float(num_items), 1)).tolist()))
        metrics["learning_rate"] = float(learning_rate)
        self.last_train_metrics = metrics
        return metrics

    def _optimizer_step(self, group_sums: Optional[Tensor], epoch: int, batch: int) -> Optional[Tensor]:
        """Unscale, clip and step; returns the gradient norm (a 0-dim tensor; +0 when not
        clipping), or None when ``group_sums`` is given (skip mode) and the group's loss
        or gradient is not finite: then no step is taken."""
        clip = self.config.gradient_clip
        grad_norm = torch.zeros((), device=self.device)
        if clip > 0 or group_sums is not None:  # the norm is needed to clip, or to check it
            self.scaler.unscale_(self.optimizer)
            grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip > 0 else math.inf)
        finite = bool(torch.isfinite(group_sums).all() & torch.isfinite(grad_norm)) if group_sums is not None else True
        if self.distributed is not None and group_sums is not None:
            finite = not any_across(not finite, self.device)  # every rank skips the same steps
        if not finite:
            self.skipped_steps += 1
            logger.warning(
                "non-finite loss or gradient at epoch %d, batch %d: optimizer step skipped (%d skipped so far)",
                epoch,
                batch,
                self.skipped_steps,
            )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.update()
            return None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def _scaled_optimizer_step(self, group_sums: Tensor, skip: bool, epoch: int, batch: int) -> Optional[Tensor]:
        """fp16 with a GradScaler: unscale, clip and let the scaler step; returns a 0-dim
        bool tensor (False: a non-finite gradient the scaler could not absorb, for the
        caller's on_nonfinite='stop' check), or None when the step was skipped for
        ``on_nonfinite='skip'``.

        What the scaler absorbs: gradients that overflow (inf/NaN) while the loss is
        finite. ``scaler.step`` skips that step and ``update`` halves the scale; the step
        counts in ``scaler_skipped_steps``, never as a non-finite loss. What
        ``on_nonfinite`` handles: a loss that is itself NaN or inf (no scale can fix it;
        the scale is left as it was), and an overflow that leaves the scale below
        ``MIN_LOSS_SCALE`` (the gradients overflow unscaled; under 'skip' the scale is
        set back to the floor so that it cannot decay to zero). Under DDP the gradients
        are the all-reduced ones, so every rank's scaler sees the same overflow and
        keeps the same scale; the loss check is agreed across ranks as before."""
        scale_now = self.scaler._get_scale_async()  # set by scale() in the backward; no sync
        assert scale_now is not None
        scale_before = scale_now.clone()
        self.scaler.unscale_(self.optimizer)  # records the scaler's own inf check
        clip = self.config.gradient_clip
        if clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        loss_ok = torch.isfinite(group_sums).all()
        if skip:
            finite_loss = bool(loss_ok)
            if self.distributed is not None:
                finite_loss = not any_across(not finite_loss, self.device)  # every rank skips the same steps
            if not finite_loss:
                self._skip_step(epoch, batch, "non-finite loss")
                self.scaler.update(new_scale=scale_before)  # not an overflow: the scale stays
                return None
        self.scaler.step(self.optimizer)  # skipped by the scaler itself when a gradient is not finite
        self.scaler.update()
        scale = self.scaler._get_scale_async()
        assert scale is not None
        overflow = scale < scale_before  # only a found inf/NaN makes update() lower the scale
        too_small = overflow & (scale < MIN_LOSS_SCALE)
        self.optimizer.zero_grad(set_to_none=True)
        if skip:
            unabsorbed = bool(too_small)
            if self.distributed is not None:
                unabsorbed = any_across(unabsorbed, self.device)
            if unabsorbed:
                self._skip_step(
                    epoch, batch, f"gradient overflow with the fp16 GradScaler's scale below {MIN_LOSS_SCALE:g}"
                )
                self.scaler.update(new_scale=float(MIN_LOSS_SCALE))
                return None
        self._scaler_skips += (overflow & loss_ok).to(self._scaler_skips.dtype)  # a NaN loss is not the scaler's
        return ~too_small

    def _scheduler_step(self, scaling: bool) -> None:
        """The schedule moves on over skipped steps (as with any AMP loop). When the scaler
        skipped every step so far, torch warns that the scheduler stepped before the
        optimizer ("... you should call them in the opposite order"), which is not so here."""
        if not scaling:
            self.scheduler.step()
            return
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            self.scheduler.step()

    def _skip_step(self, epoch: int, batch: int, why: str) -> None:
        self.skipped_steps += 1
        logger.warning(
            "%s at epoch %d, batch %d: optimizer step skipped (%d skipped so far)",
            why,
            epoch,
            batch,
            self.skipped_steps,
        )
        self.optimizer.zero_grad(set_to_none=True)

    def _log_scaler_skips(self, epoch: int) -> None:
        """One line per epoch in which the fp16 GradScaler skipped steps (one sync)."""
        count = int(self._scaler_skips.item())
        if count:
            self.scaler_skipped_steps += count
            logger.info(
                "epoch %d: the fp16 GradScaler skipped %d optimizer step(s) with overflowing gradients "
                "(%d in total); scale now %g",
                epoch,
                count,
                self.scaler_skipped_steps,
                self.scaler.get_scale(),
            )

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
            weight = self._batch_weight(targets, audio.shape[0])
            with self._autocast():
                outputs = self.model(audio)
                losses = self.criterion(outputs, targets)
            tracker.update(losses, outputs, targets, audio.shape[0], weight=weight)
        if self.distributed is not None:
            tracker.sum_across_ranks(sum_across)
        metrics = tracker.get_metrics()
        if self.song_validator is not None:
            metrics.update(self._song_metrics())
        self.last_val_metrics = metrics
        return self.last_val_metrics

    def _batch_weight(self, targets: Mapping[str, Tensor], batch_size: int) -> Union[int, Tensor]:
        """What a batch's mean losses count for in an epoch average: its size for clip
        targets, its valid frames for frame targets (a device tensor: no sync). Under DDP
        a rank's frame losses are shares of the global batch's mean (the criterion's
        hooks), so each rank counts for the global batch's valid frames / world size."""
        if not is_frame_targets(targets):
            return batch_size
        count = valid_frames(targets).sum().to(torch.float64 if self.device.type != "mps" else torch.float32)
        if self.distributed is not None:
            count = sum_across(count) / self.distributed.world_size
        return count

    def _song_metrics(self) -> Dict[str, float]:
        """Run ``song_validator`` on the plain model; under DDP rank 0 runs it and every
        rank gets its values (an error there is raised on every rank, none hangs)."""
        if self.distributed is None:
            return self._call_song_validator()
        payload: Tuple[str, Any] = ("ok", None)
        error: Optional[BaseException] = None
        if self.is_main:
            try:
                payload = ("ok", self._call_song_validator())
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the other ranks are told
                error, payload = exc, ("error", f"{type(exc).__name__}: {exc}")
        payload = broadcast_object(payload)
        if error is not None:
            raise error
        if payload[0] == "error":
            raise RuntimeError(f"the song validator failed on rank 0: {payload[1]}")
        return dict(payload[1])

    def _call_song_validator(self) -> Dict[str, float]:
        result = self.song_validator(self.model)  # type: ignore[misc]
        if not isinstance(result, Mapping):
            raise ConfigValueError(
                f"song_validator returned {type(result).__name__}, not a dict of metric name -> number"
            )
        metrics: Dict[str, float] = {}
        for name, value in result.items():
            if not isinstance(name, str) or not name or name in RESERVED_SONG_METRICS:
                raise ConfigValueError(
                    f"song_validator metric name {name!r} is not allowed: it must be a non-empty "
                    f"string other than {', '.join(sorted(RESERVED_SONG_METRICS))}"
                )
            try:
                metrics[name] = float(value)
            except (TypeError, ValueError, RuntimeError):
                raise ConfigValueError(f"song_validator metric {name}={value!r} is not a number") from None
        return metrics

    # ------------------------------------------------------------- epoch helpers
    def _end_epoch(self, train_metrics: Dict[str, float], val_metrics: Dict[str, float], seconds: float) -> None:
        """Update early stopping, record history, write checkpoints, log one line."""
        val_loss = val_metrics["total_loss"]
        row = {
            "train_loss": train_metrics["total_loss"],
            "val_loss": val_loss,
            **{f"val_{task}_acc": val_metrics[f"{task}_acc"] for task in TASKS},
            "learning_rate": train_metrics["learning_rate"],
        }
        extra = {f"val_{name}": float(value) for name, value in val_metrics.items() if name not in METRIC_KEYS}
        if not self._monitor_checked:  # the first validation tells which names exist
            names = [key for key in (*row, *extra) if key.startswith("val_")]
            if self.monitor not in names:
                raise ConfigValueError(
                    f"monitor={self.monitor!r} is not a validation metric; valid: {', '.join(names)}"
                )
            self._monitor_checked = True
        value = float({**row, **extra}.get(self.monitor, math.nan))  # NaN (a missing value) never improves
        if self.monitor_mode == "min":
            improved = value < self.best_monitor_value - self.config.min_delta
        else:
            improved = value > self.best_monitor_value + self.config.min_delta
        if improved:
            self.best_monitor_value, self.best_epoch, self.epochs_without_improvement = value, self.current_epoch, 0
        else:
            self.epochs_without_improvement += 1
        if self.monitor == "val_loss" and self.monitor_mode == "min":  # the seed's meaning: the best epoch's loss
            if improved:
                self.best_val_loss = val_loss
        elif val_loss < self.best_val_loss:
            self.best_val_loss = val_loss
        self.stopped_early = 0 < self.config.patience <= self.epochs_without_improvement
        for key, number in row.items():
            self.history[key].append(float(number))
        epochs = len(self.history["val_loss"])
        for key in [*extra, *(k for k in self.history if k not in HISTORY_KEYS and k not in extra)]:
            # song metrics: one value per epoch, NaN where the validator gave none
            self.history.setdefault(key, [math.nan] * (epochs - 1)).append(extra.get(key, math.nan))
        self._save_epoch_checkpoints(improved)
        logger.info(
            "epoch %d/%d train_loss %.4f val_loss %.4f acc chord_type %.2f%% root %.2f%% bass_note %.2f%%%s "
            "lr %.3e %.1fs%s",
            self.current_epoch,
            self.config.num_epochs,
            train_metrics["total_loss"],
            val_loss,
            val_metrics["chord_type_acc"],
            val_metrics["root_acc"],
            val_metrics["bass_note_acc"],
            "".join(f" {key} {value:.4f}" for key, value in extra.items()),
            train_metrics["learning_rate"],
            seconds,
            " (best)" if improved else "",
        )
        if self.callbacks:
            metrics = {f"train_{key}": float(train_metrics[key]) for key in LOSS_KEYS}
            metrics.update((f"val_{key}", float(value)) for key, value in val_metrics.items())
            metrics.update(learning_rate=float(train_metrics["learning_rate"]), epoch_seconds=float(seconds))
            for callback in self.callbacks:
                callback.on_epoch_end(self, self.current_epoch, metrics)

    def _save_epoch_checkpoints(self, improved: bool) -> None:
        """``last.pt`` always, ``best.pt`` on improvement, ``epoch_NNN.pt`` every save_every;
        under DDP rank 0 alone writes (all ranks hold the same state)."""
        if not self.is_main:
            return
        data = serialize(self._checkpoint_state())
        # last.pt goes last: it commits the epoch. A run killed before it is resumed from the
        # previous epoch and rewrites best.pt / epoch_NNN.pt; written first, a kill between
        # the writes would leave a best.pt that never gets its improved epoch.
        if improved:
            atomic_write_bytes(self.checkpoint_dir / "best.pt", data)
        if self.config.save_every > 0 and self.current_epoch % self.config.save_every == 0:
            atomic_write_bytes(self.checkpoint_dir / f"epoch_{self.current_epoch:03d}.pt", data)
        atomic_write_bytes(self.checkpoint_dir / "last.pt", data)

    def _log_step(self, epoch: int, batch: int, losses: Mapping[str, Tensor]) -> None:
        values = {key: float(losses[key].detach()) for key in LOSS_KEYS}
        values["learning_rate"] = float(self.optimizer.param_groups[0]["lr"])
        logger.info(
            "epoch %d/%d batch %d/%d loss %.4f lr %.3e",
            epoch,
            self.config.num_epochs,
            batch,
            self.steps_per_epoch,
            values["total_loss"],
            values["learning_rate"],
        )
        step = (epoch - 1) * self.steps_per_epoch + batch
        for callback in self.callbacks:
            callback.on_step(self, step, values)

    def _raise_if_nonfinite(self, first_bad_batch: Tensor, epoch: int) -> None:
        if self.distributed is not None:  # every rank raises together (the largest batch index wins)
            first_bad_batch = first_bad_batch.clone()
            torch.distributed.all_reduce(first_bad_batch, op=torch.distributed.ReduceOp.MAX)
        bad = int(first_bad_batch.item())
        if bad > 0:
            fp16 = (
                f" (fp16: the loss itself, or gradients that overflow with the GradScaler's scale below "
                f"{MIN_LOSS_SCALE:g})"
                if self.scaler.is_enabled()
                else ""
            )
            raise NonFiniteLossError(
                f"non-finite training loss or gradient at epoch {epoch}, batch {bad}{fp16}; no checkpoint was written "
                f"for this epoch (those in {self.checkpoint_dir} are intact); try a lower learning_rate or check the "
                f"data"
            )

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _to_device(self, audio: Tensor, targets: Mapping[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        check_target_ranges(targets)  # on the CPU: a bad label is named, not an opaque loss error
        audio = audio.to(self.device, non_blocking=True)
        return audio, {key: value.to(self.device, non_blocking=True) for key, value in targets.items()}

    def _progress(self, loader: Iterable, epoch: int) -> Iterable:
        """A tqdm bar on an interactive terminal; the plain loader otherwise."""
        if not sys.stderr.isatty():
            return loader
        return tqdm(loader, desc=f"epoch {epoch}/{self.config.num_epochs}", leave=False, dynamic_ncols=True)

    # --------------------------------------------------------------- checkpoints
    def _checkpoint_state(self) -> Dict[str, Any]:
        """Everything needed to continue exactly, as weights_only-loadable data.

        ``model_hparams`` is the model's ``hparams`` dict (its constructor arguments)
        when it has one, so predict can rebuild the model from the checkpoint alone.
        """
        hparams = getattr(self.model, "hparams", None)
        return {
            "format_version": FORMAT_VERSION,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "optimizer_class": type(self.optimizer).__name__,
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "history": {key: list(values) for key, values in self.history.items()},
            "best_val_loss": float(self.best_val_loss),
            "monitor": self.monitor,
            "monitor_mode": self.monitor_mode,
            "best_monitor_value": float(self.best_monitor_value),
            "best_epoch": self.best_epoch,
            "epoch": self.current_epoch,
            "epochs_without_improvement": self.epochs_without_improvement,
            "stopped_early": self.stopped_early,
            "last_val_metrics": dict(self.last_val_metrics),
            "config": to_plain(dataclasses.asdict(self.config)),
            "rng": capture_rng_state(),
            "loader_rng": {name: gen.get_state() for name, gen in self._loader_generators().items()},
            "model_hparams": to_plain(hparams) if isinstance(hparams, Mapping) else None,
            "extra": self.checkpoint_extra,
        }

    def save_checkpoint(self, path: PathLike) -> None:
        """Write the full training state to ``path`` atomically (loads with weights_only=True)."""
        atomic_write_bytes(path, serialize(self._checkpoint_state()))

    def load_checkpoint(self, path: PathLike) -> None:
        """Restore model, optimizer, scheduler position, scaler, progress and RNG states,
        so that ``train()`` continues exactly where the saved run stopped (up to this
        trainer's ``config.num_epochs``). Raises CheckpointError naming ``path``."""
        state = load_checkpoint_file(path)
        check_model_state(path, self.model, state["model"])
        self._check_same_optimization(path, state)
        self._check_same_monitor(path, state)
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            restore_scheduler(self.scheduler, state["scheduler"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            history = state["history"]
            self.history = {key: [float(v) for v in history.get(key, [])] for key in HISTORY_KEYS}
            self.history.update(
                (key, [float(v) for v in values]) for key, values in history.items() if key not in HISTORY_KEYS
            )  # song metrics (val_<name>)
            self.best_val_loss = float(state["best_val_loss"])
            # checkpoints from before the monitor existed monitored val_loss
            self.best_monitor_value = float(state.get("best_monitor_value", self.best_val_loss))
            self.best_epoch = int(state.get("best_epoch", 0))
            self.current_epoch = int(state["epoch"])
            self.epochs_without_improvement = int(state["epochs_without_improvement"])
            self.stopped_early = bool(state.get("stopped_early", False))
            self.last_val_metrics = dict(state.get("last_val_metrics", {}))
            self.checkpoint_extra = dict(state.get("extra") or {})
            restore_rng_state(state["rng"])
            generators = self._loader_generators()
            for name, generator_state in (state.get("loader_rng") or {}).items():
                if name in generators:
                    generators[name].set_state(generator_state)
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise CheckpointError(f"checkpoint {path}: cannot restore the training state ({reason})") from exc
        logger.info(
            "resumed from %s after epoch %d (best %s %.4f at epoch %d)",
            path,
            self.current_epoch,
            self.monitor,
            self.best_monitor_value,
            self.best_epoch,
        )

    def _loader_generators(self) -> Dict[str, torch.Generator]:
        """The train loader's own random generators (shuffle order, worker seeds): saved
        and restored with the checkpoint so a resumed run draws the epochs' orders the
        uninterrupted run would have drawn."""
        owners: Dict[str, Any] = {"sampler": getattr(self.train_loader, "sampler", None), "loader": self.train_loader}
        return {
            name: owner.generator
            for name, owner in owners.items()
            if isinstance(getattr(owner, "generator", None), torch.Generator)
        }

    def _check_same_optimization(self, path: PathLike, state: Mapping[str, Any]) -> None:
        """Optimizer and scheduler state only mean something to the same kinds."""
        saved_config = state["config"] if isinstance(state["config"], Mapping) else {}
        saved = (
            state.get("optimizer_class", type(self.optimizer).__name__),
            saved_config.get("scheduler", self.config.scheduler),
        )
        current = (type(self.optimizer).__name__, self.config.scheduler)
        if saved != current:
            raise CheckpointError(
                f"checkpoint {path}: saved with optimizer {saved[0]} and scheduler {saved[1]!r}, "
                f"this trainer uses {current[0]} and {current[1]!r}; resume with the same ones"
            )

    def _check_same_monitor(self, path: PathLike, state: Mapping[str, Any]) -> None:
        """best.pt, best_epoch and the patience count so far were chosen by the saved
        run's monitor; continuing them under another one would mix two criteria."""
        saved = (state.get("monitor", "val_loss"), state.get("monitor_mode", "min"))
        if saved != (self.monitor, self.monitor_mode):
            raise CheckpointError(
                f"checkpoint {path}: saved monitoring {saved[0]} ({saved[1]}), this trainer monitors "
                f"{self.monitor} ({self.monitor_mode}); resume with the same monitor"
            )

    def export_history(self, path: PathLike) -> None:
        """Write ``history`` as JSON (one list per key); under DDP only on rank 0."""
        if not self.is_main:
            return
        atomic_write_bytes(path, (json.dumps(self.history, indent=2) + "\n").encode())
