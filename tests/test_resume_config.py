"""``resume=`` refuses a config that differs from its checkpoint's (issue 12, item 8).

A hand-edited ``.hydra/config.yaml`` (or an override) would be half applied on resume:
the batch size changes, the learning rate does not (the optimizer state brings it back).
It is refused in one line before Hydra writes anything; only ``RESUMABLE_KEYS`` (e.g.
``trainer.num_epochs``, to train on) may change.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Dict

import pytest
import torch

from chordexp.experiment.resume_check import (
    RESUMABLE_KEYS,
    ResumeConfigError,
    check_resume_before_start,
    check_resume_config,
    config_differences,
)

SMOKE = ["experiment=smoke", "trainer.num_epochs=2", "trainer.num_threads=1"]


def _tree(folder: Path) -> Dict[str, str]:
    """Every path under ``folder`` (folders too) -> sha256 of its bytes ('dir' for a folder)."""
    tree = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            tree[os.path.relpath(os.path.join(root, name), folder)] = "dir"
        for name in files:
            path = Path(root, name)
            tree[os.path.relpath(path, folder)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return tree


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, run_cli) -> Path:
    """A finished two-epoch smoke run (its last.pt holds the run config)."""
    folder = tmp_path_factory.mktemp("finished") / "run"
    done = run_cli([*SMOKE, f"hydra.run.dir={folder}"], cwd=folder.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    folder = tmp_path / "run"
    shutil.copytree(finished_run, folder)
    return folder


def _edit_saved_config(folder: Path, old: str, new: str) -> None:
    path = folder / ".hydra" / "config.yaml"
    text = path.read_text()
    assert len(re.findall(old, text, flags=re.MULTILINE)) == 1, old
    path.write_text(re.sub(old, new, text, flags=re.MULTILINE))


@pytest.mark.parametrize(
    "old, new, named",
    [
        (r"^  lr: .*$", "  lr: 0.5", r"optimizer\.lr \([\d.e-]+ in last\.pt, now 0\.5\)"),
        (r"^  batch_size: 8$", "  batch_size: 4", r"data\.batch_size \(8 in last\.pt, now 4\)"),
    ],
)
def test_an_edited_saved_config_is_refused_in_one_line_and_nothing_changes(run_copy, run_cli, old, new, named):
    _edit_saved_config(run_copy, old, new)
    before = _tree(run_copy)
    done = run_cli([f"resume={run_copy}"], cwd=run_copy.parent)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(
        f"error: resume={run_copy}: the config (its .hydra/config.yaml with this command's "
        f"overrides) differs from the one {run_copy / 'checkpoints' / 'last.pt'} was trained "
        f"with: "
    )
    assert re.search(named, lines[0]), lines[0]
    assert f"restore {run_copy / '.hydra' / 'config.yaml'}" in lines[0] and f"rerun={run_copy}" in lines[0]
    assert _tree(run_copy) == before  # no .hydra/resume_1, no lock, no log line, no checkpoint written


def test_an_override_that_would_be_half_applied_is_refused_too(run_copy, run_cli):
    before = _tree(run_copy)
    done = run_cli([f"resume={run_copy}", "optimizer.lr=0.5", "trainer.num_epochs=3"], cwd=run_copy.parent)
    assert done.returncode == 2
    assert re.search(
        r"^error: resume=\S+: the config .* optimizer\.lr \([\d.e-]+ in last\.pt, now 0\.5\); ", done.stderr
    ), done.stderr
    assert "trainer.num_epochs (" not in done.stderr  # allowed to change: not named
    assert _tree(run_copy) == before


def test_raising_num_epochs_on_the_command_line_still_resumes(run_copy, run_cli):
    done = run_cli([f"resume={run_copy}", "trainer.num_epochs=3"], cwd=run_copy.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(json.loads((run_copy / "history.json").read_text())["val_loss"]) == 3
    assert f"resumed from {run_copy / 'checkpoints' / 'last.pt'} after epoch 2" in (run_copy / "run.log").read_text()


def test_an_edited_checkpoint_dir_does_not_hide_the_checkpoint(run_copy, run_cli):
    """Pointing trainer.checkpoint_dir elsewhere would start over and rewrite the history."""
    _edit_saved_config(run_copy, r"^  checkpoint_dir: checkpoints$", "  checkpoint_dir: weights")
    before = _tree(run_copy)
    done = run_cli([f"resume={run_copy}"], cwd=run_copy.parent)
    assert done.returncode == 2
    assert re.search(r"trainer\.checkpoint_dir \(\"checkpoints\" in last\.pt, now \"weights\"\)", done.stderr)
    assert _tree(run_copy) == before


# ------------------------------------------------------------------ the rule, in-process
def test_differences_skip_the_resumable_keys_and_name_both_sides():
    trained = {
        "resume": None,
        "seed": 0,
        "optimizer": {"lr": 0.001},
        "trainer": {"num_epochs": 2, "device": "auto", "num_threads": 0, "log_every": 1},
        "data": {"batch_size": 8, "num_workers": 0},
        "eval_songs": None,
    }
    current = {
        "resume": "/r",
        "seed": 0,
        "optimizer": {"lr": 0.001, "extra": 1},
        "trainer": {"num_epochs": 9, "device": "cpu", "num_threads": 2, "log_every": 5},
        "data": {"batch_size": 4, "num_workers": 3},
        "eval_songs": "/songs",
    }
    differences = config_differences(trained, current)
    assert [key for key, *_ in differences] == ["data.batch_size", "optimizer.extra"]
    assert differences[0][1:] == (8, 4)
    assert set(RESUMABLE_KEYS) == {
        "resume",
        "trainer.num_epochs",
        "trainer.device",
        "trainer.num_threads",
        "trainer.log_every",
        "data.num_workers",
        "eval_songs",
        "logger",
        "optuna_trial",
        "optimizer.fused",
        "data.cache_dir",
        "data.dataset.cache_dir",
    }
    assert config_differences({"a": {"b": 1.0}, "t": True}, {"a": {"b": 1}, "t": True}) == []
    assert [k for k, *_ in config_differences({"t": True}, {"t": 1})] == ["t"]


def test_the_refusal_names_the_first_three_keys_and_counts_the_rest(tmp_path):
    trained = {f"k{i}": i for i in range(5)}
    with pytest.raises(ResumeConfigError) as caught:
        check_resume_config(
            tmp_path, tmp_path / "checkpoints" / "last.pt", trained, {f"k{i}": -i - 1 for i in range(5)}
        )
    message = str(caught.value)
    assert "\n" not in message
    assert "k0 (0 in last.pt, now -1), k1 (1 in last.pt, now -2), k2 (2 in last.pt, now -3) and 2 more;" in message
    check_resume_config(tmp_path, tmp_path / "last.pt", None, {"k": 1})  # no saved run config: not compared
    check_resume_config(tmp_path, tmp_path / "last.pt", trained, dict(trained, resume="x"))


def test_an_unreadable_or_missing_checkpoint_is_left_to_the_run(tmp_path, compose_cfg):
    cfg = compose_cfg(*SMOKE)
    check_resume_before_start(tmp_path, cfg)  # no last.pt: starts over, as before
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    check_resume_before_start(tmp_path, cfg)  # the run reports it in its own words


def test_resume_from_last_checks_a_resume_started_in_process(tmp_path):
    """``chordexp.experiment.task.resume_from_last`` compares this session's run config with the loaded one."""
    from chordexp.experiment.task import resume_from_last

    last = tmp_path / "checkpoints" / "last.pt"
    last.parent.mkdir()
    torch.save({}, last)

    class Loaded:
        current_epoch = 2

        def __init__(self, saved):
            self.saved, self.checkpoint_extra = saved, {"run_config": {"optimizer": {"lr": 0.5}, "resume": "x"}}

        def load_checkpoint(self, path):
            self.checkpoint_extra = {"run_config": self.saved}

    with pytest.raises(ResumeConfigError, match=r"optimizer\.lr \(0\.001 in last\.pt, now 0\.5\)"):
        resume_from_last(Loaded({"optimizer": {"lr": 0.001}, "resume": None}), last, tmp_path)
    resume_from_last(Loaded({"optimizer": {"lr": 0.5}, "resume": None}), last, tmp_path)


def _as_trained_before(folder: Path, key: str) -> None:
    """Make ``folder`` a run trained before the model had ``key``: drop it from the saved
    config and from the run config its checkpoints hold."""
    _edit_saved_config(folder, rf"^  {key}: .*\n", "")
    for checkpoint in (folder / "checkpoints").glob("*.pt"):
        state = torch.load(checkpoint, weights_only=False)
        del state["extra"]["run_config"]["model"][key]
        torch.save(state, checkpoint)


def test_a_run_from_before_a_new_model_argument_resumes_at_its_default(run_copy, run_cli):
    """A setting added since the run was trained is absent from its saved configs (the
    resume composes from the run's own .hydra/config.yaml), so the model is built with the
    argument's default, which is what the code did before: the resume goes on."""
    _as_trained_before(run_copy, "feedforward_ratio")
    done = run_cli([f"resume={run_copy}", "trainer.num_epochs=3"], cwd=run_copy.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(json.loads((run_copy / "history.json").read_text())["val_loss"]) == 3


def test_setting_a_new_model_argument_on_resume_is_refused(run_copy, run_cli):
    _as_trained_before(run_copy, "feedforward_ratio")
    before = _tree(run_copy)
    done = run_cli([f"resume={run_copy}", "+model.feedforward_ratio=2"], cwd=run_copy.parent)
    assert done.returncode == 2
    assert "model.feedforward_ratio (absent in last.pt, now 2)" in done.stderr, done.stderr
    assert _tree(run_copy) == before
