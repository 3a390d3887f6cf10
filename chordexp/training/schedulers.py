"""Learning-rate schedules: 'cosine', 'onecycle' and 'constant'.

``create_scheduler`` returns a torch scheduler and whether the trainer steps it after
every optimizer step (``True``, onecycle) or once after every epoch (``False``).

Notation: ``lr`` = ``config.learning_rate``, ``E`` = ``config.num_epochs``, ``e`` =
0-based epoch index; each value is the learning rate used during epoch ``e``.

* ``cosine`` (per epoch), option ``min_lr_ratio`` (``m``, default 0.01), warmup
  ``W = max(0, min(warmup_epochs, E - 2))``::

      e <  W:  lr * (e + 1) / (W + 1)
      e >= W:  lr * (m + (1 - m) * (1 + cos(pi * t)) / 2),  t = min(1, (e - W) / (E - 1 - W))

  Epoch ``W`` runs at ``lr`` and the last epoch ``E - 1`` at ``lr * m`` (the cap on W
  keeps a decay epoch after the peak); a single-epoch run (``E == 1``) runs at ``lr``.
* ``constant`` (per epoch), no options: the same warmup with ``W = min(warmup_epochs,
  E - 1)``, then ``lr``.
* ``onecycle`` (per optimizer step): ``torch.optim.lr_scheduler.OneCycleLR`` with
  ``max_lr = lr`` (times each param group's ``lr_multiplier``), ``total_steps = E * ceil(steps_per_epoch / grad_accum_steps)``,
  ``pct_start = warmup_epochs / E`` (0.3 when warmup_epochs is 0 or >= E),
  ``anneal_strategy='linear'`` and momentum cycling when the optimizer has betas or a
  non-zero momentum. Options: div_factor, final_div_factor, base_momentum,
  max_momentum, pct_start, anneal_strategy, cycle_momentum, three_phase. The step
  after the last one (the trainer steps after every optimizer step) keeps the final
  lr instead of extrapolating past it, as plain OneCycleLR would.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Dict, List, Mapping, Tuple, Union

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from chordexp.config import SCHEDULER_DEFAULTS, SCHEDULER_OPTIONS, TrainingConfig, check_setting
from chordexp.errors import ConfigValueError

log = logging.getLogger(__name__)


def create_scheduler(optimizer: Optimizer, config: TrainingConfig, steps_per_epoch: int) -> Tuple[LRScheduler, bool]:
    """Build ``config.scheduler`` for ``optimizer``; returns ``(scheduler, per_batch)``.

    ``steps_per_epoch`` is the number of batches per epoch (``len(train_loader)``);
    with gradient accumulation the optimizer steps ``ceil(steps_per_epoch /
    grad_accum_steps)`` times per epoch. Raises ValueError for an unknown scheduler
    name or option, listing the valid ones.
    """
    name = config.scheduler
    if name not in SCHEDULER_OPTIONS:
        raise ConfigValueError(f"unknown scheduler {name!r}; valid: {', '.join(SCHEDULER_OPTIONS)}")
    options = dict(config.scheduler_options or {})
    unknown = sorted(set(options) - set(SCHEDULER_OPTIONS[name]))
    if unknown:
        valid = ", ".join(SCHEDULER_OPTIONS[name]) or "none"
        raise ConfigValueError(f"unknown scheduler_options {unknown} for scheduler {name!r}; valid: {valid}")
    check_setting("num_epochs", config.num_epochs)

    if name == "onecycle":
        return _onecycle(optimizer, config, steps_per_epoch, options), True
    min_lr_ratio = float(options.get("min_lr_ratio", SCHEDULER_DEFAULTS["cosine"]["min_lr_ratio"]))
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ConfigValueError(f"scheduler_options.min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    if name == "cosine":
        warmup = max(0, min(config.warmup_epochs, config.num_epochs - 2))
    else:
        warmup, min_lr_ratio = max(0, min(config.warmup_epochs, config.num_epochs - 1)), 1.0
    if warmup < config.warmup_epochs:  # a short first try (trainer.num_epochs=1) just works
        log.info(
            "warmup shortened from %d to %d epoch(s) for a %d-epoch run",
            config.warmup_epochs,
            warmup,
            config.num_epochs,
        )
    return LambdaLR(optimizer, _warmup_cosine_factor(config.num_epochs, warmup, min_lr_ratio)), False


def _warmup_cosine_factor(num_epochs: int, warmup_epochs: int, min_lr_ratio: float) -> Callable[[int], float]:
    """Multiplier of the base lr for epoch ``e`` (formula in the module docstring).

    A plain closure, not a callable object, so LambdaLR does not store it in its state
    dict: a run resumed with a larger num_epochs follows the new schedule.
    """
    last = num_epochs - 1
    warmup = max(0, warmup_epochs)

    def factor(epoch: int) -> float:
        if epoch < warmup:
            return (epoch + 1) / (warmup + 1)
        span = last - warmup
        t = min(1.0, (epoch - warmup) / span) if span > 0 else 0.0
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))

    return factor


def _onecycle(
    optimizer: Optimizer, config: TrainingConfig, steps_per_epoch: int, options: Dict[str, Any]
) -> OneCycleLR:
    optimizer_steps = math.ceil(steps_per_epoch / max(1, config.grad_accum_steps))
    if optimizer_steps < 1:
        raise ConfigValueError(f"onecycle needs at least one batch per epoch, got steps_per_epoch={steps_per_epoch}")
    warmup, epochs = config.warmup_epochs, config.num_epochs
    if warmup >= epochs:
        log.info("warmup of %d epoch(s) >= a %d-epoch run: onecycle rises over 30%% of it", warmup, epochs)
    has_momentum = "betas" in optimizer.defaults or optimizer.defaults.get("momentum", 0) > 0
    kwargs: Dict[str, Any] = {
        "pct_start": warmup / epochs if 0 < warmup < epochs else 0.3,
        "anneal_strategy": "linear",
        "cycle_momentum": has_momentum,
        **options,
    }
    # one peak per param group: finetune.lr_multipliers gives groups their own factor of the lr
    max_lr = [config.learning_rate * float(group.get("lr_multiplier", 1.0)) for group in optimizer.param_groups]
    return HoldingOneCycleLR(optimizer, max_lr=max_lr, total_steps=epochs * optimizer_steps, **kwargs)


class HoldingOneCycleLR(OneCycleLR):
    """OneCycleLR that holds its final lr and momentum once ``total_steps`` is reached.

    Stepping after each of the ``total_steps`` optimizer steps makes the last
    ``step()`` compute a rate for a step that never runs; plain OneCycleLR extrapolates
    there (below ``min_lr``, even negative). Keeping the position exact (``last_epoch`` =
    optimizer steps taken) lets a resumed, longer run continue at the right step.
    """

    def get_lr(self) -> List[Union[float, Tensor]]:
        if self.last_epoch >= self.total_steps:
            return [group["lr"] for group in self.optimizer.param_groups]
        return super().get_lr()


def restore_scheduler(scheduler: LRScheduler, state: Mapping[str, Any]) -> None:
    """Move a freshly built ``scheduler`` to the position saved in ``state``.

    Every schedule here is a pure function of the step count, the optimizer's
    param-group values and the current config, so only the position (``last_epoch``,
    ``_step_count``, ``base_lrs``) is restored and the learning rate (and momentum) is
    recomputed for it: with an unchanged config this equals ``load_state_dict``; with a
    larger ``num_epochs`` the run continues on the new, longer schedule instead of
    failing past OneCycleLR's old ``total_steps``. Load the optimizer state first.
    """
    saved_position = int(state["last_epoch"])
    if isinstance(scheduler, OneCycleLR):  # a shorter new run: park at its end
        saved_position = min(saved_position, scheduler.total_steps)
    if saved_position <= 0:
        return  # nothing was stepped yet: the fresh scheduler is already there
    merged = dict(scheduler.state_dict())
    merged["base_lrs"] = list(state.get("base_lrs", merged["base_lrs"]))
    merged["last_epoch"] = saved_position - 1
    merged["_step_count"] = max(2, int(state.get("_step_count", 2)))
    scheduler.load_state_dict(merged)
    scheduler.step()  # last_epoch -> saved_position, writes lr (and momentum) to the optimizer
