"""Fault injection: a training run SIGKILLed at random moments, resumed each time, ends
exactly where an uninterrupted run ends, and no checkpoint on disk is ever unreadable.

Kill moments are drawn from a seeded generator: most at a random batch of the first
epoch and a third after it started (``log_every=1`` logs every batch, so the position
does not depend on how busy the machine is) plus a random few milliseconds, which lands
kills mid-batch, in validation and in checkpoint writes; some at a random time during
start-up (Hydra, rendering the clips, loading ``last.pt``). After every kill every
``*.pt`` of the run must load with ``weights_only=True`` as a complete checkpoint and
every JSON file of the run must parse. The run is then resumed with
``python -m chordexp.run resume=<folder>``; at the end ``history.json``, ``last.pt``,
``best.pt`` and the periodic checkpoints' weights equal the uninterrupted run's.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import fault_files as ff
import pytest
import torch

from chordexp.training.checkpoint import load_checkpoint_file

EPOCHS = 6
BATCHES = 12  # data.train_size / data.batch_size
RUN = [
    "experiment=smoke",
    "data.train_size=96",
    "data.num_workers=1",
    f"trainer.num_epochs={EPOCHS}",
    "trainer.deterministic=true",
    "trainer.save_every=2",
    "trainer.log_every=1",
    "trainer.num_threads=1",
]
BATCH_LINE = re.compile(rf"epoch (\d+)/{EPOCHS} batch (\d+)/{BATCHES} ")


def _start(args: List[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "chordexp.run", *args],
        cwd=cwd,
        env=ff.cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("uninterrupted") / "run"
    done = ff.run_module("chordexp.run", [*RUN, f"hydra.run.dir={folder}"], cwd=folder.parent, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


def _position(log: Path, offset: int) -> int:
    """How far the run got since byte ``offset`` of its log: the largest global batch
    number ((epoch - 1) * BATCHES + batch) logged there, 0 before the first."""
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return 0
    return max(((int(e) - 1) * BATCHES + int(b) for e, b in BATCH_LINE.findall(text)), default=0)


def _log_size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


def _assert_everything_on_disk_is_readable(folder: Path) -> int:
    """Every checkpoint loads whole, every JSON parses; returns the epoch of last.pt (0: none)."""
    epochs = {}
    for path in sorted((folder / "checkpoints").glob("*.pt")):
        state = load_checkpoint_file(path)  # weights_only=True, all keys present, or CheckpointError
        epochs[path.name] = int(state["epoch"])
    for path in folder.glob("*.json"):
        json.loads(path.read_text())
    return epochs.get("last.pt", 0)


def _kill(process: subprocess.Popen, log: Path, offset: int, position: int, startup: float, extra: float) -> str:
    """SIGKILL ``process`` ``startup`` s after its start (if > 0), else ``extra`` s after it
    logged global batch ``position``; returns where, for failure messages."""
    if startup > 0:
        time.sleep(startup)
        moment = f"start-up + {startup:.2f} s"
    else:
        deadline = time.monotonic() + 300
        while _position(log, offset) < position and process.poll() is None:
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.005)
        time.sleep(extra)
        moment = f"batch {position} + {extra * 1000:.0f} ms"
    ff.kill_process(process)
    return moment


def _weights(path: Path) -> Dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def _kill_and_resume(kills: int, seed: int, tmp_path: Path, reference: Path) -> None:
    rng = random.Random(seed)
    folder = tmp_path / "run"
    log = folder / "run.log"
    args = [*RUN, f"hydra.run.dir={folder}"]
    # Where the kills land: global batch positions spread over the whole run, in order (a
    # resumed run redoes its partial epoch, so it reaches each position again).
    positions = iter(sorted(rng.sample(range(1, (EPOCHS - 1) * BATCHES + BATCHES // 2), kills)))
    position = next(positions)
    history: List[str] = []
    while len(history) < kills:
        offset = _log_size(log)
        process = _start(args, tmp_path)
        startup = rng.uniform(0.2, 3.0) if history and rng.random() < 0.25 else 0.0
        moment = _kill(process, log, offset, position, startup, rng.uniform(0.0, 0.25))
        assert process.returncode == -9, f"not killed ({moment}): {process.stderr.read()[-3000:]}"
        epoch = _assert_everything_on_disk_is_readable(folder)
        history.append(f"{moment} -> last.pt at epoch {epoch}")
        if not startup:
            position = next(positions, position)
        if (folder / ".hydra" / "config.yaml").is_file():  # a run folder now: resume it, as a user would
            args = [f"resume={folder}"]
    assert 0 < _assert_everything_on_disk_is_readable(folder) < EPOCHS, history
    print(f"{kills} kills, each resumed:", *history, sep="\n  ")  # shown with pytest -s

    done = ff.run_module("chordexp.run", [f"resume={folder}"], cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((folder / "history.json").read_text()) == json.loads((reference / "history.json").read_text())
    names = sorted(p.name for p in (reference / "checkpoints").glob("*.pt"))
    assert names == sorted(p.name for p in (folder / "checkpoints").glob("*.pt"))
    for name in names:  # last.pt, best.pt and the periodic ones: the same weights and epoch
        ours, theirs = _weights(folder / "checkpoints" / name), _weights(reference / "checkpoints" / name)
        assert all(torch.equal(ours[key], theirs[key]) for key in theirs), (name, history)
    metrics = json.loads((folder / "metrics.json").read_text())
    expected = json.loads((reference / "metrics.json").read_text())
    assert {k: v for k, v in metrics.items() if k != "wall_time_s"} == {
        k: v for k, v in expected.items() if k != "wall_time_s"
    }
    assert not list((folder / "checkpoints").glob(".*.tmp")), "a killed writer's temporary file was left behind"
    resumes = len(json.loads((folder / "environment.json").read_text()).get("resumes", []))
    assert resumes >= 1, history


def test_three_random_kills_then_resume_equal_an_uninterrupted_run(tmp_path, uninterrupted):
    _kill_and_resume(kills=3, seed=3, tmp_path=tmp_path, reference=uninterrupted)


@pytest.mark.slow
def test_twelve_random_kills_then_resume_equal_an_uninterrupted_run(tmp_path, uninterrupted):
    _kill_and_resume(kills=12, seed=12, tmp_path=tmp_path, reference=uninterrupted)
