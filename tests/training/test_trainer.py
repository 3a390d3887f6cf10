"""The training loop: keys, learning, accumulation, precision, early stopping, errors."""

from __future__ import annotations

import json
import logging
from typing import Dict

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from chordexp.config import TrainingConfig
from chordexp.training import NonFiniteLossError, Trainer
from chordexp.training.trainer import resolve_device

HISTORY_KEYS = ["train_loss", "val_loss", "val_chord_type_acc", "val_root_acc", "val_bass_note_acc", "learning_rate"]
VAL_KEYS = [
    "total_loss",
    "chord_type_loss",
    "root_loss",
    "bass_note_loss",
    "chord_type_acc",
    "root_acc",
    "bass_note_acc",
]


def _weights(model: nn.Module) -> Dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_public_imports_and_defaults(make_trainer):
    from chordexp.training.metrics import (  # noqa: F401
        MetricsTracker,
        compute_confusion_matrix,
        compute_per_class_metrics,
        compute_topk_accuracy,
    )

    trainer = make_trainer()
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 0.01
    assert trainer.criterion.label_smoothing == 0.1
    assert trainer.device == torch.device("cpu")


def test_metric_and_history_keys_are_exact(make_trainer, tmp_path):
    trainer = make_trainer(num_epochs=2)
    assert list(trainer.train_epoch()) == [
        "total_loss",
        "chord_type_loss",
        "root_loss",
        "bass_note_loss",
        "learning_rate",
    ]
    assert list(trainer.validate()) == VAL_KEYS
    trainer = make_trainer(num_epochs=2)
    history = trainer.train()
    assert list(history) == HISTORY_KEYS and all(len(v) == 2 for v in history.values())
    assert trainer.current_epoch == 2 and trainer.last_val_metrics["total_loss"] == history["val_loss"][-1]
    trainer.export_history(tmp_path / "out" / "history.json")
    assert json.loads((tmp_path / "out" / "history.json").read_text()) == history


def test_loss_goes_down_on_a_learnable_toy_problem(make_trainer):
    trainer = make_trainer(
        train_size=512, val_size=128, batch_size=32, num_epochs=6, learning_rate=2e-2, scheduler="cosine", shuffle=True
    )
    history = trainer.train()
    assert history["train_loss"][-1] < 0.6 * history["train_loss"][0]
    assert history["val_loss"][-1] < 0.9 * history["val_loss"][0]
    assert history["val_root_acc"][-1] > 60.0  # chance is 25% (4 roots used)
    assert history["val_chord_type_acc"][-1] > history["val_chord_type_acc"][0]
    assert history["learning_rate"][0] == pytest.approx(2e-2)
    assert history["learning_rate"][-1] == pytest.approx(2e-4)  # cosine minimum at the last epoch


class _OracleModel(nn.Module):
    """Predicts the classes written in audio[:, 0:3] (chord_type, root, bass)."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, audio: Tensor) -> Dict[str, Tensor]:
        sizes = {"chord_type": 32, "root": 12, "bass_note": 12}
        return {
            task: F.one_hot(audio[:, i].long(), n).float() * 10 + self.unused
            for i, (task, n) in enumerate(sizes.items())
        }


def test_validate_applies_the_no_chord_rule_to_root_and_bass(make_config):
    predicted = torch.tensor([[0, 5, 1], [1, 3, 3], [3, 0, 4], [5, 7, 2]], dtype=torch.float)
    audio = F.pad(predicted, (0, 5))
    targets = {
        "chord_type": torch.tensor([0, 1, 2, 0]),
        "root": torch.tensor([5, 3, 4, 7]),
        "bass_note": torch.tensor([0, 3, 4, 1]),
    }
    dataset = [(audio[i], {k: v[i] for k, v in targets.items()}) for i in range(4)]
    loader = DataLoader(dataset, batch_size=2)
    metrics = Trainer(_OracleModel(), loader, loader, make_config()).validate()
    assert metrics["chord_type_acc"] == pytest.approx(50.0)
    assert metrics["root_acc"] == pytest.approx(50.0)  # 75% if N items counted
    assert metrics["bass_note_acc"] == pytest.approx(100.0)  # 50% if N items counted


@pytest.mark.parametrize("train_size", [16, 12])  # 12: the last accumulation group has one batch
def test_grad_accumulation_matches_one_big_batch(make_trainer, toy_dataset, train_size):
    big = make_trainer(
        train_size=train_size, batch_size=8, with_no_chord=False, num_epochs=2, scheduler="onecycle", warmup_epochs=1
    )
    big.train_loader = DataLoader(
        toy_dataset(train_size, seed=1, with_no_chord=False),
        batch_sampler=[list(range(0, 8)), list(range(8, train_size))],
    )
    accum = make_trainer(
        train_size=train_size,
        batch_size=4,
        with_no_chord=False,
        num_epochs=2,
        scheduler="onecycle",
        warmup_epochs=1,
        grad_accum_steps=2,
    )
    big_history, accum_history = big.train(), accum.train()
    assert accum.scheduler.total_steps == 4  # 2 optimizer steps per epoch
    for key, value in _weights(big.model).items():
        torch.testing.assert_close(_weights(accum.model)[key], value, rtol=1e-5, atol=1e-6)
    assert accum_history["train_loss"] == pytest.approx(big_history["train_loss"], rel=1e-5)
    assert accum_history["learning_rate"] == pytest.approx(big_history["learning_rate"])


def test_optimizer_factory_and_onecycle_end_at_min_lr(make_trainer):
    trainer = make_trainer(
        num_epochs=2,
        scheduler="onecycle",
        warmup_epochs=1,
        train_size=20,
        batch_size=4,
        grad_accum_steps=2,
        learning_rate=1.0,
        optimizer_factory=lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9),
    )
    trainer.train()
    assert isinstance(trainer.optimizer, torch.optim.SGD)
    assert trainer.scheduler.total_steps == 6  # 2 epochs x ceil(5 batches / 2)
    assert trainer.scheduler.last_epoch == 6  # one step per optimizer step; the last one holds min lr
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1.0 / 25 / 1e4)


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_mixed_precision_autocast_runs_on_cpu(make_trainer, precision, dtype):
    trainer = make_trainer(num_epochs=1, mixed_precision=precision)
    history = trainer.train()
    assert trainer.model.last_hidden_dtype == dtype
    assert trainer.scaler.is_enabled() == (precision == "fp16")
    assert all(torch.isfinite(torch.tensor(v)).all() for v in history.values())
    assert trainer.model.body[1].weight.dtype == torch.float32  # weights stay fp32


def test_early_stopping_uses_min_delta_and_patience(make_trainer, monkeypatch):
    trainer = make_trainer(num_epochs=10, patience=2, min_delta=0.001)
    losses = iter([1.0, 0.9, 0.8995, 0.95, 0.5, 0.4])
    metrics = {key: 0.0 for key in VAL_KEYS}
    monkeypatch.setattr(trainer, "validate", lambda: {**metrics, "total_loss": next(losses)})
    history = trainer.train()
    # 0.8995 is not < 0.9 - 0.001 -> 1 epoch without improvement; 0.95 -> 2 -> stop after epoch 4
    assert history["val_loss"] == [1.0, 0.9, 0.8995, 0.95]
    assert trainer.stopped_early and trainer.current_epoch == 4
    assert trainer.best_epoch == 2 and trainer.best_val_loss == 0.9


def test_patience_zero_disables_early_stopping(make_trainer):
    trainer = make_trainer(num_epochs=4, patience=0, optimizer_factory=lambda p: torch.optim.SGD(p, lr=0.0))
    history = trainer.train()  # lr 0: val loss never improves after epoch 1
    assert len(history["val_loss"]) == 4 and not trainer.stopped_early
    assert trainer.epochs_without_improvement == 3 and trainer.best_epoch == 1


def test_non_finite_loss_names_epoch_and_batch_and_keeps_checkpoints(make_trainer, tmp_path, monkeypatch):
    trainer = make_trainer(num_epochs=3, batch_size=4)
    real_validate = trainer.validate

    def validate_then_poison():
        metrics = real_validate()
        trainer.train_loader.dataset.audio[8:12] = float("nan")  # batch 3 of the next epoch
        return metrics

    monkeypatch.setattr(trainer, "validate", validate_then_poison)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, batch 3"):
        trainer.train()
    saved = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert saved["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def test_logs_one_line_per_epoch_and_every_log_every_batches(make_trainer, caplog):
    trainer = make_trainer(num_epochs=2, log_every=2, train_size=16, batch_size=4)
    with caplog.at_level(logging.INFO, logger="chordexp.training.trainer"):
        trainer.train()
    lines = [r.getMessage() for r in caplog.records]
    assert sum(line.startswith("epoch 1/2 batch") for line in lines) == 2
    epoch_lines = [line for line in lines if "val_loss" in line and "train_loss" in line]
    assert len(epoch_lines) == 2 and epoch_lines[1].startswith("epoch 2/2 train_loss")
    assert "acc chord_type" in epoch_lines[0] and "lr 1.000e-02" in epoch_lines[0]


def test_device_errors_are_one_clear_line(make_trainer):
    assert resolve_device("auto").type in {"cpu", "cuda"}
    with pytest.raises(ValueError, match="unknown device 'tpu'; valid: auto, cpu, cuda, cuda:N, mps"):
        make_trainer(device="tpu")
    with pytest.raises(ValueError, match="unknown mixed_precision 'fp8'"):
        make_trainer(mixed_precision="fp8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda:1' but CUDA is not available"):
            make_trainer(device="cuda:1")


def test_default_config_and_criterion_are_used_when_none_given(toy_dataset, tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loader = DataLoader(toy_dataset(8), batch_size=4)
    trainer = Trainer(tiny_model(), loader, loader)
    assert trainer.config == TrainingConfig()
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4 / 6)  # cosine warmup 1/(5+1)
