"""Benchmark 6: memory of the default training run, and whether it grows.

Two child processes run ``python -m chordexp.run`` as a user would (Hydra, run folder,
logging, checkpoints), each recording its resident set size after every epoch (a
logging handler on the Trainer's end-of-epoch line) and its peak RSS at exit:

* peak: the default run (12,000 cached clips, default model and batch), cut to a few
  epochs: the cache is filled and an epoch, its validation and checkpoints have run,
  so later epochs can only add growth, which the second run measures;
* flat: the default model and batch on fewer clips for more epochs; growth is the RSS
  after the last epoch over the RSS after epoch 2 (epoch 1 still warms allocators).
"""

from __future__ import annotations

import logging
import resource
import runpy
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from chordexp.bench.common import Row, echo, ratio
from chordexp.bench.probe import run_probe
from chordexp.bench.sizes import Sizes

PEAK_BUDGET_MB = 2000.0  # "under 2 GB"
GROWTH_TARGET = 1.02  # RSS after the last epoch / after epoch 2


def rss_mb() -> float:
    """Current resident set size of this process in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError("no VmRSS in /proc/self/status")


class EpochRss(logging.Handler):
    """Samples RSS whenever the Trainer logs its end-of-epoch line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.samples: List[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("epoch ") and "val_loss" in str(record.msg):
            self.samples.append(rss_mb())


def probe(args: Mapping[str, Any]) -> Dict[str, Any]:
    """In the child: ``python -m chordexp.run OVERRIDES`` (run as that command runs it:
    an entry module is not imported) with RSS sampled per epoch."""
    handler = EpochRss()
    logging.getLogger("chordexp.training.trainer").addHandler(handler)
    sys.argv = ["chordexp.run", *args["overrides"]]
    try:
        runpy.run_module("chordexp.run", run_name="__main__", alter_sys=True)
    except SystemExit as exit:  # Hydra exits on errors; success returns
        if exit.code:
            raise
    return {
        "epoch_rss_mb": handler.samples,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6,
        "workers_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e6,
    }


def train_run(folder: Path, clips: Optional[int], epochs: int) -> Dict[str, Any]:
    """One default-config clip-mode training run in ``folder`` (``clips`` None: the default size)."""
    folder.mkdir(parents=True, exist_ok=True)
    overrides = ["data=synthetic", f"trainer.num_epochs={epochs}", f"hydra.run.dir={folder / 'run'}"]
    if clips is not None:
        overrides += [f"data.train_size={clips}", f"data.val_size={max(clips // 10, 8)}"]
    result = run_probe("train", {"overrides": overrides}, cwd=str(folder))
    if len(result["epoch_rss_mb"]) != epochs:
        raise RuntimeError(
            f"expected {epochs} per-epoch RSS samples, got {len(result['epoch_rss_mb'])}: "
            "has the Trainer's end-of-epoch log line changed?"
        )
    return result


def run(sizes: Sizes) -> List[Row]:
    with tempfile.TemporaryDirectory(prefix="chordexp-bench-") as tmp:
        size = "default size" if sizes.peak_clips is None else f"{sizes.peak_clips} clips"
        echo(f"memory: default run ({size}, {sizes.peak_epochs} epochs) in a child process")
        peak = train_run(Path(tmp) / "peak", sizes.peak_clips, sizes.peak_epochs)
        echo(f"memory: {sizes.flat_clips} clips, {sizes.flat_epochs} epochs, RSS after each epoch")
        flat = train_run(Path(tmp) / "flat", sizes.flat_clips, sizes.flat_epochs)
    series = flat["epoch_rss_mb"]
    growth = series[-1] - series[1]
    return [
        Row(
            benchmark="memory",
            measure=f"peak RSS, default run ({size})",
            value=peak["peak_rss_mb"],
            unit="MB",
            baseline_name="budget",
            baseline=PEAK_BUDGET_MB,
            baseline_unit="MB",
            ratio=ratio(peak["peak_rss_mb"], PEAK_BUDGET_MB),
            ratio_of="peak / 2 GB",
            target_op="<",
            target=1.0,
            note=(
                f"main process; its forked render workers peak at {peak['workers_peak_rss_mb']:.0f} MB RSS, "
                "most of it pages shared with the parent"
            ),
            samples={"epoch_rss_mb": peak["epoch_rss_mb"]},
        ),
        Row(
            benchmark="memory",
            measure=f"RSS after epoch {len(series)} ({sizes.flat_clips} clips)",
            value=series[-1],
            unit="MB",
            baseline_name="after epoch 2",
            baseline=series[1],
            baseline_unit="MB",
            ratio=ratio(series[-1], series[1]),
            ratio_of="last / epoch 2",
            target_op="<=",
            target=GROWTH_TARGET,
            note=f"growth {growth:+.1f} MB over {len(series) - 2} epochs; peak {flat['peak_rss_mb']:.0f} MB",
            samples={"epoch_rss_mb": series},
        ),
    ]
