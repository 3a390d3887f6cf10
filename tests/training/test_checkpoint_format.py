"""A checkpoint's format_version: the current format written, a newer one refused in one
line, a version-1 file migrated (in ``checkpoint.migrate`` alone) and resumed."""

from __future__ import annotations

import math

import pytest
import torch

from chordexp.training.checkpoint import (
    CURRENT_KEYS,
    FORMAT_VERSION,
    REQUIRED_KEYS,
    CheckpointError,
    load_checkpoint_file,
    migrate,
)

#: What version-1 checkpoints lacked before these keys joined the format (git history):
#: the loaders' generators, then the monitor.
ADDED_DURING_VERSION_1 = ("loader_rng", "monitor", "monitor_mode", "best_monitor_value")


class _Crash(Exception):
    """A simulated crash in the middle of training."""


def _last_pt_after(make_trainer, tmp_path, epochs: int = 1):
    make_trainer(num_epochs=epochs, checkpoint_dir=str(tmp_path / "written")).train()
    return tmp_path / "written" / "last.pt"


def _rewritten(path, tmp_path, name: str, **changes):
    state = torch.load(path, weights_only=True)
    state.update(changes)
    torch.save(state, tmp_path / name)
    return tmp_path / name


def test_the_trainer_writes_the_current_format_and_nothing_else(make_trainer, tmp_path):
    state = torch.load(_last_pt_after(make_trainer, tmp_path), weights_only=True)
    assert state["format_version"] == FORMAT_VERSION
    assert list(state) == list(CURRENT_KEYS)
    assert load_checkpoint_file(tmp_path / "written" / "last.pt").keys() == state.keys()


def test_a_checkpoint_of_a_newer_format_is_refused_naming_the_file_and_both_versions(make_trainer, tmp_path):
    newer = _rewritten(_last_pt_after(make_trainer, tmp_path), tmp_path, "newer.pt", format_version=FORMAT_VERSION + 1)
    trainer = make_trainer(num_epochs=2, checkpoint_dir=str(tmp_path / "resumed"))
    before = {key: value.clone() for key, value in trainer.model.state_dict().items()}
    for load in (trainer.load_checkpoint, load_checkpoint_file):
        with pytest.raises(CheckpointError) as error:
            load(newer)
        message = str(error.value)
        assert message.startswith(f"checkpoint {newer}: format_version {FORMAT_VERSION + 1} is newer than ")
        assert f"this chordexp reads ({FORMAT_VERSION})" in message and "\n" not in message
    assert trainer.current_epoch == 0  # nothing was restored
    assert all(torch.equal(value, before[key]) for key, value in trainer.model.state_dict().items())


@pytest.mark.parametrize("version", ["2", 0, None, 1.5, True])
def test_a_format_version_that_is_no_version_is_refused(make_trainer, tmp_path, version):
    odd = _rewritten(_last_pt_after(make_trainer, tmp_path), tmp_path, "odd.pt", format_version=version)
    with pytest.raises(CheckpointError, match=r"checkpoint \S*odd\.pt: format_version .* is not one chordexp writes"):
        load_checkpoint_file(odd)


def test_a_current_format_checkpoint_missing_a_key_is_refused(make_trainer, tmp_path):
    state = torch.load(_last_pt_after(make_trainer, tmp_path), weights_only=True)
    del state["loader_rng"]  # fine in a version-1 file, not in a current one
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=rf"format_version {FORMAT_VERSION} \(missing loader_rng\)"):
        load_checkpoint_file(tmp_path / "partial.pt")


def test_a_version_1_checkpoint_loads_and_resumes_like_the_run_that_wrote_it(make_trainer, tmp_path, monkeypatch):
    """Built as the oldest version-1 files were: without the keys that joined the format later."""
    settings = dict(num_epochs=4, shuffle=True, dropout=0.1, scheduler="cosine", warmup_epochs=1, patience=5)
    full = make_trainer(**settings, checkpoint_dir=str(tmp_path / "full"))
    full_history = full.train()

    crashed = make_trainer(**settings, checkpoint_dir=str(tmp_path / "crashed"))
    real_validate, calls = crashed.validate, []

    def validate():
        calls.append(1)
        if len(calls) == 3:
            raise _Crash
        return real_validate()

    monkeypatch.setattr(crashed, "validate", validate)
    with pytest.raises(_Crash):
        crashed.train()
    state = torch.load(tmp_path / "crashed" / "last.pt", weights_only=True)
    assert state["loader_rng"] == {}  # this loader shuffles with the global generator (in "rng")
    for key in ADDED_DURING_VERSION_1:
        del state[key]
    state["format_version"] = 1
    torch.save(state, tmp_path / "old.pt")

    resumed = make_trainer(**settings, seed=123, checkpoint_dir=str(tmp_path / "resumed"))
    resumed.load_checkpoint(tmp_path / "old.pt")
    assert resumed.current_epoch == 2 and resumed.best_monitor_value == resumed.best_val_loss
    assert (resumed.monitor, resumed.monitor_mode) == ("val_loss", "min")
    assert resumed.train() == full_history  # exact floats
    for key, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert (resumed.best_epoch, resumed.best_val_loss, resumed.epochs_without_improvement) == (
        full.best_epoch,
        full.best_val_loss,
        full.epochs_without_improvement,
    )
    rewritten = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert rewritten["format_version"] == FORMAT_VERSION and list(rewritten) == list(CURRENT_KEYS)


def test_migrate_fills_what_version_1_readers_took_as_optional():
    """The keys every version-1 file had but no reader required get the values those
    readers fell back to; the file's own values win, and nothing is changed in place."""
    old = {key: f"<{key}>" for key in REQUIRED_KEYS}
    old.update(format_version=1, best_val_loss=0.5, extra=None, loader_rng=None, scaler={"scale": 2.0})
    state = migrate(old)
    assert set(state) == set(CURRENT_KEYS) and state["format_version"] == FORMAT_VERSION
    assert {key: state[key] for key in set(CURRENT_KEYS) - set(REQUIRED_KEYS)} == {
        "optimizer_class": None,  # not compared on resume
        "scaler": {"scale": 2.0},
        "monitor": "val_loss",
        "monitor_mode": "min",
        "best_monitor_value": 0.5,
        "stopped_early": False,
        "last_val_metrics": {},
        "loader_rng": {},
        "model_hparams": None,
        "extra": {},
        "best_epoch": 0,
    }
    assert old["format_version"] == 1 and old["extra"] is None and "monitor" not in old
    assert migrate(state) == state  # the current format passes unchanged


def test_a_version_1_checkpoint_without_its_optional_keys_still_resumes(make_trainer, tmp_path):
    path = _last_pt_after(make_trainer, tmp_path, epochs=2)
    state = torch.load(path, weights_only=True)
    for key in set(CURRENT_KEYS) - set(REQUIRED_KEYS):
        state.pop(key, None)
    state["format_version"] = 1
    torch.save(state, tmp_path / "bare.pt")
    resumed = make_trainer(num_epochs=3, checkpoint_dir=str(tmp_path / "resumed"))
    resumed.load_checkpoint(tmp_path / "bare.pt")
    assert (resumed.current_epoch, resumed.best_epoch, resumed.stopped_early) == (2, 0, False)
    resumed.train()
    assert resumed.current_epoch == 3 and all(math.isfinite(v) for v in resumed.history["train_loss"])
