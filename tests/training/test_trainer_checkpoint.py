"""Checkpoint files, weights_only loading, exact resume and clear errors."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

from chordexp.training.checkpoint import CheckpointError, atomic_write_bytes


class _Crash(Exception):
    """A simulated crash in the middle of training."""


def _crash_at_validation(trainer, call: int, monkeypatch) -> None:
    """Make the ``call``-th validation raise, as a killed job would."""
    real_validate, calls = trainer.validate, []

    def validate():
        calls.append(1)
        if len(calls) == call:
            raise _Crash
        return real_validate()

    monkeypatch.setattr(trainer, "validate", validate)


def test_last_best_and_periodic_checkpoints_are_written(make_trainer, tmp_path):
    trainer = make_trainer(num_epochs=4, save_every=2)
    trainer.train()
    ckpt = tmp_path / "ckpt"
    assert sorted(p.name for p in ckpt.iterdir()) == ["best.pt", "epoch_002.pt", "epoch_004.pt", "last.pt"]
    epochs = {name: torch.load(ckpt / name, weights_only=True)["epoch"] for name in ("last.pt", "epoch_002.pt")}
    assert epochs == {"last.pt": 4, "epoch_002.pt": 2}
    assert torch.load(ckpt / "best.pt", weights_only=True)["epoch"] == trainer.best_epoch


def test_checkpoint_is_plain_data_loadable_with_weights_only(make_trainer, tmp_path):
    trainer = make_trainer(num_epochs=1, scheduler_options={})
    trainer.checkpoint_extra = {"model": {"d_model": 32}}
    trainer.model.hparams = {"num_samples": 64, "hidden": 48}  # constructor arguments, as the real model has
    trainer.train()
    state = torch.load(tmp_path / "ckpt" / "last.pt", map_location="cpu", weights_only=True)
    assert {
        "model",
        "optimizer",
        "scheduler",
        "scaler",
        "history",
        "best_val_loss",
        "best_epoch",
        "epoch",
        "epochs_without_improvement",
        "config",
        "rng",
        "extra",
    } <= set(state)
    assert state["config"] == dataclasses.asdict(trainer.config)
    assert set(state["rng"]) == {"torch", "cuda", "numpy", "python"}
    assert state["history"] == trainer.history and state["extra"] == {"model": {"d_model": 32}}
    assert state["model_hparams"] == {"num_samples": 64, "hidden": 48}
    torch.testing.assert_close(state["model"]["body.1.weight"], trainer.model.body[1].weight)


@pytest.mark.parametrize("scheduler", ["cosine", "onecycle"])
def test_resume_after_crash_reproduces_the_uninterrupted_run(make_trainer, tmp_path, monkeypatch, scheduler):
    settings = dict(
        num_epochs=4, shuffle=True, dropout=0.1, scheduler=scheduler, warmup_epochs=1, grad_accum_steps=2, train_size=20
    )
    full = make_trainer(**settings, checkpoint_dir=str(tmp_path / "full"))
    full_history = full.train()

    crashed = make_trainer(**settings, checkpoint_dir=str(tmp_path / "crashed"))
    _crash_at_validation(crashed, 3, monkeypatch)
    with pytest.raises(_Crash):
        crashed.train()
    np.random.rand(3)  # disturb every RNG: the checkpoint must bring them back
    resumed = make_trainer(**settings, seed=123, checkpoint_dir=str(tmp_path / "resumed"))
    resumed.load_checkpoint(tmp_path / "crashed" / "last.pt")
    assert resumed.current_epoch == 2 and len(resumed.history["train_loss"]) == 2
    history = resumed.train()

    assert history == full_history  # exact floats
    for key, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert resumed.best_val_loss == full.best_val_loss and resumed.best_epoch == full.best_epoch


@pytest.mark.parametrize("scheduler", ["cosine", "onecycle"])
def test_loading_into_a_longer_run_trains_on(make_trainer, tmp_path, scheduler):
    short = make_trainer(num_epochs=2, scheduler=scheduler, warmup_epochs=1, checkpoint_dir=str(tmp_path / "a"))
    short_history = {k: list(v) for k, v in short.train().items()}
    longer = make_trainer(num_epochs=4, scheduler=scheduler, warmup_epochs=1, checkpoint_dir=str(tmp_path / "b"))
    longer.load_checkpoint(tmp_path / "a" / "last.pt")
    history = longer.train()
    assert longer.current_epoch == 4 and all(len(v) == 4 for v in history.values())
    assert {k: v[:2] for k, v in history.items()} == short_history
    # epochs 3 and 4 follow the new 4-epoch schedule (lr 1e-2, warmup 1 epoch)
    if scheduler == "cosine":  # factors 0.5, 1, 0.505, 0.01
        assert history["learning_rate"][2:] == pytest.approx([0.505e-2, 1e-4])
    else:  # 16 steps, peak at step 3, min 4e-8 at step 15; epochs 3, 4 start at steps 8 and 12
        expected = [1e-2 - (1e-2 - 4e-8) * (step - 3) / 12 for step in (8, 12)]
        assert history["learning_rate"][2:] == pytest.approx(expected)
        assert longer.optimizer.param_groups[0]["lr"] == pytest.approx(4e-8)


def test_save_and_load_round_trip_restores_progress(make_trainer, tmp_path):
    trainer = make_trainer(num_epochs=3, patience=5)
    trainer.train()
    trainer.save_checkpoint(tmp_path / "manual" / "state.pt")
    other = make_trainer(num_epochs=3, seed=7)
    other.load_checkpoint(tmp_path / "manual" / "state.pt")
    assert other.history == trainer.history and other.current_epoch == 3
    assert other.best_val_loss == trainer.best_val_loss and other.best_epoch == trainer.best_epoch
    assert other.epochs_without_improvement == trainer.epochs_without_improvement
    assert other.last_val_metrics == trainer.last_val_metrics
    assert other.train() == trainer.history  # nothing left to train


def _assert_one_line_error(trainer, path, match):
    with pytest.raises(CheckpointError, match=match) as info:
        trainer.load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_bad_checkpoints_raise_one_line_errors_naming_the_path(make_trainer, tiny_model, tmp_path):
    trainer = make_trainer(num_epochs=1)
    trainer.train()
    good = tmp_path / "ckpt" / "last.pt"
    _assert_one_line_error(trainer, tmp_path / "missing.pt", "no such file")

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _assert_one_line_error(trainer, truncated, "not a readable torch checkpoint")

    text = tmp_path / "notes.pt"
    text.write_text("hello")
    _assert_one_line_error(trainer, text, "a text file, not a chordexp training checkpoint")

    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    _assert_one_line_error(trainer, other, "not a chordexp training checkpoint")

    onecycle = make_trainer(num_epochs=1, scheduler="onecycle")
    _assert_one_line_error(
        onecycle, good, "saved with optimizer AdamW and scheduler 'constant', this trainer uses AdamW and 'onecycle'"
    )
    sgd = make_trainer(num_epochs=1, optimizer_factory=lambda p: torch.optim.SGD(p, lr=0.1))
    _assert_one_line_error(sgd, good, "saved with optimizer AdamW .* uses SGD")

    wider = make_trainer(num_epochs=1, model=tiny_model(hidden=8))
    _assert_one_line_error(wider, good, r"does not fit this model: .*shape mismatches \(e.g. body.1.weight")
    assert wider.current_epoch == 0  # nothing was half-restored


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    atomic_write_bytes(target, b"good")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"bad")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_resume_restores_the_order_of_loaders_with_their_own_generator(make_config, tiny_model, toy_dataset):
    """build_loaders shuffles with its own torch.Generator, not the global RNG: the
    checkpoint carries its state, so 2 + 2 epochs equal 4 with such loaders too."""
    from chordexp.data import build_loaders
    from chordexp.training import Trainer

    def trainer(num_epochs: int) -> Trainer:
        torch.manual_seed(0)
        train, val = build_loaders(toy_dataset(32, seed=1), toy_dataset(8, seed=2), batch_size=4, seed=5)
        return Trainer(tiny_model(), train, val, make_config(num_epochs=num_epochs))

    straight = trainer(4).train()
    first = trainer(2)
    first.train()
    second = trainer(4)
    second.load_checkpoint(first.checkpoint_dir / "last.pt")
    assert second.train() == straight
