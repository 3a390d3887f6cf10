"""The entry point: a run through the real command line fills a complete run folder."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from chordexp.errors import ConfigValueError
from chordexp.experiment import run_folder
from chordexp.experiment.sweep_objective import check_optimized_metric, objective
from chordexp.experiment.task import train

HISTORY_KEYS = {"train_loss", "val_loss", "val_chord_type_acc", "val_root_acc", "val_bass_note_acc", "learning_rate"}


def check_run_folder(folder: Path, num_epochs: int, save_every: int) -> dict:
    """Assert that ``folder`` holds everything a run promises; return its metrics."""
    import torch

    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        assert (folder / ".hydra" / name).is_file(), name
    log = (folder / "run.log").read_text()
    for epoch in range(1, num_epochs + 1):
        assert f"epoch {epoch}/{num_epochs} train_loss" in log  # the Trainer's lines land in the file
    assert "run folder: " + str(folder) in log

    history = json.loads((folder / "history.json").read_text())
    assert set(history) == HISTORY_KEYS
    assert all(len(values) == num_epochs for values in history.values())
    assert all(math.isfinite(v) for values in history.values() for v in values)

    ckpts = folder / "checkpoints"
    periodic = {f"epoch_{e:03d}.pt" for e in range(save_every, num_epochs + 1, save_every)}
    assert periodic and {p.name for p in ckpts.iterdir()} >= {"last.pt", "best.pt", *periodic}
    last = torch.load(ckpts / "last.pt", weights_only=True)
    assert last["epoch"] == num_epochs and last["history"] == history
    best = torch.load(ckpts / "best.pt", weights_only=True)
    for name in periodic:
        assert torch.load(ckpts / name, weights_only=True)["epoch"] == int(name[6:9])

    resolved = OmegaConf.load(folder / "resolved_config.yaml")
    assert "${" not in (folder / "resolved_config.yaml").read_text()
    composed = OmegaConf.to_container(OmegaConf.load(folder / ".hydra" / "config.yaml"), resolve=True)
    assert OmegaConf.to_container(resolved) == composed
    assert last["extra"]["run_config"] == composed  # a checkpoint says which run made it

    metrics = json.loads((folder / "metrics.json").read_text())
    assert tuple(metrics) == run_folder.METRIC_KEYS
    assert metrics["epochs_run"] == num_epochs and metrics["stopped_early"] is False
    assert 1 <= metrics["best_epoch"] <= num_epochs and metrics["best_epoch"] == best["epoch"]
    assert metrics["best_val_loss"] == pytest.approx(history["val_loss"][metrics["best_epoch"] - 1])
    assert metrics["final_val_loss"] == pytest.approx(history["val_loss"][-1])
    model = instantiate(composed["model"])  # the config rebuilds the model the checkpoint holds
    model.load_state_dict(best["model"])
    assert metrics["num_parameters"] == sum(p.numel() for p in model.parameters())
    assert metrics["wall_time_s"] > 0

    env = json.loads((folder / "environment.json").read_text())
    assert set(env["versions"]) >= {"python", "torch", "hydra-core", "omegaconf", "numpy"}
    assert env["versions"]["torch"] == torch.__version__
    assert env["seed"] == composed["seed"] and env["device"] == "cpu"
    assert env["git"]["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", env["git"]["commit"])
    assert env["hostname"] and env["cpu_count"] >= 1
    return metrics


def make_songs(folder: Path) -> Path:
    """Two short 'songs' (a C major then an A minor triad of sine tones) with references."""
    import numpy as np
    import soundfile

    folder.mkdir(parents=True)
    sr = 22050
    t = np.arange(2 * sr) / sr

    def triad(*hz):
        return sum(0.2 * np.sin(2 * np.pi * f * t) for f in hz)

    audio = np.concatenate([triad(261.6, 329.6, 392.0), triad(220.0, 261.6, 329.6)]).astype(np.float32)
    for name in ("one", "two"):
        soundfile.write(folder / f"{name}.wav", audio, sr)
        (folder / f"{name}.lab").write_text("0.0 2.0 C:maj\n2.0 4.0 A:min\n")
    return folder


@pytest.fixture(scope="module")
def smoke_run(run_cli, tmp_path_factory) -> Path:
    """The folder of one ``experiment=smoke`` run through the command line."""
    cwd = tmp_path_factory.mktemp("cli")
    songs = make_songs(cwd / "songs")
    # A relative run dir lands under the folder the command was started from.
    done = run_cli(["experiment=smoke", "hydra.run.dir=runs/smoke", f"eval_songs={songs}"], cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return cwd / "runs" / "smoke"


def test_smoke_run_through_the_cli_fills_a_complete_run_folder(smoke_run):
    check_run_folder(smoke_run, num_epochs=3, save_every=2)
    overrides = yaml.safe_load((smoke_run / ".hydra" / "overrides.yaml").read_text())
    assert overrides[0] == "experiment=smoke" and overrides[1].startswith("eval_songs=")
    env = json.loads((smoke_run / "environment.json").read_text())
    assert "-m chordexp.run experiment=smoke hydra.run.dir=runs/smoke eval_songs=" in env["command"]


def test_eval_songs_are_transcribed_and_scored_after_training(smoke_run):
    result = json.loads((smoke_run / "song_metrics.json").read_text())
    assert set(result["files"]) == {"one", "two"}
    for metric in ("root", "majmin", "sevenths", "mirex"):
        assert 0.0 <= result["aggregate"][metric] <= 1.0
    assert result["durations"]["aggregate"]["root"] == pytest.approx(8.0, abs=0.01)
    assert sorted(p.name for p in (smoke_run / "songs").glob("*.lab")) == ["one.lab", "two.lab"]
    assert "song-level evaluation" in (smoke_run / "run.log").read_text()


def test_a_run_checkpoint_loads_for_prediction(smoke_run):
    from chordexp.inference import ChordRecognizer

    recognizer = ChordRecognizer.from_checkpoint(smoke_run / "checkpoints" / "best.pt")
    assert recognizer.sample_rate == 16000


def test_rerunning_from_a_run_folder_reproduces_its_numbers(smoke_run, compose_cfg, as_job, tmp_path):
    cfg = as_job(compose_cfg(config_dir=smoke_run / ".hydra"))  # the saved config, as --config-dir would
    metrics = train(cfg)  # the task function, in-process
    assert metrics == json.loads((tmp_path / "metrics.json").read_text())
    assert objective(metrics, "best_val_loss") == metrics["best_val_loss"]
    again = json.loads((tmp_path / "history.json").read_text())
    before = json.loads((smoke_run / "history.json").read_text())
    assert again.keys() == before.keys()
    for key in before:
        assert again[key] == pytest.approx(before[key], rel=1e-5, abs=1e-6), key


def test_task_function_rejects_a_bad_value_before_writing_anything(smoke_cfg, tmp_path):
    with open_dict(smoke_cfg):
        smoke_cfg.trainer.mixed_precision = "fp8"
    with pytest.raises(ConfigValueError, match="trainer.mixed_precision='fp8' must be one of no, bf16, fp16"):
        train(smoke_cfg)
    assert list(tmp_path.iterdir()) == []


def test_cfg_job_prints_the_config_without_loading_torch(tmp_path):
    code = (
        "import sys; sys.argv = ['chordexp.run', '--cfg', 'job', 'experiment=smoke']\n"
        "from chordexp.run import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('TORCH_LOADED', 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    printed = yaml.safe_load(done.stdout.split("TORCH_LOADED")[0])
    assert printed["trainer"]["num_epochs"] == 3 and printed["data"]["sample_rate"] == 16000
    assert "TORCH_LOADED False" in done.stdout
    assert not (tmp_path / "outputs").exists()


def test_bad_value_exits_with_one_line_and_trains_nothing(run_cli, tmp_path):
    """Refused before the run folder is made: one line on stderr, nothing on disk."""
    done = run_cli(["experiment=smoke", "trainer.num_epochs=0", "hydra.run.dir=run"], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: invalid config: trainer.num_epochs=0 must be > 0"
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "run").exists()


def test_bad_override_fails_before_a_run_folder_exists(run_cli, tmp_path):
    done = run_cli(["optimizer.lrr=1", "hydra.run.dir=run"], cwd=tmp_path)
    assert done.returncode == 2
    assert "optimizer.lrr" in done.stderr and "Key 'lrr' not in 'AdamWConfig'" in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_failing_run_logs_the_error_and_its_folder(run_cli, tmp_path):
    done = run_cli(["experiment=smoke", "model.num_heads=3", "hydra.run.dir=run"], cwd=tmp_path)
    assert done.returncode == 2
    log = (tmp_path / "run" / "run.log").read_text()
    # a bad model value is the user's: one line (CHORDEXP_DEBUG=1 adds the traceback)
    assert "run failed: d_model (64) must be divisible by num_heads (3)" in log
    assert "Traceback" not in log + done.stdout + done.stderr
    assert f"run folder: {tmp_path / 'run'}" in log
    assert (tmp_path / "run" / "resolved_config.yaml").is_file()


def test_optimized_metric_must_be_a_metrics_key():
    check_optimized_metric("best_val_chord_type_acc")
    check_optimized_metric(None)
    with pytest.raises(ConfigValueError, match="optimized_metric='val_los'"):
        check_optimized_metric("val_los")


def test_objective_returns_the_chosen_metric_and_rejects_nan():
    metrics = {"best_val_loss": 1.5, "final_val_root_acc": 40.0}
    assert objective(metrics, "best_val_loss") == 1.5
    assert objective(metrics, "final_val_root_acc") == 40.0
    assert objective(metrics, None) is None
    with pytest.raises(ValueError, match="diverged"):
        objective({"best_val_loss": math.nan}, "best_val_loss")


def test_run_metrics_reports_final_and_best_epoch():
    history = {
        "train_loss": [3.0, 2.0, 1.5],
        "val_loss": [2.5, 2.0, 2.2],
        "val_chord_type_acc": [10.0, 20.0, 30.0],
        "val_root_acc": [1.0, 2.0, 3.0],
        "val_bass_note_acc": [4.0, 5.0, 6.0],
        "learning_rate": [1e-3, 1e-3, 1e-4],
    }
    metrics = run_folder.run_metrics(
        history, best_epoch=2, best_val_loss=2.0, stopped_early=True, wall_time_s=1.23456, num_parameters=10
    )
    assert tuple(metrics) == run_folder.METRIC_KEYS
    assert (metrics["best_val_loss"], metrics["best_val_chord_type_acc"], metrics["final_val_chord_type_acc"]) == (
        2.0,
        20.0,
        30.0,
    )
    assert (metrics["best_epoch"], metrics["epochs_run"], metrics["stopped_early"]) == (2, 3, True)
    assert metrics["wall_time_s"] == 1.235


def test_git_state_tolerates_a_folder_outside_any_repository(tmp_path):
    assert run_folder.git_state(tmp_path / "nowhere") == {"commit": None, "dirty": None}


def test_git_state_of_the_code_is_a_commit_and_a_flag():
    state = run_folder.git_state(Path(run_folder.__file__).parent)
    if state["commit"] is None:
        pytest.skip("code is not in a git checkout")
    assert re.fullmatch(r"[0-9a-f]{40}", state["commit"]) and isinstance(state["dirty"], bool)


SONG_KEYS = {f"val_{m}" for m in ("root", "majmin", "majmin_inv", "sevenths", "sevenths_inv", "mirex", "seg")}


def test_song_smoke_run_validates_by_transcription_and_ships_its_decoder(run_cli, tmp_path):
    """Song mode through the command line: frame targets, whole-song mir_eval validation
    in the history and metrics.json, best.pt chosen on a song metric, the decoder
    settings estimated from the training labels saved with the model."""
    import torch

    done = run_cli(
        [
            "experiment=song_smoke",
            "hydra.run.dir=runs/songs",
            "trainer.monitor=val_majmin",
            "optimized_metric=best_val_majmin",
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    folder = tmp_path / "runs" / "songs"
    history = json.loads((folder / "history.json").read_text())
    assert set(history) == HISTORY_KEYS | SONG_KEYS
    assert all(len(v) == 3 and all(0.0 <= x <= 1.0 for x in v) for k, v in history.items() if k in SONG_KEYS)
    metrics = json.loads((folder / "metrics.json").read_text())
    best_epoch = metrics["best_epoch"]
    assert metrics["monitor"] == "val_majmin"
    assert metrics["best_val_majmin"] == pytest.approx(max(history["val_majmin"]))
    assert metrics["best_val_majmin"] == pytest.approx(history["val_majmin"][best_epoch - 1])
    best = torch.load(folder / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] == best_epoch and best["model_hparams"]["frame_outputs"] is True
    decoder = best["extra"]["decoder"]
    assert 0.5 < decoder["self_transition"] < 1.0 and len(decoder["type_prior"]) == 32
    assert sum(decoder["type_prior"]) == pytest.approx(1.0)
    assert "val_majmin" in (folder / "run.log").read_text()
