"""Benchmark 1: what ``Trainer.train()`` costs over a minimal hand-written loop.

Same default model (fresh copy of the same initial weights each run), same in-memory
batches, batch size, optimizer, scheduler and number of steps; the two are alternated
and repeated, the ratio is the median of the per-pair ratios. The Trainer runs with its
defaults: one validation batch, ``last.pt``/``best.pt`` (and periodic) checkpoints,
history and INFO logging to a file (as in a run folder) all count as Trainer time.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import tempfile
from pathlib import Path
from typing import Iterator, List

from chordexp.bench.common import Row, alternate, echo, median, paired_ratio, ratio, timed
from chordexp.bench.defaults import compose_default, default_components
from chordexp.bench.plainloop import plain_train, synthetic_batches
from chordexp.bench.sizes import Sizes
from chordexp.training import Trainer
from chordexp.training.schedulers import create_scheduler

TARGET = 1.03
NOISY = 1.1  # pair ratios further apart than this: the machine was not quiet


@contextlib.contextmanager
def run_logging(path: Path) -> Iterator[None]:
    """INFO records of ``chordexp`` into ``path``, as a run's ``run.log`` gets them."""
    logger = logging.getLogger("chordexp")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


def spread(trainer_times: List[float], plain_times: List[float]) -> str:
    """How far the pairs disagree: on a machine shared with other jobs, wall times of
    whole runs swing, and a wide spread says the median is not to be trusted."""
    pairs = [ratio(t, p) for t, p in zip(trainer_times, plain_times)]
    noisy = "NOISY (other load on the machine): " if max(pairs) > NOISY * min(pairs) else ""
    return (
        f"{noisy}pair ratios {min(pairs):.3f}..{max(pairs):.3f}, "
        f"fastest run of each {ratio(min(trainer_times), min(plain_times)):.3f}"
    )


def run(sizes: Sizes) -> List[Row]:
    config, parts = default_components(f"trainer.num_epochs={sizes.trainer_epochs}")
    batch_size = sizes.batch_size or config.batch_size
    batches = synthetic_batches(sizes.trainer_steps, batch_size)
    template = parts["model"]
    criterion, make_optimizer = parts["criterion"], parts["optimizer_factory"]

    with tempfile.TemporaryDirectory(prefix="chordexp-bench-") as tmp:
        config = dataclasses.replace(config, checkpoint_dir=str(Path(tmp) / "checkpoints"))

        def with_trainer(steps: int = len(batches)) -> float:
            trainer = Trainer(
                model=copy.deepcopy(template),
                train_loader=batches[:steps],
                val_loader=batches[:1],
                config=config,
                criterion=criterion,
                optimizer_factory=make_optimizer,
            )
            return timed(trainer.train)

        def plain_loop(steps: int = len(batches)) -> float:
            model = copy.deepcopy(template)
            optimizer = make_optimizer(model.parameters())
            scheduler, per_batch = create_scheduler(optimizer, config, steps)
            return timed(
                lambda: plain_train(
                    model,
                    criterion,
                    optimizer,
                    scheduler,
                    per_batch,
                    batches[:steps],
                    config.num_epochs,
                    config.gradient_clip,
                )
            )

        with run_logging(Path(tmp) / "run.log"):
            echo(
                f"trainer: warm-up, then {sizes.repeats} alternated runs of "
                f"{config.num_epochs} x {len(batches)} steps (batch {batch_size}) each way"
            )
            with_trainer(min(len(batches), 3)), plain_loop(min(len(batches), 3))  # first-call costs fall here
            trainer_times, plain_times = alternate(with_trainer, plain_loop, sizes.repeats)

    trainer_s, plain_s = median(trainer_times), median(plain_times)
    steps = config.num_epochs * len(batches)
    step_s = plain_s / steps
    per_epoch = (trainer_s - plain_s) / config.num_epochs  # what the Trainer adds once per epoch (mostly)
    data = compose_default().data
    default_steps = math.ceil(data.train_size / data.batch_size)
    projected = 1.0 + per_epoch / (default_steps * step_s)
    return [
        Row(
            benchmark="trainer",
            measure=f"Trainer.train(), {steps} steps",
            value=trainer_s,
            unit="s",
            baseline_name="plain loop",
            baseline=plain_s,
            baseline_unit="s",
            ratio=paired_ratio(trainer_times, plain_times),
            ratio_of="Trainer / plain",
            target_op="<=",
            target=TARGET,
            note=(
                f"{config.num_epochs} epochs x {len(batches)} steps, batch {batch_size}, default "
                f"model/optimizer/scheduler; 1 validation batch per epoch; plain step "
                f"{1000 * step_s:.0f} ms; {spread(trainer_times, plain_times)}"
            ),
            samples={"trainer_s": trainer_times, "plain_s": plain_times},
        ),
        Row(
            benchmark="trainer",
            measure=f"projected to the default epoch ({default_steps} steps)",
            value=per_epoch,
            unit="s/epoch",
            baseline_name="plain epoch",
            baseline=default_steps * step_s,
            baseline_unit="s",
            ratio=projected,
            ratio_of="Trainer / plain",
            target_op="<=",
            target=TARGET,
            note="the Trainer's extra time per epoch of the row above over a default-length plain epoch",
        ),
    ]
