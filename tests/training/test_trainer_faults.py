"""Faults inside the loop: non-finite losses/gradients (skip or stop) and stop requests."""

from __future__ import annotations

import math
from typing import List, Tuple

import pytest
import torch

from chordexp.training import Callback, NonFiniteLossError, TrainingInterrupted


def _finite_weights(model) -> bool:
    return all(torch.isfinite(v).all() for v in model.state_dict().values())


def test_skip_mode_skips_the_bad_step_counts_it_and_keeps_weights_finite(make_trainer, caplog):
    trainer = make_trainer(num_epochs=2, batch_size=4, train_size=16, on_nonfinite="skip")
    trainer.train_loader.dataset.audio[8:12] = float("nan")  # batch 3 of every epoch
    history = trainer.train()
    assert trainer.skipped_steps == 2  # once per epoch
    assert _finite_weights(trainer.model)
    assert all(math.isfinite(v) for v in history["train_loss"])  # the bad batch is left out
    assert sum("optimizer step skipped" in r.getMessage() for r in caplog.records) == 2
    assert "epoch 1, batch 3" in caplog.text


def test_skip_mode_leaves_out_exactly_the_bad_batch(make_trainer):
    """The epoch's train loss equals the mean over the good batches alone."""
    trainer = make_trainer(
        num_epochs=1,
        batch_size=4,
        train_size=16,
        on_nonfinite="skip",
        optimizer_factory=lambda params: torch.optim.SGD(params, lr=0.0),
    )
    dataset = trainer.train_loader.dataset
    with torch.no_grad():
        expected = (
            sum(
                trainer.criterion(
                    trainer.model(dataset.audio[start : start + 4]),
                    {k: v[start : start + 4] for k, v in dataset.targets.items()},
                )["total_loss"].item()
                for start in (0, 4, 12)
            )
            / 3
        )
    dataset.audio[8:12] = float("nan")
    assert trainer.train_epoch()["total_loss"] == pytest.approx(expected, rel=1e-5)


def test_stop_mode_catches_a_non_finite_gradient_with_a_finite_loss(make_trainer, tmp_path):
    trainer = make_trainer(num_epochs=2, batch_size=4, gradient_clip=1.0)
    hook = trainer.model.heads["root"].weight.register_hook(lambda grad: grad * float("inf"))
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, batch 1"):
        trainer.train()
    hook.remove()
    assert not (tmp_path / "ckpt" / "last.pt").exists()  # nothing written from a poisoned epoch


def test_unknown_nonfinite_policy_is_rejected(make_trainer):
    with pytest.raises(ValueError, match="unknown on_nonfinite 'ignore'; valid: stop, skip"):
        make_trainer(on_nonfinite="ignore")


class _Recorder(Callback):
    def __init__(self) -> None:
        self.events: List[Tuple] = []

    def on_train_start(self, trainer) -> None:
        self.events.append(("start", trainer.current_epoch))

    def on_step(self, trainer, step, metrics) -> None:
        self.events.append(("step", step, round(metrics["learning_rate"], 6), sorted(metrics)))

    def on_epoch_end(self, trainer, epoch, metrics) -> None:
        self.events.append(("epoch", epoch, metrics["val_total_loss"], metrics["train_total_loss"]))

    def on_train_end(self, trainer) -> None:
        self.events.append(("end", trainer.current_epoch))


def test_callbacks_see_steps_epochs_and_the_end(make_trainer):
    recorder = _Recorder()
    trainer = make_trainer(num_epochs=2, batch_size=4, train_size=16, log_every=2)
    trainer.callbacks.append(recorder)
    history = trainer.train()
    kinds = [event[0] for event in recorder.events]
    assert kinds == ["start", "step", "step", "epoch", "step", "step", "epoch", "end"]
    steps = [event[1] for event in recorder.events if event[0] == "step"]
    assert steps == [2, 4, 6, 8]  # global batch counts
    assert recorder.events[1][3] == sorted(
        ["total_loss", "chord_type_loss", "root_loss", "bass_note_loss", "learning_rate"]
    )
    epochs = [event for event in recorder.events if event[0] == "epoch"]
    assert [e[2] for e in epochs] == history["val_loss"] and [e[3] for e in epochs] == history["train_loss"]


def test_stop_request_mid_epoch_drops_the_partial_epoch(make_trainer, tmp_path):
    trainer = make_trainer(num_epochs=3, batch_size=4, train_size=16)
    recorder = _Recorder()
    trainer.callbacks.append(recorder)
    real_validate = trainer.validate
    calls = {"n": 0}

    def validate_then_signal():
        calls["n"] += 1
        metrics = real_validate()
        if calls["n"] == 1:
            trainer.request_stop("SIGTERM")  # arrives while epoch 2 would train
        return metrics

    trainer.validate = validate_then_signal
    with pytest.raises(TrainingInterrupted, match=r"SIGTERM after epoch 1"):
        trainer.train()
    assert trainer.current_epoch == 1 and len(trainer.history["val_loss"]) == 1
    assert torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)["epoch"] == 1
    assert recorder.events[-1] == ("end", 1)


def test_stop_request_during_a_batch_stops_after_it(make_trainer, tmp_path):
    trainer = make_trainer(num_epochs=2, batch_size=4, train_size=16)
    trainer.train()
    trainer.config.num_epochs = 4
    before = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)

    class StopAtBatch2(Callback):
        def on_step(self, trainer, step, metrics) -> None:
            trainer.request_stop("SIGINT")

    trainer.config.log_every = 2
    trainer.callbacks.append(StopAtBatch2())
    with pytest.raises(TrainingInterrupted, match=r"SIGINT during epoch 3 \(batch 2/4\).*holds epoch 2"):
        trainer.train()
    after = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert after["epoch"] == 2
    assert all(torch.equal(before["model"][k], after["model"][k]) for k in before["model"])


def test_compile_switch_compiles_the_training_forward_only(make_trainer, monkeypatch, tmp_path):
    compiled = []

    def fake_compile(module):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    trainer = make_trainer(num_epochs=1, compile=True)
    assert compiled == [trainer.model]
    trainer.train()
    assert "body.1.weight" in torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)["model"]
    monkeypatch.setattr(torch, "compile", lambda module: pytest.fail("compiled without being asked"))
    make_trainer(num_epochs=1)


def test_pin_memory_only_for_cuda(monkeypatch):
    from chordexp.experiment.resources import pin_memory_for

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not pin_memory_for("auto") and not pin_memory_for("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pin_memory_for("auto") and pin_memory_for("cuda") and pin_memory_for("cuda:1")
    assert not pin_memory_for("cpu")
