"""LR schedules against hand-computed values of the formulas in schedulers.py."""

from __future__ import annotations

from typing import List, Tuple

import pytest
import torch

from chordexp.config import TrainingConfig
from chordexp.training.schedulers import create_scheduler, restore_scheduler


def _optimizer(kind: str = "sgd", **kwargs) -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(2))]
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=1.0, **kwargs)
    return torch.optim.SGD(params, lr=1.0, **kwargs)


def _run(optimizer, scheduler, steps: int) -> Tuple[List[float], List[float]]:
    """LR (and momentum / beta1) in effect at each of ``steps`` consecutive steps."""
    lrs, momenta = [], []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        lrs.append(group["lr"])
        momenta.append(group["betas"][0] if "betas" in group else group.get("momentum", 0.0))
        optimizer.step()
        scheduler.step()
    return lrs, momenta


def _config(**kwargs) -> TrainingConfig:
    return TrainingConfig(learning_rate=1.0, **kwargs)


def test_cosine_warms_up_linearly_then_decays_to_min_ratio_at_last_epoch():
    opt = _optimizer()
    sched, per_batch = create_scheduler(opt, _config(scheduler="cosine", num_epochs=5, warmup_epochs=2), 7)
    lrs, _ = _run(opt, sched, 5)
    assert per_batch is False
    # e<W: (e+1)/(W+1); then t=(e-W)/(E-1-W): 0, 0.5, 1 -> 1, 0.01+0.99*0.5, 0.01
    assert lrs == pytest.approx([1 / 3, 2 / 3, 1.0, 0.505, 0.01])


def test_cosine_without_warmup_starts_at_lr_and_honours_min_lr_ratio():
    opt = _optimizer()
    cfg = _config(scheduler="cosine", num_epochs=3, warmup_epochs=0, scheduler_options={"min_lr_ratio": 0.1})
    sched, _ = create_scheduler(opt, cfg, 1)
    lrs, _ = _run(opt, sched, 4)
    assert lrs == pytest.approx([1.0, 0.55, 0.1, 0.1])  # past the end it stays at the minimum


def test_cosine_single_epoch_runs_at_lr_and_warmup_is_capped_so_last_epoch_is_minimum():
    opt = _optimizer()
    sched, _ = create_scheduler(opt, _config(scheduler="cosine", num_epochs=1, warmup_epochs=5), 3)
    assert _run(opt, sched, 1)[0] == pytest.approx([1.0])
    opt = _optimizer()
    sched, _ = create_scheduler(opt, _config(scheduler="cosine", num_epochs=2, warmup_epochs=5), 3)
    assert _run(opt, sched, 2)[0] == pytest.approx([1.0, 0.01])  # W capped to E-2 = 0
    opt = _optimizer()
    sched, _ = create_scheduler(opt, _config(scheduler="cosine", num_epochs=4, warmup_epochs=9), 3)
    assert _run(opt, sched, 4)[0] == pytest.approx([1 / 3, 2 / 3, 1.0, 0.01])  # W capped to 2


def test_constant_with_and_without_warmup():
    opt = _optimizer()
    sched, per_batch = create_scheduler(opt, _config(scheduler="constant", num_epochs=6, warmup_epochs=3), 2)
    assert per_batch is False
    assert _run(opt, sched, 6)[0] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    opt = _optimizer()
    sched, _ = create_scheduler(opt, _config(scheduler="constant", num_epochs=2, warmup_epochs=5), 2)
    assert _run(opt, sched, 2)[0] == pytest.approx([0.5, 1.0])  # W capped to E-1 = 1
    opt = _optimizer()
    sched, _ = create_scheduler(opt, _config(scheduler="constant", num_epochs=3, warmup_epochs=0), 2)
    assert _run(opt, sched, 3)[0] == pytest.approx([1.0, 1.0, 1.0])


def test_onecycle_lr_and_beta1_follow_linear_one_cycle():
    opt = _optimizer("adamw")
    cfg = _config(scheduler="onecycle", num_epochs=4, warmup_epochs=1)
    sched, per_batch = create_scheduler(opt, cfg, 4)
    assert per_batch is True and sched.total_steps == 16  # pct_start = 1/4 -> peak at step 3
    lrs, betas = _run(opt, sched, 16)
    # start max_lr/25, peak 1.0 at step 3, halfway down at step 9, min (0.04/1e4) at step 15
    assert [lrs[i] for i in (0, 3, 9, 15)] == pytest.approx([0.04, 1.0, 0.500002, 4e-6])
    assert [betas[i] for i in (0, 3, 9, 15)] == pytest.approx([0.95, 0.85, 0.90, 0.95])
    lrs, betas = _run(opt, sched, 3)  # past the end it holds the final values (torch would extrapolate)
    assert lrs == pytest.approx([4e-6] * 3) and betas == pytest.approx([0.95] * 3)


def test_onecycle_counts_optimizer_steps_with_grad_accumulation_and_takes_options():
    opt = _optimizer("adamw")
    cfg = _config(
        scheduler="onecycle",
        num_epochs=2,
        warmup_epochs=0,
        grad_accum_steps=3,
        scheduler_options={"div_factor": 10.0, "final_div_factor": 100.0, "base_momentum": 0.8, "max_momentum": 0.9},
    )
    sched, _ = create_scheduler(opt, cfg, 10)  # ceil(10 / 3) = 4 optimizer steps per epoch
    assert sched.total_steps == 8
    lrs, betas = _run(opt, sched, 8)  # pct_start 0.3 -> peak at step 1.4
    assert lrs[0] == pytest.approx(0.1) and lrs[-1] == pytest.approx(0.001)
    assert betas[0] == pytest.approx(0.9) and min(betas) >= 0.8 - 1e-9


def test_onecycle_cycles_sgd_momentum_only_when_sgd_has_momentum():
    plain = _optimizer("sgd")
    sched, _ = create_scheduler(plain, _config(scheduler="onecycle", num_epochs=2, warmup_epochs=1), 2)
    assert sched.cycle_momentum is False
    assert set(_run(plain, sched, 4)[1]) == {0.0}
    heavy = _optimizer("sgd", momentum=0.9)
    sched, _ = create_scheduler(heavy, _config(scheduler="onecycle", num_epochs=2, warmup_epochs=1), 2)
    momenta = _run(heavy, sched, 4)[1]
    assert momenta[0] == pytest.approx(0.95) and momenta[1] == pytest.approx(0.85)


def test_unknown_scheduler_or_option_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown scheduler 'step'; valid: cosine, onecycle, constant"):
        create_scheduler(_optimizer(), _config(scheduler="step"), 1)
    with pytest.raises(ValueError, match=r"\['gamma'\].*'cosine'.*valid: min_lr_ratio"):
        create_scheduler(_optimizer(), _config(scheduler="cosine", scheduler_options={"gamma": 0.5}), 1)
    with pytest.raises(ValueError, match="valid: none"):
        create_scheduler(_optimizer(), _config(scheduler="constant", scheduler_options={"x": 1}), 1)


def test_restore_continues_onecycle_on_a_longer_schedule():
    opt = _optimizer("adamw")
    short, _ = create_scheduler(opt, _config(scheduler="onecycle", num_epochs=2, warmup_epochs=1), 2)
    _run(opt, short, 4)  # the whole short run: last_epoch = total_steps = 4
    saved_opt, saved_sched = opt.state_dict(), short.state_dict()

    fresh = _optimizer("adamw")
    longer, _ = create_scheduler(fresh, _config(scheduler="onecycle", num_epochs=4, warmup_epochs=1), 2)
    fresh.load_state_dict(saved_opt)
    restore_scheduler(longer, saved_sched)
    assert longer.last_epoch == 4
    lrs, _ = _run(fresh, longer, 4)  # would raise 'Tried to step' on the short schedule
    assert lrs[-1] == pytest.approx(4e-6)  # the new schedule's minimum at its last step (7 of 8)


@pytest.mark.parametrize("scheduler", ["cosine", "constant", "onecycle"])
def test_a_run_shorter_than_its_warmup_starts_with_the_warmup_shortened(scheduler, caplog):
    """``python -m chordexp.run trainer.num_epochs=1`` (the most common first try) was refused
    because the default warmup is one epoch; it now runs, and says what it changed."""
    import logging

    import torch

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with caplog.at_level(logging.INFO, logger="chordexp.training.schedulers"):
        sched, _ = create_scheduler(opt, _config(scheduler=scheduler, num_epochs=1, warmup_epochs=5), 2)
    assert "warmup" in caplog.text and "1-epoch run" in caplog.text
    assert opt.param_groups[0]["lr"] > 0


def test_the_onecycle_defaults_a_config_shows_are_torchs():
    import inspect

    from torch.optim.lr_scheduler import OneCycleLR

    from chordexp.config import SCHEDULER_DEFAULTS

    parameters = inspect.signature(OneCycleLR).parameters
    assert {key: parameters[key].default for key in SCHEDULER_DEFAULTS["onecycle"]} == SCHEDULER_DEFAULTS["onecycle"]
