"""Song mode in the trainer: frame targets with a mask, a song validator, the monitor.

Frame batches: audio ``(B, T * FEATURES)`` read as ``T`` frames of ``FEATURES`` values;
targets ``(B, T)`` per task plus ``mask``. Padded frames carry label -1, which no loss,
metric or range check may read.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Dict, List, Tuple

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from chordexp.config import TrainingConfig
from chordexp.model.loss import ChordRecognitionLoss
from chordexp.training import Callback, CheckpointError, Trainer
from chordexp.training.batch_checks import check_target_ranges

T, FEATURES = 6, 8
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


class TinyFrameModel(nn.Module):
    """(B, T * FEATURES) -> {task: (B, T, C)}, each frame on its own (no batch-dependent layers)."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(FEATURES, hidden), nn.Tanh())
        self.heads = nn.ModuleDict(
            {"chord_type": nn.Linear(hidden, 32), "root": nn.Linear(hidden, 12), "bass_note": nn.Linear(hidden, 12)}
        )

    def forward(self, audio: Tensor) -> Dict[str, Tensor]:
        hidden = self.body(audio.reshape(audio.shape[0], -1, FEATURES))
        return {task: head(hidden) for task, head in self.heads.items()}


class ToyFrameDataset(Dataset):
    """Labels readable from each frame's features; item ``i`` has ``T - i % 3`` valid frames
    (so batches differ in their number of valid frames); every 3rd frame is N."""

    def __init__(self, size: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        feats = torch.randn(size, T, FEATURES, generator=g)
        self.mask = torch.arange(T)[None, :] < (T - torch.arange(size) % 3)[:, None]
        chord_type = 1 + feats[..., :4].argmax(dim=-1)
        chord_type[:, ::3] = 0
        self.targets = {
            "chord_type": chord_type,
            "root": feats[..., 4:8].argmax(dim=-1),
            "bass_note": feats[..., :4].argmax(dim=-1),
        }
        for labels in self.targets.values():
            labels[~self.mask] = -1  # padding: never a class
        self.targets["mask"] = self.mask
        self.audio = (feats * self.mask[..., None]).reshape(size, T * FEATURES)

    def __len__(self) -> int:
        return self.audio.shape[0]

    def __getitem__(self, i: int) -> Tuple[Tensor, Dict[str, Tensor]]:
        return self.audio[i], {key: value[i] for key, value in self.targets.items()}


def _config(tmp_path, **overrides) -> TrainingConfig:
    fields = dict(
        learning_rate=2e-2,
        num_epochs=2,
        warmup_epochs=0,
        scheduler="constant",
        device="cpu",
        checkpoint_dir=str(tmp_path / "ckpt"),
        save_every=0,
        log_every=0,
        patience=0,
    )
    fields.update(overrides)
    return TrainingConfig(**fields)


def _frame_trainer(tmp_path, train_size=24, val_size=9, batch_size=4, seed=0, **kwargs) -> Trainer:
    song_validator = kwargs.pop("song_validator", None)
    callbacks = kwargs.pop("callbacks", ())
    torch.manual_seed(seed)
    model = TinyFrameModel()
    train = DataLoader(ToyFrameDataset(train_size, seed=1), batch_size=batch_size)
    val = DataLoader(ToyFrameDataset(val_size, seed=2), batch_size=batch_size)
    return Trainer(model, train, val, _config(tmp_path, **kwargs), song_validator=song_validator, callbacks=callbacks)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """One torch thread (the machine is shared)."""


# ------------------------------------------------------------------ frame batches
def test_frame_batches_train_and_validate(tmp_path):
    trainer = _frame_trainer(tmp_path, train_size=96, val_size=24, batch_size=8, num_epochs=5)
    history = trainer.train()
    assert list(history) == HISTORY_KEYS and all(len(v) == 5 for v in history.values())
    assert all(math.isfinite(v) for values in history.values() for v in values)
    assert history["train_loss"][-1] < 0.7 * history["train_loss"][0]
    assert history["val_chord_type_acc"][-1] > history["val_chord_type_acc"][0]
    assert history["val_root_acc"][-1] > 50.0  # chance is 25% (4 roots used)


def test_frame_losses_of_an_epoch_are_means_over_all_its_valid_frames(tmp_path):
    """Batches of 4, 4 and 1 items with 5 + 5 + ... valid frames: the epoch's chord-type
    loss is that of all valid frames at once (frame-weighted, not a mean of batch means)."""
    trainer = _frame_trainer(tmp_path, val_size=9, batch_size=4)
    metrics = trainer.validate()
    assert list(metrics) == VAL_KEYS
    whole = ToyFrameDataset(9, seed=2)
    with torch.no_grad():
        outputs = trainer.model(whole.audio)
        reference = trainer.criterion(outputs, whole.targets)
    assert metrics["chord_type_loss"] == pytest.approx(reference["chord_type_loss"].item(), rel=1e-5)
    valid = whole.mask
    chords = valid & (whole.targets["chord_type"] != 0)
    hits = {task: outputs[task].argmax(-1) == whole.targets[task] for task in ("chord_type", "root", "bass_note")}
    assert metrics["chord_type_acc"] == pytest.approx(100.0 * (hits["chord_type"] & valid).sum() / valid.sum())
    assert metrics["root_acc"] == pytest.approx(100.0 * (hits["root"] & chords).sum() / chords.sum())
    assert metrics["bass_note_acc"] == pytest.approx(100.0 * (hits["bass_note"] & chords).sum() / chords.sum())
    assert valid.sum().item() == 6 + 5 + 4 + 6 + 5 + 4 + 6 + 5 + 4  # padding differs between items


def test_train_loss_of_frame_batches_is_weighted_by_valid_frames(tmp_path):
    trainer = _frame_trainer(
        tmp_path, train_size=9, batch_size=4, num_epochs=1, learning_rate=1e-12
    )  # no real change of the weights
    batches = [(audio, targets) for audio, targets in trainer.train_loader]
    with torch.no_grad():
        per_batch = [
            (trainer.criterion(trainer.model(audio), targets)["total_loss"].item(), int(targets["mask"].sum()))
            for audio, targets in batches
        ]
    metrics = trainer.train_epoch()
    expected = sum(loss * frames for loss, frames in per_batch) / sum(frames for _, frames in per_batch)
    assert [frames for _, frames in per_batch] == [21, 20, 4]  # items 0-3, 4-7 and 8 (6 - i % 3 frames each)
    assert metrics["total_loss"] == pytest.approx(expected, rel=1e-5)


class _OracleFrames(nn.Module):
    """Predicts the classes written in each frame's first 3 values (chord_type, root, bass)."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, audio: Tensor) -> Dict[str, Tensor]:
        frames = audio.reshape(audio.shape[0], -1, 3).long()
        return {
            task: F.one_hot(frames[..., i], n).float() * 10 + self.unused
            for i, (task, n) in enumerate({"chord_type": 32, "root": 12, "bass_note": 12}.items())
        }


def test_validate_counts_valid_frames_and_applies_the_no_chord_rule(tmp_path):
    # item 0: 3 valid frames of 4; item 1: 2 valid frames. Predictions / labels by frame:
    predicted = torch.tensor(
        [[[0, 5, 1], [1, 3, 3], [3, 0, 1], [7, 7, 7]], [[2, 2, 2], [5, 1, 2], [0, 0, 0], [0, 0, 0]]]
    )
    targets = {
        "chord_type": torch.tensor([[0, 1, 2, 7], [2, 0, -1, -1]]),  # (0,3): a padded "hit"
        "root": torch.tensor([[5, 3, 4, 7], [9, 1, -1, -1]]),
        "bass_note": torch.tensor([[0, 3, 4, 7], [2, 2, -1, -1]]),
        "mask": torch.tensor([[True, True, True, False], [True, True, False, False]]),
    }
    audio = predicted.reshape(2, 12).float()
    dataset = [(audio[i], {k: v[i] for k, v in targets.items()}) for i in range(2)]
    loader = DataLoader(dataset, batch_size=1)  # two batches: 3 and 2 valid frames
    metrics = Trainer(_OracleFrames(), loader, loader, _config(tmp_path)).validate()
    assert metrics["chord_type_acc"] == pytest.approx(100 * 3 / 5)  # (0,0) (0,1) (1,0); not padded (0,3)
    assert metrics["root_acc"] == pytest.approx(100 * 1 / 3)  # chord frames (0,1) (0,2) (1,0): only (0,1)
    assert metrics["bass_note_acc"] == pytest.approx(100 * 2 / 3)  # (0,1) (1,0); N frame (1,1)'s hit not counted


def test_range_check_reads_valid_frames_only_and_names_item_and_frame(tmp_path):
    targets = {
        "chord_type": torch.tensor([[1, 2, -1], [3, 40, 0]]),
        "root": torch.zeros(2, 3, dtype=torch.long),
        "bass_note": torch.zeros(2, 3, dtype=torch.long),
        "mask": torch.tensor([[True, True, False], [True, True, True]]),
    }
    with pytest.raises(ValueError, match=r"target chord_type=40 \(item 1, frame 1 of the batch\)"):
        check_target_ranges(targets)
    targets["mask"][1, 1] = False  # now 40 is padding: not read
    check_target_ranges(targets)
    with pytest.raises(ValueError, match="mask"):
        check_target_ranges({**targets, "mask": targets["mask"][:, :2]})
    trainer = _frame_trainer(tmp_path)
    audio, moved = trainer._to_device(torch.zeros(2, T * FEATURES), targets)
    assert set(moved) == {"chord_type", "root", "bass_note", "mask"} and moved["mask"].dtype == torch.bool


# ---------------------------------------------------------------- song validator
class _Recorder(Callback):
    def __init__(self) -> None:
        self.epochs: List[Dict[str, float]] = []

    def on_epoch_end(self, trainer, epoch, metrics) -> None:
        self.epochs.append(dict(metrics))


def _scripted(**series: List[float]):
    """A song validator that returns the next value of each series at every call."""
    calls = []

    def validator(model: nn.Module) -> Dict[str, float]:
        assert not model.training  # validated in eval mode
        calls.append(1)
        return {name: values[len(calls) - 1] for name, values in series.items()}

    validator.calls = calls
    return validator


def test_song_metrics_join_validation_history_callbacks_log_and_checkpoints(tmp_path, caplog):
    validator = _scripted(majmin=[0.5, 0.75], root=[0.875, 0.625])
    recorder = _Recorder()
    trainer = _frame_trainer(tmp_path, num_epochs=2, song_validator=validator, callbacks=[recorder])
    with caplog.at_level(logging.INFO, logger="chordexp.training.trainer"):
        history = trainer.train()
    assert list(history) == HISTORY_KEYS + ["val_majmin", "val_root"]
    assert history["val_majmin"] == [0.5, 0.75] and history["val_root"] == [0.875, 0.625]
    assert list(trainer.last_val_metrics) == VAL_KEYS + ["majmin", "root"]
    assert trainer.last_val_metrics["majmin"] == 0.75
    assert [(m["val_majmin"], m["val_root"]) for m in recorder.epochs] == [(0.5, 0.875), (0.75, 0.625)]
    assert recorder.epochs[0]["val_root_acc"] == history["val_root_acc"][0]  # the loader's metric is kept
    lines = [r.getMessage() for r in caplog.records if "train_loss" in r.getMessage()]
    assert "val_majmin 0.5000 val_root 0.8750 lr" in lines[0]
    last = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert last["history"]["val_majmin"] == [0.5, 0.75] and last["last_val_metrics"]["root"] == 0.625
    trainer.export_history(tmp_path / "history.json")
    assert json.loads((tmp_path / "history.json").read_text())["val_root"] == [0.875, 0.625]
    restored = _frame_trainer(tmp_path, num_epochs=2, song_validator=_scripted(majmin=[], root=[]))
    restored.load_checkpoint(tmp_path / "ckpt" / "last.pt")
    assert restored.history == history


def test_a_metric_the_validator_leaves_out_is_nan_for_that_epoch(tmp_path):
    calls = []

    def validator(model):
        calls.append(1)
        return {"majmin": 0.5} if len(calls) != 2 else {"seg": 0.25}

    history = _frame_trainer(tmp_path, num_epochs=3, song_validator=validator).train()
    assert history["val_majmin"][0] == 0.5 and math.isnan(history["val_majmin"][1]) and history["val_majmin"][2] == 0.5
    assert math.isnan(history["val_seg"][0]) and history["val_seg"][1] == 0.25 and math.isnan(history["val_seg"][2])


def test_a_validator_result_that_cannot_be_a_metric_is_refused(tmp_path):
    with pytest.raises(ValueError, match="song_validator metric name 'root_acc' is not allowed"):
        _frame_trainer(tmp_path, song_validator=lambda model: {"root_acc": 1.0}).validate()
    with pytest.raises(ValueError, match="'loss' is not allowed"):  # val_loss is the loader's
        _frame_trainer(tmp_path, song_validator=lambda model: {"loss": 1.0}).validate()
    with pytest.raises(ValueError, match="song_validator metric majmin='high' is not a number"):
        _frame_trainer(tmp_path, song_validator=lambda model: {"majmin": "high"}).validate()
    metrics = _frame_trainer(tmp_path, song_validator=lambda model: {"majmin": torch.tensor(0.5)}).validate()
    assert metrics["majmin"] == 0.5 and type(metrics["majmin"]) is float


# ----------------------------------------------------------------------- monitor
def test_monitoring_a_song_metric_picks_best_pt_and_stops_by_it(tmp_path):
    majmin = [0.5, 0.7, 0.7005, 0.65, 0.9]  # 0.7005 is not > 0.7 + min_delta
    trainer = _frame_trainer(
        tmp_path,
        num_epochs=5,
        patience=2,
        min_delta=0.001,
        monitor="val_majmin",
        song_validator=_scripted(majmin=majmin),
    )
    assert trainer.monitor_mode == "max"  # auto: no "loss" in the name
    history = trainer.train()
    assert history["val_majmin"] == [0.5, 0.7, 0.7005, 0.65]
    assert trainer.stopped_early and trainer.current_epoch == 4
    assert (trainer.best_epoch, trainer.best_monitor_value) == (2, 0.7)
    assert torch.load(tmp_path / "ckpt" / "best.pt", weights_only=True)["epoch"] == 2
    assert trainer.best_val_loss == min(history["val_loss"])  # still the best validation loss seen


def test_monitor_of_a_loader_metric_and_an_explicit_mode(tmp_path, monkeypatch):
    trainer = _frame_trainer(tmp_path, num_epochs=4, monitor="val_root_acc", patience=2)
    accs = iter([10.0, 30.0, 20.0, 25.0])
    losses = iter([1.0, 2.0, 0.5, 0.7])
    monkeypatch.setattr(
        trainer, "validate", lambda: {**{k: 0.0 for k in VAL_KEYS}, "total_loss": next(losses), "root_acc": next(accs)}
    )
    trainer.train()
    assert (trainer.best_epoch, trainer.best_monitor_value, trainer.best_val_loss) == (2, 30.0, 0.5)
    assert trainer.stopped_early and trainer.current_epoch == 4
    minimise = _frame_trainer(tmp_path, num_epochs=3, monitor="val_root_acc", monitor_mode="min")
    accs = iter([10.0, 5.0, 7.0])
    monkeypatch.setattr(
        minimise, "validate", lambda: {**{k: 0.0 for k in VAL_KEYS}, "total_loss": 1.0, "root_acc": next(accs)}
    )
    minimise.train()
    assert (minimise.best_epoch, minimise.best_monitor_value) == (2, 5.0)


def test_default_monitor_keeps_the_val_loss_rule(tmp_path, monkeypatch):
    trainer = _frame_trainer(tmp_path, num_epochs=10, patience=2, min_delta=0.001)
    assert (trainer.monitor, trainer.monitor_mode) == ("val_loss", "min")
    losses = iter([1.0, 0.9, 0.8995, 0.95])
    monkeypatch.setattr(trainer, "validate", lambda: {**{k: 0.0 for k in VAL_KEYS}, "total_loss": next(losses)})
    trainer.train()
    assert (trainer.best_epoch, trainer.best_val_loss, trainer.best_monitor_value) == (2, 0.9, 0.9)


def test_a_bad_monitor_is_one_clear_error(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"monitor='val_majmin' is not a validation metric; valid: val_loss, "
        r"val_chord_type_acc, val_root_acc, val_bass_note_acc \(val_<name> needs",
    ):
        _frame_trainer(tmp_path, monitor="val_majmin")
    with pytest.raises(ValueError, match="unknown monitor_mode 'up'; valid: auto, min, max"):
        _frame_trainer(tmp_path, monitor_mode="up")
    trainer = _frame_trainer(tmp_path, monitor="val_majmn", song_validator=lambda model: {"majmin": 0.5})
    with pytest.raises(
        ValueError,
        match=r"monitor='val_majmn' is not a validation metric; valid: val_loss, "
        r"val_chord_type_acc, val_root_acc, val_bass_note_acc, val_majmin$",
    ):
        trainer.train()
    assert trainer.history["val_loss"] == []  # nothing recorded for the epoch
    assert not (tmp_path / "ckpt" / "last.pt").exists()


def _song_accuracy(model: nn.Module) -> Dict[str, float]:
    """A deterministic song validator: frame accuracies of the model on fixed songs."""
    songs = ToyFrameDataset(5, seed=9)
    outputs = model(songs.audio)
    valid = songs.mask
    return {
        name: float((outputs[task].argmax(-1) == songs.targets[task])[valid].float().mean())
        for name, task in (("majmin", "chord_type"), ("root", "root"))
    }


def test_resume_with_song_metrics_and_their_monitor_reproduces_the_uninterrupted_run(tmp_path):
    settings = dict(monitor="val_majmin", song_validator=_song_accuracy, patience=5, learning_rate=5e-3)
    full = _frame_trainer(tmp_path / "full", num_epochs=4, **settings)
    full_history = full.train()
    first = _frame_trainer(tmp_path / "part", num_epochs=2, **settings)
    first.train()
    resumed = _frame_trainer(tmp_path / "part", num_epochs=4, seed=5, **settings)  # other init: all is restored
    resumed.load_checkpoint(tmp_path / "part" / "ckpt" / "last.pt")
    assert resumed.history == first.history and resumed.best_monitor_value == first.best_monitor_value
    history = resumed.train()
    assert history == full_history and list(history)[-2:] == ["val_majmin", "val_root"]
    assert (
        resumed.best_epoch,
        resumed.best_monitor_value,
        resumed.best_val_loss,
        resumed.epochs_without_improvement,
    ) == (full.best_epoch, full.best_monitor_value, full.best_val_loss, full.epochs_without_improvement)
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)


def test_resume_under_another_monitor_is_refused_and_old_checkpoints_mean_val_loss(tmp_path):
    trainer = _frame_trainer(tmp_path, num_epochs=1)
    trainer.train()
    last = tmp_path / "ckpt" / "last.pt"
    other = _frame_trainer(tmp_path, num_epochs=2, monitor="val_root_acc")
    with pytest.raises(
        CheckpointError,
        match=r"saved monitoring val_loss \(min\), this trainer monitors "
        r"val_root_acc \(max\)",
    ):
        other.load_checkpoint(last)
    state = torch.load(last, weights_only=True)
    for key in ("monitor", "monitor_mode", "best_monitor_value"):  # a checkpoint from before the monitor
        del state[key]
    state["format_version"] = 1  # which all such checkpoints are
    torch.save(state, tmp_path / "old.pt")
    restored = _frame_trainer(tmp_path, num_epochs=2)
    restored.load_checkpoint(tmp_path / "old.pt")
    assert restored.best_monitor_value == trainer.best_val_loss == restored.best_val_loss


# --------------------------------------------------------------------------- DDP
def _ddp_validator(rank: int):
    def validator(model: nn.Module) -> Dict[str, float]:
        assert rank == 0, "the song validator runs on rank 0 only"
        return _song_accuracy(model)

    return validator


def _ddp_worker(rank: int, port: int, out: str) -> None:
    """Rank ``rank`` of 2 trains frame batches with a song validator; rank 0 saves what it saw."""
    import torch.distributed as dist

    from chordexp.training.distributed import DistContext

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    context = DistContext(rank=rank, world_size=2, local_rank=rank, local_world_size=2, backend="gloo")
    result = _train_frames(out + f".ckpt{rank}", context, _ddp_validator(rank))
    torch.save(result, f"{out}.{rank}")
    dist.destroy_process_group()


def _train_frames(checkpoint_dir: str, distributed, validator) -> Dict[str, object]:
    from chordexp.data.loaders import build_loaders

    torch.manual_seed(0)
    model = TinyFrameModel()
    train, val = build_loaders(
        ToyFrameDataset(24, seed=1), ToyFrameDataset(8, seed=2), batch_size=4, seed=3, distributed=distributed
    )
    config = TrainingConfig(
        learning_rate=2e-2,
        num_epochs=2,
        warmup_epochs=0,
        scheduler="constant",
        device="cpu",
        checkpoint_dir=checkpoint_dir,
        save_every=0,
        log_every=0,
        patience=0,
        monitor="val_majmin",
    )
    trainer = Trainer(
        model, train, val, config, criterion=ChordRecognitionLoss(), distributed=distributed, song_validator=validator
    )
    history = trainer.train()
    return {"history": history, "model": trainer.model.state_dict(), "best_epoch": trainer.best_epoch}


def test_two_ranks_train_frames_like_one_process_and_share_rank_0s_song_metrics(tmp_path):
    """Ranks hold different numbers of valid frames: the count hooks and the frame weights
    make the 2-process run compute the 1-process run's losses, accuracies and weights."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = str(tmp_path / "ddp")
    mp.spawn(_ddp_worker, args=(port, out), nprocs=2)
    single = _train_frames(str(tmp_path / "single"), None, _song_accuracy)
    ranks = [torch.load(f"{out}.{rank}", weights_only=True) for rank in range(2)]
    for got in ranks:
        assert list(got["history"]) == list(single["history"])
        for key, values in single["history"].items():
            if key.endswith("_acc") or key in ("val_majmin", "val_root"):
                assert got["history"][key] == values, key
            else:
                assert got["history"][key] == pytest.approx(values, rel=1e-5), key
        assert got["best_epoch"] == single["best_epoch"]
        for key, value in single["model"].items():
            torch.testing.assert_close(got["model"][key], value, rtol=1e-5, atol=1e-6)
