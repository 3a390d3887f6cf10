"""TensorBoard event files written by TensorBoardCallback, read back as TensorBoard reads them."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from chordexp.config import TrainingConfig
from chordexp.data import DummyChordDataset
from chordexp.experiment.schemas import resolved_dict
from chordexp.experiment.tracking import (
    TensorBoardCallback,
    epoch_tag,
    flatten_hparams,
    hparam_value,
    wait_past_event_files,
)
from chordexp.training import Callback, Trainer

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402  (after the importorskip)

NUM_SAMPLES = 64
TRAIN_SIZE, BATCH = 12, 4
STEPS_PER_EPOCH = TRAIN_SIZE // BATCH
EPOCH_TAGS = {
    *(
        f"{split}/{loss}"
        for split in ("train", "val")
        for loss in ("total_loss", "chord_type_loss", "root_loss", "bass_note_loss")
    ),
    "val/chord_type_acc",
    "val/root_acc",
    "val/bass_note_acc",
    "learning_rate",
    "epoch_seconds",
}
STEP_TAGS = {f"step/{key}" for key in ("total_loss", "chord_type_loss", "root_loss", "bass_note_loss", "learning_rate")}
HISTORY_OF_TAG = {
    "train/total_loss": "train_loss",
    "val/total_loss": "val_loss",
    "learning_rate": "learning_rate",
    "val/chord_type_acc": "val_chord_type_acc",
    "val/root_acc": "val_root_acc",
    "val/bass_note_acc": "val_bass_note_acc",
}
CONFIG = {
    "optimizer": {"_target_": "torch.optim.AdamW", "lr": 1e-3, "betas": [0.9, 0.999]},
    "trainer": {"num_epochs": 4, "deterministic": False},
    "eval_songs": None,
    "seed": 0,
    "scheduler": {"options": {}},
}


class TinyModel(nn.Module):
    """(B, NUM_SAMPLES) -> the three logit heads; no batch-dependent layers."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(NUM_SAMPLES, 16), nn.Tanh())
        self.heads = nn.ModuleDict(
            {"chord_type": nn.Linear(16, 32), "root": nn.Linear(16, 12), "bass_note": nn.Linear(16, 12)}
        )

    def forward(self, audio: Tensor) -> Dict[str, Tensor]:
        hidden = self.body(audio)
        return {task: head(hidden) for task, head in self.heads.items()}


class StepRecorder(Callback):
    """Keeps what the trainer hands to on_step."""

    def __init__(self) -> None:
        self.steps: List[Tuple[int, Dict[str, float]]] = []

    def on_step(self, trainer, step, metrics) -> None:
        self.steps.append((step, dict(metrics)))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_trainer(tmp_path: Path, num_epochs: int, *callbacks: Callback, save_every: int = 0) -> Trainer:
    torch.manual_seed(0)
    train = DataLoader(DummyChordDataset(TRAIN_SIZE, num_samples=NUM_SAMPLES, split="train"), batch_size=BATCH)
    val = DataLoader(DummyChordDataset(8, num_samples=NUM_SAMPLES, split="val"), batch_size=BATCH)
    config = TrainingConfig(
        learning_rate=1e-2,
        num_epochs=num_epochs,
        warmup_epochs=1,
        scheduler="cosine",
        device="cpu",
        checkpoint_dir=str(tmp_path / "ckpt"),
        save_every=save_every,
        log_every=1,
        patience=0,
    )
    return Trainer(TinyModel(), train, val, config, callbacks=list(callbacks))


def read_run(folder: Path):
    accumulator = event_accumulator.EventAccumulator(str(folder))
    accumulator.Reload()
    return accumulator


def scalars(accumulator, tag: str) -> List[Tuple[int, float]]:
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def test_epoch_and_step_scalars_equal_what_the_trainer_reported(tmp_path):
    recorder = StepRecorder()
    trainer = make_trainer(tmp_path, 3, TensorBoardCallback(tmp_path / "tb", CONFIG), recorder)
    history = trainer.train()

    epochs = read_run(tmp_path / "tb" / "epoch")
    assert EPOCH_TAGS <= set(epochs.Tags()["scalars"])
    for tag in EPOCH_TAGS:
        assert [step for step, _ in scalars(epochs, tag)] == [1, 2, 3], tag
    for tag, key in HISTORY_OF_TAG.items():
        assert [value for _, value in scalars(epochs, tag)] == pytest.approx(history[key], rel=1e-6), tag
    assert all(value > 0 for _, value in scalars(epochs, "epoch_seconds"))

    steps = read_run(tmp_path / "tb" / "step")
    assert set(steps.Tags()["scalars"]) == STEP_TAGS
    assert [step for step, _ in recorder.steps] == list(range(1, 3 * STEPS_PER_EPOCH + 1))
    for key in ("total_loss", "chord_type_loss", "root_loss", "bass_note_loss", "learning_rate"):
        written = scalars(steps, f"step/{key}")
        assert [step for step, _ in written] == [step for step, _ in recorder.steps], key
        assert [value for _, value in written] == pytest.approx([m[key] for _, m in recorder.steps], rel=1e-6)


def test_config_is_written_as_hparams_with_final_and_best_metrics(tmp_path):
    trainer = make_trainer(tmp_path, 3, TensorBoardCallback(tmp_path / "tb", CONFIG))
    history = trainer.train()
    run = read_run(tmp_path / "tb" / "epoch")

    content = run.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = {key: getattr(value, value.WhichOneof("kind")) for key, value in start.session_start_info.hparams.items()}
    assert hparams == {
        "optimizer._target_": "torch.optim.AdamW",
        "optimizer.lr": 1e-3,
        "optimizer.betas": "[0.9, 0.999]",
        "trainer.num_epochs": 4.0,
        "trainer.deterministic": 0.0,
        "eval_songs": "null",
        "seed": 0.0,
        "scheduler.options": "{}",
    }

    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    metric_tags = {info.name.tag for info in experiment.metric_infos}
    assert {
        "hparam/final_val_loss",
        "hparam/best_val_loss",
        "hparam/best_epoch",
        "hparam/epochs_run",
        "hparam/final_val_chord_type_acc",
        "hparam/best_val_chord_type_acc",
    } <= metric_tags
    best = trainer.best_epoch
    expected = {
        "hparam/final_val_loss": history["val_loss"][-1],
        "hparam/final_train_loss": history["train_loss"][-1],
        "hparam/best_val_loss": history["val_loss"][best - 1],
        "hparam/best_val_root_acc": history["val_root_acc"][best - 1],
        "hparam/best_epoch": best,
        "hparam/epochs_run": 3,
    }
    for tag, value in expected.items():
        assert tag in metric_tags
        assert scalars(run, tag) == [(3, pytest.approx(value, rel=1e-6))], tag


def test_resume_from_last_checkpoint_gives_every_epoch_and_step_once(tmp_path):
    first = make_trainer(tmp_path, 2, TensorBoardCallback(tmp_path / "tb", CONFIG))
    first.train()
    resumed = make_trainer(tmp_path, 4, TensorBoardCallback(tmp_path / "tb", CONFIG))
    resumed.load_checkpoint(tmp_path / "ckpt" / "last.pt")
    history = resumed.train()

    epochs, steps = read_run(tmp_path / "tb" / "epoch"), read_run(tmp_path / "tb" / "step")
    for tag in EPOCH_TAGS:
        assert [step for step, _ in scalars(epochs, tag)] == [1, 2, 3, 4], tag
    for tag, key in HISTORY_OF_TAG.items():
        assert [value for _, value in scalars(epochs, tag)] == pytest.approx(history[key], rel=1e-6), tag
    for tag in STEP_TAGS:
        assert [step for step, _ in scalars(steps, tag)] == list(range(1, 4 * STEPS_PER_EPOCH + 1)), tag
    assert scalars(epochs, "hparam/epochs_run")[-1] == (4, 4.0)


def test_resume_from_an_older_checkpoint_hides_what_the_first_run_wrote_after_it(tmp_path):
    """The first run reaches epoch 3; resuming from epoch_002.pt must replace epoch 3 and its
    steps, not add a second copy (TensorBoard purges them via the writers' purge_step)."""
    make_trainer(tmp_path, 3, TensorBoardCallback(tmp_path / "tb", CONFIG), save_every=2).train()
    resumed_at = time.time()
    resumed = make_trainer(tmp_path, 4, TensorBoardCallback(tmp_path / "tb", CONFIG))
    resumed.load_checkpoint(tmp_path / "ckpt" / "epoch_002.pt")
    history = resumed.train()

    epochs, steps = read_run(tmp_path / "tb" / "epoch"), read_run(tmp_path / "tb" / "step")
    assert len(list((tmp_path / "tb" / "epoch").glob("events.out.tfevents.*"))) == 2  # both runs' files are read
    for tag in EPOCH_TAGS:
        events = epochs.Scalars(tag)
        assert [event.step for event in events] == [1, 2, 3, 4], tag
        assert [event.wall_time >= resumed_at for event in events] == [False, False, True, True], tag
    assert [v for _, v in scalars(epochs, "val/total_loss")] == pytest.approx(history["val_loss"], rel=1e-6)
    for tag in STEP_TAGS:
        events = steps.Scalars(tag)
        assert [event.step for event in events] == list(range(1, 4 * STEPS_PER_EPOCH + 1)), tag
        assert all((event.wall_time >= resumed_at) == (event.step > 2 * STEPS_PER_EPOCH) for event in events)
    assert scalars(epochs, "hparam/epochs_run")[-1] == (4, 4.0)


def test_a_resume_within_the_same_second_still_purges(tmp_path, monkeypatch):
    """Event files are read in name order; in one second names order by a counter as text
    ('10' before '9'), so the resumed writers wait for the next second."""
    from tensorboard.summary.writer import event_file_writer

    monkeypatch.setattr(event_file_writer, "_global_uid", event_file_writer.AtomicCounter(8))
    make_trainer(tmp_path, 3, TensorBoardCallback(tmp_path / "tb", CONFIG), save_every=2).train()
    resumed = make_trainer(tmp_path, 3, TensorBoardCallback(tmp_path / "tb", CONFIG))
    resumed.load_checkpoint(tmp_path / "ckpt" / "epoch_002.pt")
    resumed.train()
    names = sorted(path.name for path in (tmp_path / "tb" / "epoch").glob("events.out.tfevents.*"))
    assert [name.rsplit(".", 1)[1] for name in names] == ["8", "10"]  # the first run's file is read first
    assert [step for step, _ in scalars(read_run(tmp_path / "tb" / "epoch"), "val/total_loss")] == [1, 2, 3]


def test_wait_past_event_files(tmp_path):
    now = int(time.time())
    (tmp_path / f"events.out.tfevents.{now:010d}.host.name.1.0").touch()
    wait_past_event_files(tmp_path)
    assert time.time() >= now + 1
    (tmp_path / f"events.out.tfevents.{now + 3600:010d}.host.1.1").touch()  # a clock that jumped back
    start = time.time()
    wait_past_event_files(tmp_path)
    assert time.time() - start < 0.5


def test_events_are_on_disk_after_every_epoch(tmp_path):
    """A run killed between epochs keeps the epochs it finished."""
    seen: List[int] = []

    class ReadBack(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            seen.append(len(read_run(tmp_path / "tb" / "epoch").Scalars("val/total_loss")))

    make_trainer(tmp_path, 3, TensorBoardCallback(tmp_path / "tb", CONFIG), ReadBack()).train()
    assert seen == [1, 2, 3]


def test_flatten_hparams_gives_dotted_tensorboard_values(compose_cfg):
    flat = flatten_hparams(resolved_dict(compose_cfg("experiment=smoke")))
    assert flat["optimizer.lr"] == pytest.approx(1e-3) and flat["trainer.num_epochs"] == 3
    assert flat["optimizer.betas"] == "[0.9, 0.999]" and flat["model._target_"].endswith("ChordRecognitionModel")
    assert flat["eval_songs"] == "null"
    assert all(isinstance(value, (bool, int, float, str)) for value in flat.values())
    assert not any(isinstance(value, str) and value.startswith("{") and value != "{}" for value in flat.values())


def test_hparam_values_and_epoch_tags():
    assert [hparam_value(v) for v in (True, 3, 0.5, "x", None, (1, "a"), {"k": 1})] == [
        True,
        3,
        0.5,
        "x",
        "null",
        json.dumps([1, "a"]),
        json.dumps({"k": 1}),
    ]
    assert math.isnan(hparam_value(float("nan")))
    assert [epoch_tag(k) for k in ("train_total_loss", "val_root_acc", "learning_rate", "epoch_seconds")] == [
        "train/total_loss",
        "val/root_acc",
        "learning_rate",
        "epoch_seconds",
    ]


def test_the_module_imports_without_tensorboard_and_the_callback_needs_it(tmp_path, monkeypatch):
    """tensorboard is imported by the constructor only: the command line does not pay for it."""
    import chordexp.experiment.tracking

    for name in [
        name
        for name in sys.modules
        if name.split(".")[0] == "tensorboard" or name.startswith("torch.utils.tensorboard")
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # None: any import of it fails
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    spec = importlib.util.spec_from_file_location("tracking_without_tensorboard", chordexp.experiment.tracking.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(ImportError):
        module.TensorBoardCallback(tmp_path / "tb", CONFIG)
    assert not (tmp_path / "tb").exists()
