"""The training guide's complete example runs as a user runs it: a subprocess, from another folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import torch


def run_example(module: str, args, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_train_minimal_trains_saves_resumes_and_scores(tmp_path):
    out = tmp_path / "run"
    args = ["--out", str(out), "--epochs", "2", "--train-size", "8", "--val-size", "4", "--batch-size", "4"]
    done = run_example("chordexp.training.example_usage", args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    assert "files: ['best.pt', 'epoch_001.pt', 'epoch_002.pt', 'last.pt'] + history.json" in done.stdout
    assert {p.name for p in (out / "checkpoints").iterdir()} == {"best.pt", "epoch_001.pt", "epoch_002.pt", "last.pt"}
    last = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    history = json.loads((out / "history.json").read_text())
    assert len(history["train_loss"]) == len(history["val_loss"]) == 2
    assert last["history"] == history  # the checkpoint the resume read is the run's last epoch
    printed = json.loads(done.stdout.split("history: ", 1)[1].splitlines()[0])
    assert printed["val_loss"] == [float(f"{v:.4g}") for v in history["val_loss"]]

    scored = re.search(r"best val_loss (\S+) at epoch (\d+); chord_type top-1 (\S+)% top-5 (\S+)%", done.stdout)
    assert scored, done.stdout
    best, epoch, top1, top5 = float(scored[1]), int(scored[2]), float(scored[3]), float(scored[4])
    val_loss = history["val_loss"]
    assert abs(best - min(val_loss)) < 1e-4 and epoch == 1 + val_loss.index(min(val_loss))
    assert 0 <= top1 <= top5 <= 100
    assert "resumed from" in done.stderr and "after epoch 2" in done.stderr  # the trainer's log, on stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written beside --out
