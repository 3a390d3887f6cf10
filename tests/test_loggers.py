"""The experiment trackers of ``conf/logger``, each read back with its own library:
metrics.csv with csv, the MLflow store with MlflowClient, the offline wandb run file
with wandb's protobuf records. A resumed run must continue the same tracker run with
every epoch once."""

from __future__ import annotations

import csv
import json
import shutil
import struct
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from torch.utils.data import DataLoader

from chordexp.config import TrainingConfig
from chordexp.data import DummyChordDataset
from chordexp.errors import ConfigValueError
from chordexp.experiment.components import build_loggers
from chordexp.experiment.task import train
from chordexp.loggers import CSVLogger, MLflowLogger, TensorBoardLogger, WandbLogger, finish_loggers
from chordexp.training import Trainer
from tests.test_tracking import NUM_SAMPLES, TinyModel  # the same three-head model the TensorBoard tests train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIG = {
    "optimizer": {"_target_": "torch.optim.AdamW", "lr": 1e-3, "betas": [0.9, 0.999]},
    "trainer": {"num_epochs": 4},
    "eval_songs": None,
    "seed": 0,
}


def make_trainer(tmp_path: Path, num_epochs: int, *callbacks, save_every: int = 0) -> Trainer:
    torch.manual_seed(0)
    train_set = DataLoader(DummyChordDataset(8, num_samples=NUM_SAMPLES, split="train"), batch_size=4)
    val_set = DataLoader(DummyChordDataset(4, num_samples=NUM_SAMPLES, split="val"), batch_size=4)
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
    return Trainer(TinyModel(), train_set, val_set, config, callbacks=list(callbacks))


EPOCH_KEYS = {
    "train_total_loss",
    "val_total_loss",
    "val_chord_type_acc",
    "val_root_acc",
    "val_bass_note_acc",
    "learning_rate",
    "epoch_seconds",
}


def train_and_resume(tmp_path: Path, make_logger, first: int = 2, total: int = 4):
    """``first`` epochs, then a new trainer and logger resumed from last.pt up to ``total``;
    each session ends like a run (``finish``). Returns the resumed history."""
    folder = tmp_path / "run"
    folder.mkdir(exist_ok=True)
    logger = make_logger(folder)
    make_trainer(tmp_path, first, logger).train()
    finish_loggers([logger], folder)
    logger = make_logger(folder)
    resumed = make_trainer(tmp_path, total, logger)
    resumed.load_checkpoint(tmp_path / "ckpt" / "last.pt")
    history = resumed.train()
    (folder / "metrics.json").write_text(
        json.dumps({"best_val_loss": min(history["val_loss"]), "epochs_run": total, "monitor": "val_loss"})
    )
    (folder / "plots").mkdir(exist_ok=True)
    (folder / "plots" / "learning_curves.png").write_bytes(b"\x89PNG\r\n")
    finish_loggers([logger], folder)
    return folder, history


# ---------------------------------------------------------------------- csv
def read_csv(path: Path) -> List[Dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_has_one_row_per_epoch_and_a_resume_repeats_none(tmp_path):
    folder, history = train_and_resume(tmp_path, lambda folder: CSVLogger(folder, CONFIG))
    rows = read_csv(folder / "metrics.csv")
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3, 4]
    assert EPOCH_KEYS <= set(rows[0])
    assert [float(row["val_total_loss"]) for row in rows] == pytest.approx(history["val_loss"], rel=1e-12)
    assert [float(row["learning_rate"]) for row in rows] == pytest.approx(history["learning_rate"], rel=1e-12)


def test_csv_resume_from_an_older_epoch_replaces_the_later_rows(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    make_trainer(tmp_path, 3, CSVLogger(folder, CONFIG), save_every=2).train()
    resumed = make_trainer(tmp_path, 3, CSVLogger(folder, CONFIG))
    resumed.load_checkpoint(tmp_path / "ckpt" / "epoch_002.pt")
    history = resumed.train()
    rows = read_csv(folder / "metrics.csv")
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    assert float(rows[-1]["val_total_loss"]) == pytest.approx(history["val_loss"][-1], rel=1e-12)


# ------------------------------------------------------------------- mlflow
@pytest.fixture(scope="module")
def empty_mlflow_db(tmp_path_factory) -> Path:
    """An MLflow sqlite store with its tables made: creating them takes seconds, so each
    test starts from a copy (the logger finds it where it would create one)."""
    import warnings

    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def with_store(folder: Path, template: Path) -> Path:
    folder.mkdir(exist_ok=True)
    if not (folder / "mlflow.db").exists():
        shutil.copyfile(template, folder / "mlflow.db")
    return folder


def test_mlflow_run_holds_params_epochs_once_and_artefacts_after_a_resume(tmp_path, empty_mlflow_db):
    from mlflow.tracking import MlflowClient

    folder, history = train_and_resume(
        tmp_path, lambda folder: MLflowLogger(with_store(folder, empty_mlflow_db), CONFIG)
    )
    state = json.loads((folder / "mlflow_run.json").read_text())
    assert state["tracking_uri"] == f"sqlite:///{(folder / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=state["tracking_uri"])
    assert len(client.search_runs([state["experiment_id"]])) == 1  # the resume continued the same run
    run = client.get_run(state["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["optimizer.lr"] == "0.001" and run.data.params["optimizer.betas"] == "[0.9, 0.999]"
    assert EPOCH_KEYS <= set(run.data.metrics)
    losses = client.get_metric_history(state["run_id"], "val_total_loss")
    assert sorted(metric.step for metric in losses) == [1, 2, 3, 4]
    assert [m.value for m in sorted(losses, key=lambda m: m.step)] == pytest.approx(history["val_loss"], rel=1e-6)
    assert run.data.metrics["summary/best_val_loss"] == pytest.approx(min(history["val_loss"]), rel=1e-6)
    artefacts = {info.path for info in client.list_artifacts(state["run_id"])}
    assert {"metrics.json", "plots"} <= artefacts
    assert [info.path for info in client.list_artifacts(state["run_id"], "plots")] == ["plots/learning_curves.png"]
    local = Path(client.download_artifacts(state["run_id"], "metrics.json", str(tmp_path)))
    assert json.loads(local.read_text())["epochs_run"] == 4
    assert (folder / "mlartifacts").is_dir() and not (Path.cwd() / "mlruns").exists()


# -------------------------------------------------------------------- wandb
def wandb_records(path: Path):
    """The protobuf records of a ``.wandb`` run file: a 7-byte file header, then 32 KiB
    blocks of chunks (4-byte CRC, 2-byte length, 1-byte type: full, first, middle, last)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, offset, pending = 32768, 7, b""
    while offset + 7 <= len(data):
        if block - offset % block < 7:  # too little room left in the block for a header: padding
            offset += block - offset % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[offset : offset + 7])
        if kind == 0 and length == 0:
            break
        pending += data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):  # full or last: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def wandb_history(folder: Path) -> List[Dict[str, float]]:
    """Every history row of every session's run file, in session order."""
    rows = []
    for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
        for record in wandb_records(path):
            if record.WhichOneof("record_type") == "history":
                rows.append(
                    {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
                )
    return rows


def test_wandb_offline_run_continues_on_resume_with_every_epoch_once(tmp_path):
    folder, history = train_and_resume(tmp_path, lambda folder: WandbLogger(folder, CONFIG))
    run_id = json.loads((folder / "wandb_run.json").read_text())["id"]
    sessions = sorted(folder.glob("wandb/offline-run-*"))
    assert len(sessions) == 2 and all(
        path.name.endswith(f"-{run_id}") or f"-{run_id}-" in path.name for path in sessions
    )
    rows = wandb_history(folder)
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    assert [row["_step"] for row in rows] == [1, 2, 3, 4]
    assert [row["val_total_loss"] for row in rows] == pytest.approx(history["val_loss"], rel=1e-6)
    records = list(wandb_records(next(sessions[0].glob("run-*.wandb"))))
    config = next(r.run.config for r in records if r.WhichOneof("record_type") == "run")
    values = {item.key: json.loads(item.value_json) for item in config.update}
    assert values["optimizer"]["lr"] == 0.001 and values["trainer"] == {"num_epochs": 4}
    last = list(wandb_records(next(sessions[1].glob("run-*.wandb"))))
    summary = {
        item.key: json.loads(item.value_json)
        for r in last
        if r.WhichOneof("record_type") == "summary"
        for item in r.summary.update
    }
    assert summary["best_val_loss"] == pytest.approx(min(history["val_loss"]))
    assert (sessions[1] / "files" / "metrics.json").is_file()
    assert (sessions[1] / "files" / "plots" / "learning_curves.png").is_file()


# -------------------------------------------------------------- the config group
def test_the_logger_group_builds_each_tracker_and_several_at_once(compose_cfg, tmp_path):
    cfg = compose_cfg("experiment=smoke", "logger=[tensorboard,csv,mlflow,wandb]", "logger.mlflow.run_name=lab")
    loggers = build_loggers(cfg, tmp_path)
    assert [type(logger) for logger in loggers] == [TensorBoardLogger, CSVLogger, MLflowLogger, WandbLogger]
    assert loggers[0].log_dir == tmp_path / "tensorboard" and loggers[1].path == tmp_path / "metrics.csv"
    assert loggers[2].run_name == "lab" and loggers[3].mode == "offline"
    assert "optimizer.lr" in loggers[0].hparams  # the config as before: no tracker settings among the hparams
    assert not any(key.startswith("logger") for key in loggers[0].hparams)
    assert list(tmp_path.iterdir()) == []  # building writes nothing
    assert [type(x) for x in build_loggers(compose_cfg("experiment=smoke"), tmp_path)] == [TensorBoardLogger]
    assert build_loggers(compose_cfg("experiment=smoke", "logger=[]"), tmp_path) == []
    assert build_loggers(compose_cfg("experiment=smoke", "~logger"), tmp_path) == []


@pytest.mark.parametrize("option", ["tensorboard", "csv", "mlflow", "wandb"])
def test_each_option_nests_under_its_name_typed_by_its_schema(compose_cfg, option):
    from omegaconf import OmegaConf

    from chordexp.experiment.schemas import GROUP_SCHEMAS

    cfg = compose_cfg(f"logger={option}")
    assert list(cfg.logger) == [option]
    assert OmegaConf.get_type(cfg.logger[option]) is GROUP_SCHEMAS["logger"][f"base_{option}_logger"]
    with pytest.raises(Exception, match="typo"):
        compose_cfg(f"logger={option}", f"logger.{option}.typo=1")


def test_logger_null_on_the_command_line_means_no_tracker():
    from chordexp.experiment.launch import no_trackers

    assert [no_trackers(arg) for arg in ("logger=null", "logger=None", "logger=csv", "x=null")] == [
        "logger=[]",
        "logger=[]",
        "logger=csv",
        "x=null",
    ]


def test_a_tracker_outside_the_allowlist_is_refused(compose_cfg, tmp_path):
    cfg = compose_cfg("experiment=smoke", "logger=csv", "logger.csv._target_=os.system")
    with pytest.raises(ConfigValueError, match="logger.csv._target_='os.system' is not one of chordexp's"):
        build_loggers(cfg, tmp_path)


def test_several_trackers_follow_one_trainer(tmp_path):
    loggers = [CSVLogger(tmp_path, CONFIG), TensorBoardLogger(tmp_path, CONFIG)]
    history = make_trainer(tmp_path, 2, *loggers).train()
    rows = read_csv(tmp_path / "metrics.csv")
    assert [float(row["val_total_loss"]) for row in rows] == pytest.approx(history["val_loss"], rel=1e-12)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard" / "epoch"))
    events.Reload()
    assert [event.step for event in events.Scalars("val/total_loss")] == [1, 2]


@pytest.mark.slow
def test_a_run_with_three_trackers_fills_each_and_uploads_its_folder(compose_cfg, as_job, tmp_path):
    """The wiring of run.py: trackers built from the group, given the run folder, finished
    after metrics.json and the plots exist."""
    from mlflow.tracking import MlflowClient

    cfg = as_job(
        compose_cfg(
            "experiment=smoke",
            "logger=[csv,tensorboard,mlflow]",
            "trainer.num_epochs=2",
            "data.train_size=16",
            "data.val_size=8",
        )
    )
    metrics = train(cfg)
    history = json.loads((tmp_path / "history.json").read_text())
    rows = read_csv(tmp_path / "metrics.csv")
    assert [float(row["val_total_loss"]) for row in rows] == pytest.approx(history["val_loss"], rel=1e-12)
    assert list((tmp_path / "tensorboard" / "epoch").glob("events.out.tfevents.*"))
    state = json.loads((tmp_path / "mlflow_run.json").read_text())
    client = MlflowClient(tracking_uri=state["tracking_uri"])
    run = client.get_run(state["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == tmp_path.name
    assert run.data.params["trainer.num_epochs"] == "2" and "logger.mlflow._target_" not in run.data.params
    assert run.data.metrics["summary/best_val_loss"] == pytest.approx(metrics["best_val_loss"], rel=1e-6)
    artefacts = {info.path for info in client.list_artifacts(state["run_id"])}
    assert {"resolved_config.yaml", "metrics.json", "history.json", "environment.json", "plots"} <= artefacts
    assert "plots/learning_curves.png" in {info.path for info in client.list_artifacts(state["run_id"], "plots")}


def test_a_missing_tracker_library_fails_before_anything_is_written(compose_cfg, as_job, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    cfg = as_job(compose_cfg("experiment=smoke", "logger=[tensorboard,mlflow]"))
    with pytest.raises(
        ConfigValueError,
        match=r"^logger.mlflow needs the mlflow package, which is not installed: "
        r"pip install 'chordexp\[mlflow\]'",
    ):
        train(cfg)
    assert list(tmp_path.iterdir()) == []


def test_a_tracker_file_must_stay_inside_the_run_folder(tmp_path):
    with pytest.raises(ConfigValueError, match=r"logger.csv.filename='../metrics.csv' must be a relative path inside"):
        CSVLogger(tmp_path / "run", CONFIG, filename="../metrics.csv")
    with pytest.raises(ConfigValueError, match=r"logger.tensorboard.log_dir='/srv/tb' must be a relative path"):
        TensorBoardLogger(tmp_path / "run", CONFIG, log_dir="/srv/tb")


@pytest.mark.parametrize(
    "name", ["checkpoints/last.pt", "history.json", "run.log", ".hydra/config.yaml", "./metrics.json", "model.pt"]
)
def test_a_tracker_file_may_not_name_a_record_of_the_run(tmp_path, name):
    with pytest.raises(ConfigValueError, match=r"names one of the run's own records") as error:
        CSVLogger(tmp_path / "run", CONFIG, filename=name)
    assert "\n" not in str(error.value)
    assert (
        CSVLogger(tmp_path / "run", CONFIG, filename="tables/metrics.csv").path
        == tmp_path / "run" / "tables" / "metrics.csv"
    )


def test_a_bad_wandb_mode_is_one_line(tmp_path):
    with pytest.raises(ConfigValueError, match="logger.wandb.mode='offlne' must be one of offline, online, disabled"):
        WandbLogger(tmp_path, CONFIG, mode="offlne")


def test_a_failed_run_ends_the_tracker_runs_as_failed(tmp_path, empty_mlflow_db):
    from mlflow.tracking import MlflowClient

    logger = MLflowLogger(with_store(tmp_path, empty_mlflow_db), CONFIG)
    make_trainer(tmp_path, 1, logger).train()
    finish_loggers([logger], tmp_path, failed=True)
    state = json.loads((tmp_path / "mlflow_run.json").read_text())
    assert MlflowClient(tracking_uri=state["tracking_uri"]).get_run(state["run_id"]).info.status == "FAILED"


def test_a_config_saved_before_the_logger_group_keeps_its_tensorboard(compose_cfg, tmp_path):
    """rerun=/resume= of a run folder from before the group: its config has no logger node."""
    from omegaconf import OmegaConf

    old = OmegaConf.create(OmegaConf.to_container(compose_cfg("experiment=smoke"), resolve=False))
    del old["logger"]
    assert [type(x) for x in build_loggers(old, tmp_path)] == [TensorBoardLogger]


@pytest.mark.parametrize(
    "uri, pattern",
    [
        ("foo://bar", r"tracking_uri=foo://bar: not a tracking URI MLflow can use"),
        ("http://127.0.0.1:9", r"tracking_uri=http://127.0.0.1:9: nothing answers at 127.0.0.1:9"),
    ],
)
def test_an_mlflow_server_that_cannot_answer_fails_in_seconds_with_one_line(tmp_path, uri, pattern):
    from chordexp.loggers.mlflow_run import MLflowLogger

    with pytest.raises(ConfigValueError, match=pattern) as error:  # a connect check, not MLflow's retries
        MLflowLogger(tmp_path / "run", CONFIG, tracking_uri=uri)
    assert "\n" not in str(error.value)
