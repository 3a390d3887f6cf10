"""Benchmark 2: can the synthetic generator feed training?

Clips per second generated on one core (calling thread pinned, torch at one thread,
CPU time of that thread) at the default clip (1 s, 44.1 kHz), for the realistic generator (the default,
``realism=rich``) and the plain one, against what training consumes: samples per
second of a training step of the default model and batch on all cores. A DataLoader
worker is one core, so ``num_workers=1`` keeps up when generation >= consumption; the
target asks 5x headroom.
"""

from __future__ import annotations

import copy
from typing import List

from chordexp.bench.common import Row, cpu_timed, echo, median, one_core, ratio, timed
from chordexp.bench.defaults import default_batch_size, default_components
from chordexp.bench.plainloop import plain_step, synthetic_batches
from chordexp.bench.sizes import Sizes
from chordexp.data import SyntheticChordDataset

HEADROOM = 5.0  # generation on one core / consumption on all cores
PLAIN_TARGET = 1000.0  # clips/s/core for realism=plain


def generation_rates(realism: str, clips: int, repeats: int) -> List[float]:
    """Clips/s on one core, one figure per repetition over the same ``clips`` items."""
    dataset = SyntheticChordDataset(max(clips, 1), split="train", realism=realism)
    dataset[0]  # loads the SoundFont and the noise bank: once per worker, not per clip
    with one_core():
        return [clips / cpu_timed(lambda: [dataset[i] for i in range(clips)]) for _ in range(repeats)]


def step_seconds(batch_size: int, steps: int) -> List[float]:
    """Seconds of each of ``steps`` training steps (after 2 warm-up steps) of the
    default model, loss and optimizer on all of torch's threads."""
    config, parts = default_components()
    model = copy.deepcopy(parts["model"]).train()
    optimizer = parts["optimizer_factory"](model.parameters())
    batch = synthetic_batches(1, batch_size or config.batch_size)[0]
    step = lambda: plain_step(model, parts["criterion"], optimizer, batch, config.gradient_clip)  # noqa: E731
    for _ in range(2):
        step()
    return [timed(step) for _ in range(steps)]


def run(sizes: Sizes) -> List[Row]:
    batch_size = sizes.batch_size or default_batch_size()
    echo(f"data: training consumption ({sizes.consumption_steps} steps, batch {batch_size})")
    steps = step_seconds(batch_size, sizes.consumption_steps)
    consumption = batch_size / median(steps)
    echo(f"data: realism=rich, {sizes.repeats} x {sizes.rich_clips} clips on one core")
    rich = generation_rates("rich", sizes.rich_clips, sizes.repeats)
    echo(f"data: realism=plain, {sizes.repeats} x {sizes.plain_clips} clips on one core")
    plain = generation_rates("plain", sizes.plain_clips, sizes.repeats)
    rich_rate, plain_rate = median(rich), median(plain)
    return [
        Row(
            benchmark="data",
            measure="realism=rich (default) clips/s, one core",
            value=rich_rate,
            unit="clips/s",
            baseline_name="training consumption",
            baseline=consumption,
            baseline_unit="clips/s",
            ratio=ratio(rich_rate, consumption),
            ratio_of="generated / consumed",
            target_op=">=",
            target=HEADROOM,
            note=f"training step {1000 * median(steps):.0f} ms at batch {batch_size}, all cores",
            samples={"clips_per_s": rich, "step_s": steps},
        ),
        Row(
            benchmark="data",
            measure="realism=plain clips/s, one core",
            value=plain_rate,
            unit="clips/s",
            baseline_name="target",
            baseline=PLAIN_TARGET,
            baseline_unit="clips/s",
            ratio=ratio(plain_rate, PLAIN_TARGET),
            ratio_of="generated / 1000",
            target_op=">=",
            target=1.0,
            note=f"{ratio(plain_rate, consumption):.1f}x training consumption",
            samples={"clips_per_s": plain},
        ),
    ]
