"""DDP with torchrun on CPU (gloo): one run folder, the single-process history, clean stops.

Tolerance: losses of a 2-process run equal those of a 1-process run with the same global
batch and seed to within 1e-5 relative (float summation order; the train losses come
out bit-identical here), accuracies exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest
import torch
from torch import nn
from torch.utils.data import RandomSampler

from chordexp.data.samplers import ShardedRandomSampler, ShardedSequentialSampler

SMOKE = ["experiment=smoke", "trainer.deterministic=true"]
LONGER = [*SMOKE, "data.train_size=96", "trainer.num_epochs=4", "trainer.save_every=0"]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def _torchrun(args: List[str]) -> List[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "chordexp.run",
        *args,
    ]


def _history(folder: Path) -> dict:
    return json.loads((folder / "history.json").read_text())


def _assert_same_history(ddp: dict, single: dict) -> None:
    assert list(ddp) == list(single)
    for key in single:
        if key.endswith("_acc"):
            assert ddp[key] == single[key], key
        else:
            assert ddp[key] == pytest.approx(single[key], rel=1e-5), key


def test_sharded_samplers_split_each_global_batch_between_ranks():
    data = list(range(24))
    single = list(RandomSampler(data, generator=torch.Generator().manual_seed(3)))
    shards = [list(ShardedRandomSampler(data, torch.Generator().manual_seed(3), rank, 2)) for rank in range(2)]
    for k in range(3):  # global batch 8 = 4 per rank
        assert sorted(shards[0][4 * k : 4 * k + 4] + shards[1][4 * k : 4 * k + 4]) == sorted(single[8 * k : 8 * k + 8])
    uneven = [list(ShardedRandomSampler(list(range(5)), torch.Generator().manual_seed(0), r, 2)) for r in range(2)]
    assert len(uneven[0]) == len(uneven[1]) == 3 and set(uneven[0] + uneven[1]) == set(range(5))
    val = [list(ShardedSequentialSampler(list(range(5)), r, 2)) for r in range(2)]
    assert val == [[0, 2, 4], [1, 3]] and len(ShardedSequentialSampler(list(range(5)), 1, 2)) == 2


def test_torchrun_two_processes_match_one_process_and_leave_one_run_folder(tmp_path, run_cli):
    single = run_cli([*SMOKE, f"hydra.run.dir={tmp_path / 'single'}"], cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run(_torchrun(SMOKE), cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, (ddp.stdout + ddp.stderr)[-3000:]
    folders = [p for p in (tmp_path / "outputs").glob("*/*") if p.is_dir()]
    assert len(folders) == 1, folders  # rank 0 chose it, rank 1 used it
    folder = folders[0]
    _assert_same_history(_history(folder), _history(tmp_path / "single"))
    record = json.loads((folder / "environment.json").read_text())
    assert record["distributed"] == {"world_size": 2, "backend": "gloo"}
    log = (folder / "run.log").read_text()
    assert log.count("epoch 3/3 train_loss") == 1  # one writer
    # the DDP checkpoint serves a single process: prediction and training alike
    from chordexp.inference import ChordRecognizer

    recognizer = ChordRecognizer.from_checkpoint(folder / "checkpoints" / "best.pt")
    assert not any(
        isinstance(m, nn.SyncBatchNorm) or type(m).__name__ == "GlobalBatchNorm2d" for m in recognizer.model.modules()
    )
    # a finished run resumed with a larger num_epochs trains on (here: a DDP run, in one process)
    resumed = run_cli([f"resume={folder}", "trainer.num_epochs=4"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(_history(folder)["val_loss"]) == 4


def _saved_epoch(last: Path) -> int:
    try:
        return int(torch.load(last, weights_only=True)["epoch"])
    except (OSError, RuntimeError, EOFError, KeyError):
        return 0


def _worker_pids(parent: int) -> List[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc to find torchrun's workers")
def test_sigterm_on_one_rank_stops_every_rank_and_the_run_resumes_under_ddp(tmp_path, run_cli):
    folder = tmp_path / "ddp"
    job = subprocess.Popen(
        _torchrun([*LONGER, f"hydra.run.dir={folder}"]),
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 240
    while _saved_epoch(folder / "checkpoints" / "last.pt") < 1:
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()[0][-3000:]
        time.sleep(0.02)
    workers = _worker_pids(job.pid)
    assert len(workers) == 2
    os.kill(workers[-1], signal.SIGTERM)  # one rank only, as a node's pre-emption might
    output, _ = job.communicate(timeout=120)
    assert job.returncode != 0, output[-3000:]
    log = (folder / "run.log").read_text()
    assert "continue with: python -m chordexp.run resume=" in log, log[-3000:]
    saved = _saved_epoch(folder / "checkpoints" / "last.pt")
    assert 1 <= saved < 4 and len(_history(folder)["val_loss"]) == saved
    assert not list((folder / "checkpoints").glob("*.tmp*"))  # no half-written file left

    resumed = subprocess.run(
        _torchrun([f"resume={folder}"]), cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    reference = run_cli([*LONGER, f"hydra.run.dir={tmp_path / 'single'}"], cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr[-2000:]
    _assert_same_history(_history(folder), _history(tmp_path / "single"))


def _global_bn_worker(rank: int, port: int, out: str) -> None:
    """Rank ``rank`` of 2: its half of a batch through GlobalBatchNorm2d, gradients summed."""
    import torch.distributed as dist

    from chordexp.training.distributed import global_batch_norm

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    x, w, bn = _bn_case()
    global_batch_norm(bn, torch.device("cpu"))
    half = x[rank::2].clone().requires_grad_(True)
    (bn(half) * w[rank::2]).sum().backward()
    grads = torch.cat([bn.weight.grad, bn.bias.grad])
    dist.all_reduce(grads)
    x_grad = torch.zeros_like(x)
    x_grad[rank::2] = half.grad
    dist.all_reduce(x_grad)
    if rank == 0:
        torch.save({"params": grads, "x": x_grad, "mean": bn.running_mean, "var": bn.running_var}, out)
    dist.destroy_process_group()


def _bn_case():
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(8, 3, 5, 4, generator=g), torch.randn(8, 3, 5, 4, generator=g)
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(3, generator=g) + 0.5)
        bn.bias.copy_(torch.rand(3, generator=g))
    return x, w, bn


def test_global_batch_norm_over_two_ranks_equals_batch_norm_over_the_whole_batch(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "ddp.pt"
    mp.spawn(_global_bn_worker, args=(port, str(out)), nprocs=2)
    x, w, bn = _bn_case()
    x.requires_grad_(True)
    (bn(x) * w).sum().backward()
    got = torch.load(out, weights_only=True)
    assert torch.allclose(got["params"], torch.cat([bn.weight.grad, bn.bias.grad]), atol=1e-5)
    assert torch.allclose(got["x"], x.grad, atol=1e-5)
    assert torch.allclose(got["mean"], bn.running_mean, atol=1e-6)
    assert torch.allclose(got["var"], bn.running_var, atol=1e-6)
