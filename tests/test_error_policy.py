"""The error-line policy: errors of the input or the environment are one line without a
traceback; bugs keep their traceback; ``CHORDEXP_DEBUG=1`` shows every traceback; in a
sweep a failed job still raises so that Hydra marks it failed."""

from __future__ import annotations

import errno
import logging

import fault_files as ff
import pytest
from hydra.types import RunMode
from omegaconf import open_dict, read_write

from chordexp.errors import is_user_error, one_line
from chordexp.experiment import run_outcome as run_module

WORKER_MESSAGE = (
    "Caught ItemLoadError in DataLoader worker process 1.\nOriginal Traceback (most recent call last):\n"
    '  File "/x/torch/utils/data/_utils/worker.py", line 349, in _worker_loop\n    data = fetcher.fetch(index)\n'
    "chordexp.data.item_errors.ItemLoadError: SyntheticChordDataset (train split) item 7 failed to load: "
    "FloatingPointError: overflow\n"
)


def _raise_from_library():
    import numpy as np

    np.reshape(np.arange(3), (2, 2))  # numpy's own ValueError


def test_one_line_keeps_what_matters_of_each_kind_of_error():
    worker = RuntimeError(WORKER_MESSAGE)
    assert one_line(worker) == (
        "in DataLoader worker process 1: ItemLoadError: SyntheticChordDataset (train split) "
        "item 7 failed to load: FloatingPointError: overflow"
    )
    assert is_user_error(worker)
    died = RuntimeError("DataLoader worker (pid(s) 4242) exited unexpectedly")
    assert is_user_error(died) and one_line(died).startswith("DataLoader worker (pid(s) 4242) exited unexpectedly: a ")
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/song.wav")
    assert is_user_error(missing) and one_line(missing) == "/data/song.wav: No such file or directory"
    assert one_line(ValueError("first line\nsecond line")) == "first line"


def test_our_value_errors_are_the_users_and_a_librarys_are_bugs():
    from hydra.errors import InstantiationException

    from chordexp.training.trainer import resolve_device

    with pytest.raises(ValueError) as ours:
        resolve_device("tpu")
    assert is_user_error(ours.value)
    with pytest.raises(ValueError) as theirs:
        _raise_from_library()
    assert not is_user_error(theirs.value)
    assert not is_user_error(ZeroDivisionError("division by zero"))
    wrapped = InstantiationException("Error in call to target 'x.Y':\nValueError(...)")
    wrapped.__cause__ = ours.value
    assert is_user_error(wrapped) and one_line(wrapped) == one_line(ours.value)


@pytest.fixture
def failing_run(smoke_cfg, monkeypatch):
    """``failing_run(error, mode)``: a run whose training raises ``error``, ended under
    ``RunEnding`` (the policy ``chordexp.run.main`` runs every run under)."""

    def start(error: BaseException, mode: RunMode = RunMode.RUN):
        with read_write(smoke_cfg.hydra), open_dict(smoke_cfg):
            smoke_cfg.hydra.mode = mode
        run_module.HydraConfig.instance().set_config(smoke_cfg)
        with run_module.RunEnding(smoke_cfg) as ending:
            raise error
        return ending.value

    return start


def _error_records(caplog):
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_user_error_is_one_line_and_exit_status_2(failing_run, caplog, monkeypatch):
    monkeypatch.delenv("CHORDEXP_DEBUG", raising=False)
    from chordexp.audio import AudioError

    with pytest.raises(SystemExit) as exit_:
        failing_run(AudioError("/data/a.wav: cannot decode audio (Format not recognised.)"))
    assert exit_.value.code == 2  # bad input: 2, as every entry point
    [record] = _error_records(caplog)
    assert record.getMessage() == "run failed: /data/a.wav: cannot decode audio (Format not recognised.)"
    assert record.exc_info is None


def test_in_a_sweep_a_user_error_still_fails_the_job(failing_run, caplog, monkeypatch):
    monkeypatch.delenv("CHORDEXP_DEBUG", raising=False)
    with pytest.raises(OSError, match="No space left"):
        failing_run(OSError(errno.ENOSPC, "No space left on device", "/x/last.pt"), RunMode.MULTIRUN)
    [record] = _error_records(caplog)
    assert record.getMessage() == "run failed: /x/last.pt: No space left on device" and record.exc_info is None


def test_a_bug_keeps_its_traceback(failing_run, caplog, monkeypatch):
    monkeypatch.delenv("CHORDEXP_DEBUG", raising=False)
    with pytest.raises(ZeroDivisionError):
        failing_run(ZeroDivisionError("division by zero"))
    [record] = _error_records(caplog)
    assert record.getMessage() == "run failed: division by zero" and record.exc_info is not None


def test_the_debug_flag_shows_the_traceback_of_a_user_error(failing_run, caplog, monkeypatch):
    monkeypatch.setenv("CHORDEXP_DEBUG", "1")
    with pytest.raises(ValueError):
        failing_run(ValueError("unknown device 'tpu'"))
    [record] = _error_records(caplog)
    assert record.exc_info is not None


def test_the_debug_flag_on_the_command_line(tmp_path):
    args = [f"checkpoint={tmp_path / 'none.pt'}", f"input={tmp_path}", f"output={tmp_path / 'out'}"]
    (tmp_path / "a.wav").write_bytes(b"")
    quiet = ff.run_module("chordexp.predict", args, cwd=tmp_path)
    loud = ff.run_module("chordexp.predict", args, cwd=tmp_path, env=ff.cli_env(CHORDEXP_DEBUG="1"))
    assert quiet.returncode == 2 and quiet.stderr.strip() == f"error: checkpoint {tmp_path / 'none.pt'}: no such file"
    assert loud.returncode == 1 and "Traceback (most recent call last)" in loud.stderr
    assert "CheckpointError: checkpoint" in loud.stderr.strip().splitlines()[-1]
