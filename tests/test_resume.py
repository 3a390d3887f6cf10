"""Re-running a run folder, resuming a killed or stopped run, and the environment check.

The subprocess tests use the real command line and real signals: a run SIGKILLed after
its second epoch, or stopped by SIGTERM, and then resumed, must end with the history of
a run that was never interrupted (deterministic mode, same seed).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest
import torch

from chordexp.errors import UsageError
from chordexp.experiment.rerun import expand_run_shortcuts, saved_run_folder
from chordexp.experiment.run_folder import environment_differences

# Long enough epochs (~0.3-1 s) to be killed between two of them; deterministic kernels.
RESUMABLE = [
    "experiment=smoke",
    "data.train_size=96",
    "trainer.num_epochs=5",
    "trainer.deterministic=true",
    "trainer.save_every=0",
    "trainer.num_threads=1",
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _start(args: List[str], cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
    return subprocess.Popen(
        [sys.executable, "-m", "chordexp.run", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _saved_epoch(last: Path) -> int:
    try:
        return int(torch.load(last, weights_only=True)["epoch"])
    except (OSError, RuntimeError, EOFError, KeyError):
        return 0


def _wait_for_epoch(process: subprocess.Popen, last: Path, epoch: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        saved = _saved_epoch(last)
        if saved >= epoch:
            return saved
        assert process.poll() is None, f"the run ended before epoch {epoch}: {process.communicate()[0][-2000:]}"
        time.sleep(0.02)
    raise AssertionError(f"no epoch {epoch} in {last} after {timeout} s")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, run_cli) -> Path:
    """The reference: the resumable config run from start to end without interruption."""
    folder = tmp_path_factory.mktemp("ref") / "run"
    done = run_cli([*RESUMABLE, f"hydra.run.dir={folder}"], cwd=folder.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder


def _history(folder: Path) -> Dict[str, List[float]]:
    return json.loads((folder / "history.json").read_text())


def test_a_run_killed_after_its_second_epoch_resumes_to_the_same_history(tmp_path, uninterrupted, run_cli):
    folder = tmp_path / "run"
    process = _start([*RESUMABLE, f"hydra.run.dir={folder}"], tmp_path)
    killed_after = _wait_for_epoch(process, folder / "checkpoints" / "last.pt", 2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not (folder / "metrics.json").exists()  # it really died mid-run
    assert 2 <= killed_after < 5

    done = run_cli([f"resume={folder}"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resumed from {folder / 'checkpoints' / 'last.pt'} after epoch" in (folder / "run.log").read_text()
    assert _sha(folder / "history.json") == _sha(uninterrupted / "history.json")
    resumed = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)["model"]
    reference = torch.load(uninterrupted / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(resumed[key], reference[key]) for key in reference)
    # Hydra's record of the resume goes beside the original, which stays the run's config
    assert (folder / ".hydra" / "resume_1" / "overrides.yaml").is_file()
    assert "resume" not in (folder / ".hydra" / "overrides.yaml").read_text()
    assert len(json.loads((folder / "environment.json").read_text())["resumes"]) == 1


def test_sigterm_stops_cleanly_with_the_resume_command_and_resumes_exactly(tmp_path, uninterrupted, run_cli):
    folder = tmp_path / "run"
    process = _start([*RESUMABLE, f"hydra.run.dir={folder}"], tmp_path)
    _wait_for_epoch(process, folder / "checkpoints" / "last.pt", 1)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, output[-2000:]
    log = (folder / "run.log").read_text()
    assert "SIGTERM received: stopping after the current batch" in log
    assert f"continue with: python -m chordexp.run resume={folder}" in log
    assert "Traceback" not in output
    saved = _saved_epoch(folder / "checkpoints" / "last.pt")
    assert len(_history(folder)["val_loss"]) == saved >= 1  # history written up to last.pt

    done = run_cli([f"resume={folder}"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _history(folder) == _history(uninterrupted)


def test_rerun_and_the_long_form_reproduce_a_run_byte_for_byte(tmp_path, uninterrupted, run_cli):
    short = run_cli([f"rerun={uninterrupted}", f"hydra.run.dir={tmp_path / 'short'}"], cwd=tmp_path)
    long = run_cli(
        [
            "--config-dir",
            str(uninterrupted / ".hydra"),
            "--config-name",
            "config",
            f"hydra.run.dir={tmp_path / 'long'}",
        ],
        cwd=tmp_path,
    )
    for done, name in ((short, "short"), (long, "long")):
        assert done.returncode == 0, done.stderr[-2000:]
        assert _sha(tmp_path / name / "history.json") == _sha(uninterrupted / "history.json")
        record = json.loads((tmp_path / name / "environment.json").read_text())
        assert record["rerun_of"] == str(uninterrupted)


def test_environment_differences_name_commit_dirt_and_versions():
    recorded = {"git": {"commit": "abc", "dirty": False}, "versions": {"torch": "2.2.0", "numpy": "1.26.0"}}
    current = {"git": {"commit": "def", "dirty": True}, "versions": {"torch": "2.13.0", "numpy": "1.26.0"}}
    lines = environment_differences(recorded, current)
    assert lines[0] == "git commit differs: recorded abc, now def"
    assert lines[1].startswith("uncommitted changes: recorded dirty=False, now dirty=True")
    assert lines[2] == "torch version differs: recorded 2.2.0, now 2.13.0"
    assert len(lines) == 3 and environment_differences(recorded, recorded) == []


def _make_run_folder(root: Path) -> Path:
    (root / ".hydra").mkdir(parents=True)
    (root / ".hydra" / "config.yaml").write_text("seed: 0\n")
    return root


def test_shortcuts_expand_to_the_saved_config(tmp_path):
    run = _make_run_folder(tmp_path / "run")
    assert expand_run_shortcuts(["seed=1"]) == ["seed=1"]
    assert expand_run_shortcuts([f"rerun={run}", "seed=3"]) == [
        "--config-path",
        str(run / ".hydra"),
        "--config-name",
        "config",
        "seed=3",
    ]
    resumed = expand_run_shortcuts([f"resume={run}"])
    assert resumed[4:] == [f"hydra.run.dir='{run}'", "hydra.output_subdir=.hydra/resume_1", f"++resume='{run}'"]
    (run / ".hydra" / "resume_1").mkdir()
    assert expand_run_shortcuts([f"resume={run}"])[5] == "hydra.output_subdir=.hydra/resume_2"
    assert expand_run_shortcuts(["-cd", str(run / ".hydra"), "--config-name", "config"])[:2] == [
        "--config-path",
        str(run / ".hydra"),
    ]
    assert expand_run_shortcuts(["--config-dir", str(tmp_path)]) == ["--config-dir", str(tmp_path)]
    assert saved_run_folder(f"file://{run / '.hydra'}") == run and saved_run_folder(str(tmp_path)) is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["resume={missing}"], "resume={missing}: no such folder"),
        (["rerun={plain}"], "rerun={plain}: not a run folder (no .hydra/config.yaml in {plain})"),
        (["resume="], "resume= needs a run folder"),
        (["resume={run}", "rerun={run}"], "give one of rerun=RUN_FOLDER or resume=RUN_FOLDER"),
        (["-m", "resume={run}"], "resume= continues one run; it cannot be combined with -m/--multirun"),
    ],
)
def test_shortcut_errors_are_one_line(tmp_path, args, message):
    paths = dict(missing=tmp_path / "nope", plain=tmp_path, run=_make_run_folder(tmp_path / "run"))
    with pytest.raises(UsageError, match="^" + __import__("re").escape(message.format(**paths))):
        expand_run_shortcuts([arg.format(**paths) for arg in args])


EVIL_CALLBACK = "hydra:\n  callbacks:\n    evil:\n      _target_: shutil.copyfile\n      src: a\n      dst: b\n"


@pytest.mark.parametrize("shortcut", ["rerun", "resume"])
def test_a_saved_config_may_not_choose_code(tmp_path, shortcut):
    """A run folder someone gives you is data: a hydra: node (callbacks are code) in its
    config.yaml, or its own allow_any_target: true, is refused before Hydra starts."""
    run = _make_run_folder(tmp_path / "run")
    saved = run / ".hydra" / "config.yaml"
    saved.write_text("seed: 0\n" + EVIL_CALLBACK)
    for args in ([f"{shortcut}={run}"], ["--config-dir", str(run / ".hydra"), "--config-name", "config"]):
        with pytest.raises(UsageError, match="holds a hydra: node.*may not choose code"):
            expand_run_shortcuts(args)
    saved.write_text("seed: 0\nallow_any_target: true\n")
    with pytest.raises(UsageError, match="sets allow_any_target: true, which a saved file may not do"):
        expand_run_shortcuts([f"{shortcut}={run}"])
    assert expand_run_shortcuts([f"{shortcut}={run}", "allow_any_target=true"])[:2] == [
        "--config-path",
        str(saved.parent),
    ]


def test_a_saved_config_with_a_key_given_twice_is_one_line(tmp_path):
    run = _make_run_folder(tmp_path / "run")
    (run / ".hydra" / "config.yaml").write_text("seed: 0\ntrainer:\n  num_epochs: 2\n  num_epochs: 3\n")
    with pytest.raises(
        UsageError, match=r"is not valid YAML \(line 4, column 3: the key 'num_epochs' is given twice\)"
    ):
        expand_run_shortcuts([f"rerun={run}"])


def test_resume_of_a_missing_folder_exits_2_with_one_line(tmp_path, run_cli):
    done = run_cli([f"resume={tmp_path / 'nope'}"], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: resume={tmp_path / 'nope'}: no such folder"
