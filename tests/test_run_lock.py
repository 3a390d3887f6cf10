"""A run folder belongs to one run: a new run never reuses a folder that holds a run, two
live runs never share one, and a stale lock from a killed run does not block a resume.

Every refusal is checked the hard way: each file of the folder hashed before and after
must be byte-identical (``.hydra/``, ``run.log``, checkpoints included).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

import fault_files as ff
import pytest

from chordexp.experiment import run_lock
from chordexp.experiment.compose_ahead import CompositionError, compose_as_hydra_main
from chordexp.experiment.existing_runs import run_records, runs_under
from chordexp.experiment.run_lock import LOCK_NAME, RunFolderError, RunLock, plan_run_folder
from chordexp.lock_file import LockError, LockFile, process_start

SMOKE = ["experiment=smoke", "trainer.num_threads=1"]


def snapshot(folder: Path) -> Dict[str, str]:
    """sha256 of every file under ``folder`` (hidden ones included), by relative path."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run(args, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return ff.run_module("chordexp.run", list(args), cwd=cwd, timeout=timeout)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return lines[0]


def dead_pid() -> int:
    """The pid of a process that has ended (and was reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write_lock(folder: Path, pid: int, host: str = None) -> None:
    (folder / LOCK_NAME).write_text(
        json.dumps(
            {
                "pid": pid,
                "host": host or socket.gethostname(),
                "process_start": process_start(pid),
                "since": "then",
            }
        )
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A real finished ``experiment=smoke`` run (its .hydra/, checkpoints, metrics, history, run.log)."""
    folder = tmp_path_factory.mktemp("finished") / "run"
    done = run([*SMOKE, f"hydra.run.dir={folder}"], cwd=folder.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (folder / LOCK_NAME).exists()  # the lock goes when the run ends
    return folder


# --------------------------------------------------------------------------- what a folder holds


def test_records_of_a_run_and_of_other_folders(tmp_path, finished):
    assert set(run_records(finished)) >= {".hydra/config.yaml", "metrics.json", "history.json", "checkpoints/"}
    (tmp_path / "notes.txt").write_text("not a run")
    (tmp_path / "run.log").write_text("a log alone: a run killed before Hydra wrote its record\n")
    (tmp_path / ".hydra").mkdir()  # and an empty .hydra/
    (tmp_path / "checkpoints").mkdir()  # and an empty checkpoint folder
    assert run_records(tmp_path) == []
    (tmp_path / "ckpts").mkdir()
    (tmp_path / "ckpts" / "last.pt").write_bytes(b"x")
    assert run_records(tmp_path, "ckpts") == ["ckpts/"]
    sweep = tmp_path / "sweep"
    shutil.copytree(finished / ".hydra", sweep / "3" / ".hydra")
    assert [line.split(" ")[0] for line in runs_under(sweep)] == [str(sweep / "3")]


# --------------------------------------------------------------------------- the lock


def test_the_lock_is_exclusive_and_released_only_by_its_owner(tmp_path):
    first, second = RunLock(tmp_path), RunLock(tmp_path)
    first.acquire()
    owner = json.loads((tmp_path / LOCK_NAME).read_text())
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    with pytest.raises(RunFolderError, match=rf"is in use by a running run \(pid {os.getpid()} on "):
        second.acquire()
    second.release()  # never acquired: leaves the lock alone
    assert (tmp_path / LOCK_NAME).is_file()
    first.release()
    assert not (tmp_path / LOCK_NAME).exists()
    second.acquire()
    second.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temporary file left


def test_a_stale_lock_is_replaced_but_a_live_or_foreign_one_is_not(tmp_path, capsys):
    write_lock(tmp_path, dead_pid())
    lock = RunLock(tmp_path)
    lock.acquire()
    assert "removed the stale lock" in capsys.readouterr().err
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()

    write_lock(tmp_path, os.getppid())  # a live process of this host
    with pytest.raises(RunFolderError, match=r"in use by a running run"):
        RunLock(tmp_path).acquire()
    write_lock(tmp_path, dead_pid(), host="elsewhere.example")  # cannot be checked from here
    with pytest.raises(RunFolderError, match=r"in use by a running run \(pid \d+ on elsewhere\.example"):
        RunLock(tmp_path).acquire()
    (tmp_path / LOCK_NAME).write_text("garbage")
    with pytest.raises(RunFolderError, match=r"cannot be read; if no run is using the folder, remove that file"):
        RunLock(tmp_path).acquire()


def test_a_reused_pid_does_not_keep_a_lock_alive(tmp_path):
    """The lock records its process's start time: the same pid, started later, is another process."""
    (tmp_path / LOCK_NAME).write_text(
        json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "process_start": "1", "since": "long ago"})
    )
    if process_start(os.getpid()) is None:
        pytest.skip("no /proc here")
    lock = RunLock(tmp_path)
    lock.acquire()
    lock.release()


def test_the_lock_file_alone_names_no_run(tmp_path, capsys):
    """``chordexp.lock_file`` is not about run folders: its own words, the same rules."""
    path = tmp_path / "thing.lock"
    first = LockFile(path)
    first.acquire()
    with pytest.raises(LockError, match=rf"^{path} is held by a running process \(pid {os.getpid()} on "):
        LockFile(path).acquire()
    with pytest.raises(LockError):
        LockFile(path).check_not_in_use()
    first.release()
    assert not path.exists()
    path.write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    LockFile(path).check_not_in_use()  # stale: not in use, and left where it is
    second = LockFile(path)
    second.acquire()
    assert f"removed the stale lock {path} of a process that is gone (pid " in capsys.readouterr().err
    second.release()
    path.write_text("garbage")
    with pytest.raises(LockError, match=r"cannot be read; if no process is using it, remove that file"):
        LockFile(path).acquire()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thing.lock"]  # no temporary file left


# --------------------------------------------------------------------------- the config Hydra will compose


def test_the_config_is_composed_as_hydra_main_will(tmp_path):
    cfg, multirun = compose_as_hydra_main([*SMOKE, f"hydra.run.dir={tmp_path}"])
    assert not multirun and cfg.trainer.num_epochs == 3 and cfg.hydra.run.dir == str(tmp_path)
    cfg, multirun = compose_as_hydra_main(["-m", *SMOKE, "optimizer.lr=1e-3,3e-3"])
    assert multirun and cfg.hydra.sweep._get_node("subdir")._value() == "${hydra.job.num}"  # left for each job
    assert compose_as_hydra_main(["--no-such-flag"]) is None  # Hydra prints its usage itself


def test_a_config_that_does_not_compose_is_one_line(monkeypatch):
    with pytest.raises(CompositionError, match=r"^Could not find 'optimizer/adamx'; choose one of: .*adamw"):
        compose_as_hydra_main(["optimizer=adamx"])
    with pytest.raises(CompositionError, match=r"^Ambiguous value for argument .seed=1,2.; .*add --multirun"):
        compose_as_hydra_main([*SMOKE, "seed=1,2"])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # Hydra reports it, in full
    assert compose_as_hydra_main(["optimizer=adamx"]) is None


# --------------------------------------------------------------------------- the claim (no training)


def test_an_empty_folder_is_claimed_and_given_back(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    claim = plan_run_folder([*SMOKE, f"hydra.run.dir={folder}"]).claim()
    assert claim.folder == folder and (folder / LOCK_NAME).is_file()
    assert claim.argv == [*SMOKE, f"hydra.run.dir={folder}"]  # a literal folder is not rewritten
    claim.release()
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_a_folder_holding_files_a_run_writes_is_refused_and_keeps_them(tmp_path):
    folder = tmp_path / "mine"
    (folder / "plots").mkdir(parents=True)
    (folder / "metrics.csv").write_text("step,value\n1,2\n")
    (folder / "plots" / "learning_curves.png").write_bytes(b"my own plot")
    (folder / "notes.txt").write_text("fine to keep beside a run")
    before = snapshot(folder)
    with pytest.raises(RunFolderError, match=r"holds files a run writes \(metrics.csv, plots/\)"):
        plan_run_folder([*SMOKE, "logger=csv", f"hydra.run.dir={folder}"]).claim()
    assert snapshot(folder) == before
    (folder / "metrics.csv").unlink()
    shutil.rmtree(folder / "plots")
    plan_run_folder([*SMOKE, "logger=csv", f"hydra.run.dir={folder}"]).claim().release()  # other files are fine


def test_a_sweep_whose_jobs_share_one_folder_is_refused_before_any_job(tmp_path):
    args = ["-m", *SMOKE, "optimizer.lr=1e-3,3e-3", f"hydra.sweep.dir={tmp_path / 'sw'}"]
    with pytest.raises(RunFolderError, match=r"^hydra.sweep.subdir=job: every job of the sweep would write"):
        plan_run_folder([*args, "hydra.sweep.subdir=job"]).check()
    plan_run_folder([*args, "hydra.sweep.subdir=${hydra.job.num}_lr"]).check()  # one folder per job
    plan_run_folder(args).check()  # the default, ${hydra.job.num}
    assert not (tmp_path / "sw").exists()


def test_the_default_folder_is_resolved_once_and_pinned_for_hydra(tmp_path, monkeypatch):
    """``outputs/${now:...}``: the folder checked and locked is handed to Hydra, so the clock
    cannot move Hydra into another folder; the command recorded stays the one typed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["chordexp/run.py", *SMOKE])
    claim = plan_run_folder(SMOKE).claim()
    try:
        assert claim.folder.parent.parent == tmp_path / "outputs" and (claim.folder / LOCK_NAME).is_file()
        assert claim.argv == [*SMOKE, f"hydra.run.dir='{claim.folder}'"]
        assert run_lock.typed_argv() == ["chordexp/run.py", *SMOKE]
    finally:
        claim.release()
        run_lock._TYPED_ARGV = None
    assert not claim.folder.exists()  # made by the claim, left empty: removed


def test_help_and_cfg_claim_nothing(tmp_path, finished):
    for flag in ("--help", "--cfg=job", "--cfg", "-c"):
        assert plan_run_folder([flag, f"hydra.run.dir={finished}"]) is None


# --------------------------------------------------------------------------- the command line


def test_a_new_run_into_a_finished_run_is_refused_and_changes_nothing(finished, tmp_path):
    before = snapshot(finished)
    for args in (
        [*SMOKE, f"hydra.run.dir={finished}"],
        [f"rerun={finished}", f"hydra.run.dir={finished}"],
        ["-m", *SMOKE, "optimizer=adamw,sgd", f"hydra.sweep.dir={finished.parent}"],
    ):
        done = run(args, cwd=tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        line = one_error_line(done)
        if "-m" in args:
            assert f"hydra.sweep.dir={finished.parent} already holds a sweep or runs ({finished} (" in line
        else:
            assert line.startswith(f"error: hydra.run.dir={finished} already holds a run (.hydra/config.yaml, ")
            assert (
                f"continue it with resume={finished}, redo it in a new folder with rerun={finished}, or give a "
                f"new folder"
            ) in line
        assert snapshot(finished) == before


def test_a_stale_lock_does_not_block_resume_and_the_lock_goes_at_the_end(finished, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(finished, folder)
    write_lock(folder, dead_pid())  # a run killed with SIGKILL leaves its lock
    done = run([f"resume={folder}", "trainer.num_epochs=4"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "removed the stale lock" in done.stderr
    assert not (folder / LOCK_NAME).exists()
    assert len(json.loads((folder / "history.json").read_text())["val_loss"]) == 4


def test_a_second_run_into_a_running_ones_folder_is_refused_and_sigterm_removes_the_lock(tmp_path):
    """Two runs into one folder at once: the second (a new run, or a resume) gets one line
    and changes nothing of the first, which ends on SIGTERM with its lock removed."""
    folder = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "chordexp.run", *SMOKE, "trainer.num_epochs=30", "seed=1", f"hydra.run.dir={folder}"],
        cwd=tmp_path,
        env=ff.cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (folder / "checkpoints" / "last.pt").is_file():  # it is training: locked, .hydra written
            assert first.poll() is None, first.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "the first run never saved an epoch"
            time.sleep(0.05)
        hydra_before = snapshot(folder / ".hydra")
        for args in ([*SMOKE, "seed=2", f"hydra.run.dir={folder}"], [f"resume={folder}"]):
            done = run(args, cwd=tmp_path)
            assert done.returncode == 2
            assert f"hydra.run.dir={folder} is in use by a running run (pid {first.pid} on " in one_error_line(done)
        assert snapshot(folder / ".hydra") == hydra_before
        first.send_signal(signal.SIGTERM)
        output, _ = first.communicate(timeout=120)
    finally:
        ff.kill_process(first)
    assert first.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert not (folder / LOCK_NAME).exists()
    assert "seed: 1" in (folder / ".hydra" / "config.yaml").read_text()  # the first run's record, untouched
    assert "seed=2" not in (folder / "run.log").read_text()


def test_a_failing_run_removes_its_lock(tmp_path):
    (tmp_path / "empty").mkdir()
    done = run([*SMOKE, "data=folder", f"data.dataset.root={tmp_path / 'empty'}", "hydra.run.dir=run"], cwd=tmp_path)
    assert done.returncode == 2
    assert "run failed: " in done.stdout and "empty" in done.stdout
    assert (tmp_path / "run").is_dir() and not (tmp_path / "run" / LOCK_NAME).exists()


def test_a_run_refused_for_a_bad_value_leaves_no_folder(run_cli, tmp_path):
    folder = tmp_path / "never"
    done = run_cli([*SMOKE, "optimizer.lr=0", f"hydra.run.dir={folder}"], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: invalid config: optimizer.lr=0.0 must be > 0"]
    assert not folder.exists()


def test_sigterm_before_the_first_epoch_says_nothing_can_be_resumed(tmp_path):
    """Stopped while it renders its data: exit 143, and run.log says there is no checkpoint
    and what the folder keeps, not only where the folder is."""
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "chordexp.run", *SMOKE, "data.train_size=20000", f"hydra.run.dir={folder}"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = folder / "run.log"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.is_file() and "torch threads" in log.read_text()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    text = log.read_text()
    assert "stopped by SIGTERM before the first epoch ended: there is no checkpoint, so nothing can be resumed" in text
    assert f"rerun={folder}" in text and "run.log" in text
