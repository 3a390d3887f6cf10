"""The GPU benchmark's code path, run on the CPU in quick mode (no GPU in CI), and its
clean skip without a GPU. (``torch.compile`` is left to the GPU run: compiling on the
CPU takes minutes.)"""

import math

import pytest
import torch

from chordexp.bench import gpu
from chordexp.bench.sizes import sizes_for


def check(rows, modes, tasks):
    steps = [row for row in rows if "training step" in row.measure]
    assert [(row.measure.split(" ")[0], row.measure.split(", ")[1]) for row in steps] == [
        (task, mode) for task in tasks for mode in modes
    ]
    assert all(row.value > 0 and math.isfinite(row.ratio) for row in rows)
    assert all("samples/s" in row.note and "peak" in row.note for row in steps)
    assert rows[-1].ratio_of == "x real time" and rows[-1].ratio > 0


def test_the_gpu_profile_runs_on_any_device_in_quick_mode():
    rows = gpu.measure("cpu", quick=True, repeats=1, modes=("fp32", "channels_last"), tasks=("clip",))
    check(rows, ("fp32", "channels_last"), ("clip",))


@pytest.mark.slow
def test_every_mode_but_compile_in_both_tasks():
    modes = tuple(mode for mode in gpu.MODES if mode != "compile")
    check(gpu.measure("cpu", quick=True, repeats=1, modes=modes, tasks=gpu.TASKS), modes, gpu.TASKS)


def test_without_a_gpu_it_says_so_in_one_line_and_adds_no_rows(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu.run(sizes_for(quick=True)) == []
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU" in lines[0]
