"""The optimizer step's policy: mixed precision (autocast, and fp16's GradScaler), gradient
clipping, and what a NaN or infinite loss or gradient does (``on_nonfinite``).

Under ``on_nonfinite='stop'`` a non-finite value is noted on the device (no sync) and
raised as NonFiniteLossError at the next check: a log point or the end of the epoch, before
any checkpoint of that epoch is written. Under ``'skip'`` the step is dropped on the spot
(every DDP rank drops the same steps) and counted in ``skipped_steps``.

fp16's GradScaler absorbs gradient overflows (it skips the step and halves its scale)
while its scale stays at or above ``MIN_LOSS_SCALE``; those steps count in
``scaler_skipped_steps``, logged once per epoch. An overflow that takes the scale below
the floor means the gradients overflow with no scaling left (or are NaN): that is a
non-finite gradient for ``on_nonfinite``, as is a loss that is itself NaN or infinite.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from chordexp.config import MIXED_PRECISION_MODES, TrainingConfig
from chordexp.errors import UserError
from chordexp.training.distributed import DistContext, any_across

logger = logging.getLogger(__name__)

#: The autocast dtype of each ``mixed_precision`` mode (None: full precision).
MIXED_PRECISION = dict(zip(MIXED_PRECISION_MODES, (None, torch.bfloat16, torch.float16)))
#: The lowest fp16 loss scale at which the GradScaler still absorbs an overflow.
MIN_LOSS_SCALE = 1.0


class NonFiniteLossError(UserError, FloatingPointError):
    """The training loss or gradient became NaN or infinite; nothing was saved from that epoch."""

    name_in_line = True


class StepPolicy:
    """Backward and optimizer steps of ``model``'s parameters with ``optimizer``, as
    ``config`` (``mixed_precision``, ``gradient_clip``, ``on_nonfinite``) says.

    Per epoch: ``start_epoch``, then per accumulation group ``backward`` for each batch
    and one ``step``, ``check_finite`` at log points, ``end_epoch`` at the end.
    """

    def __init__(
        self,
        config: TrainingConfig,
        model: nn.Module,
        optimizer: Optimizer,
        device: torch.device,
        distributed: Optional[DistContext],
        checkpoint_dir: Path,
    ) -> None:
        self.config, self.model, self.optimizer = config, model, optimizer
        self.device, self.distributed, self.checkpoint_dir = device, distributed, checkpoint_dir
        self.amp_dtype = MIXED_PRECISION[config.mixed_precision]
        self.scaler = torch.amp.GradScaler(device.type, enabled=config.mixed_precision == "fp16")
        self.skipped_steps = 0  # steps skipped for on_nonfinite='skip'
        self.scaler_skipped_steps = 0  # fp16: steps the GradScaler skipped for overflowing gradients
        self._scaler_skips = torch.zeros((), dtype=torch.long, device=device)  # this epoch's, on the device
        self._first_bad_batch = torch.tensor(-1, device=device)  # 1-based; -1 = all finite so far

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def start_epoch(self) -> None:
        self._first_bad_batch = torch.tensor(-1, device=self.device)
        self._scaler_skips.zero_()
        self.optimizer.zero_grad(set_to_none=True)

    def backward(self, loss: Tensor, group_size: int) -> None:
        """Accumulated batches (the last group may be shorter) average their losses."""
        self.scaler.scale(loss / group_size).backward()

    def step(self, group_sums: Tensor, epoch: int, batch: int) -> bool:
        """The optimizer step of an accumulation group whose summed losses are
        ``group_sums`` (ending at 1-based ``batch``); False when it was skipped for
        ``on_nonfinite='skip'`` (the group then counts in no average)."""
        skip = self.config.on_nonfinite == "skip"
        if self.scaler.is_enabled():  # fp16: gradient overflows are the scaler's
            step_ok = self._scaled_step(group_sums, skip, epoch, batch)
        else:
            grad_norm = self._plain_step(group_sums if skip else None, epoch, batch)
            step_ok = None if grad_norm is None else torch.isfinite(grad_norm)
        if step_ok is None:
            return False
        if not skip:  # stays on the device; check_finite is the only sync
            finite = torch.isfinite(group_sums).all() & step_ok
            self._first_bad_batch = torch.where((self._first_bad_batch < 0) & ~finite, batch, self._first_bad_batch)
        return True

    def _plain_step(self, group_sums: Optional[Tensor], epoch: int, batch: int) -> Optional[Tensor]:
        """Unscale, clip and step; returns the gradient norm (a 0-dim tensor; +0 when not
        clipping), or None when ``group_sums`` is given (skip mode) and the group's loss
        or gradient is not finite: then no step is taken."""
        clip = self.config.gradient_clip
        grad_norm = torch.zeros((), device=self.device)
        if clip > 0 or group_sums is not None:  # the norm is needed to clip, or to check it
            self.scaler.unscale_(self.optimizer)
            grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip > 0 else math.inf)
        if group_sums is not None and not self._agreed(
            bool(torch.isfinite(group_sums).all() & torch.isfinite(grad_norm))
        ):
            self._skip(epoch, batch, "non-finite loss or gradient")
            return None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def _scaled_step(self, group_sums: Tensor, skip: bool, epoch: int, batch: int) -> Optional[Tensor]:
        """fp16 with a GradScaler: unscale, clip and let the scaler step; returns a 0-dim
        bool tensor (False: a non-finite gradient the scaler could not absorb, for the
        on_nonfinite='stop' check), or None when the step was skipped for 'skip'.

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
        if skip and not self._agreed(bool(loss_ok)):
            self._skip(epoch, batch, "non-finite loss", new_scale=scale_before)  # not an overflow: the scale stays
            return None
        self.scaler.step(self.optimizer)  # skipped by the scaler itself when a gradient is not finite
        self.scaler.update()
        scale = self.scaler._get_scale_async()
        assert scale is not None
        overflow = scale < scale_before  # only a found inf/NaN makes update() lower the scale
        too_small = overflow & (scale < MIN_LOSS_SCALE)
        self.optimizer.zero_grad(set_to_none=True)
        if skip and not self._agreed(not bool(too_small)):
            why = f"gradient overflow with the fp16 GradScaler's scale below {MIN_LOSS_SCALE:g}"
            self._skip(epoch, batch, why, new_scale=float(MIN_LOSS_SCALE))
            return None
        self._scaler_skips += (overflow & loss_ok).to(self._scaler_skips.dtype)  # a NaN loss is not the scaler's
        return ~too_small

    def _agreed(self, ok: bool) -> bool:
        """``ok`` on every rank (under DDP every rank skips the same steps)."""
        return ok if self.distributed is None else not any_across(not ok, self.device)

    def _skip(self, epoch: int, batch: int, why: str, new_scale: Union[float, Tensor, None] = None) -> None:
        """Drop this group's step: count and log it, clear its gradients, update the scaler
        (``new_scale``: the scale it keeps, else its own rule)."""
        self.skipped_steps += 1
        logger.warning(
            "%s at epoch %d, batch %d: optimizer step skipped (%d skipped so far)",
            why,
            epoch,
            batch,
            self.skipped_steps,
        )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.update(new_scale=new_scale)

    def step_scheduler(self, scheduler: Any) -> None:
        """The schedule moves on over skipped steps (as with any AMP loop). When the scaler
        skipped every step so far, torch warns that the scheduler stepped before the
        optimizer ("... you should call them in the opposite order"), which is not so here."""
        if not self.scaler.is_enabled():
            scheduler.step()
            return
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            scheduler.step()

    def check_finite(self, epoch: int) -> None:
        """Raise NonFiniteLossError if a step of this epoch so far had a non-finite loss or
        gradient (``on_nonfinite='stop'``); under DDP every rank raises together."""
        first_bad_batch = self._first_bad_batch
        if self.distributed is not None:  # the largest batch index wins
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

    def end_epoch(self, epoch: int) -> None:
        """The epoch's last non-finite check, and (fp16) one line if the scaler skipped steps."""
        self.check_finite(epoch)
        count = int(self._scaler_skips.item()) if self.scaler.is_enabled() else 0  # one sync
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
