"""finetune.*: start from a trained model, freeze top-level modules, per-module learning rates."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from chordexp.errors import ConfigValueError
from chordexp.experiment.components import build_components
from chordexp.experiment.schemas import to_training_config
from chordexp.experiment.task import train
from chordexp.training import Trainer
from chordexp.training.checkpoint import CheckpointError

SMOKE = ("experiment=smoke", "trainer.num_epochs=2", "trainer.save_every=0")


def _install(cfg, folder: Path):
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(folder)
        cfg.hydra.job.name = "run"
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """best.pt of a 2-epoch smoke run: the model fine-tuning starts from."""
    from tests.conftest import _compose

    folder = tmp_path_factory.mktemp("pretrain")
    try:
        train(_install(_compose(*SMOKE), folder))
    finally:
        HydraConfig.instance().cfg = None
        GlobalHydra.instance().clear()
    return folder / "checkpoints" / "best.pt"


def _components(compose_cfg, tmp_path, *overrides):
    cfg = compose_cfg(*SMOKE, "data.cache=false", *overrides)
    config = to_training_config(cfg)
    config.checkpoint_dir = str(tmp_path / "checkpoints")
    return cfg, config, build_components(cfg, config)


def _saved_model(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_weights_are_carried_over_exactly_with_a_fresh_optimizer_and_schedule(pretrained, compose_cfg, tmp_path):
    cfg, config, components = _components(compose_cfg, tmp_path, f"finetune.init_from={pretrained}")
    saved = _saved_model(pretrained)
    state = components["model"].state_dict()
    assert state.keys() == saved.keys()
    assert all(torch.equal(state[k], saved[k]) for k in saved)
    components.pop("decoder", None)
    trainer = Trainer(config=config, **components)
    assert trainer.current_epoch == 0 and all(v == [] for v in trainer.history.values())
    assert trainer.optimizer.state_dict()["state"] == {}
    assert trainer.scheduler.last_epoch == 0
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(
        config.learning_rate
    )  # epoch 0 of a fresh 2-epoch cosine


def test_multipliers_reach_the_optimizer_groups_and_frozen_parameters_stay_out(compose_cfg, tmp_path):
    _, config, components = _components(
        compose_cfg,
        tmp_path,
        "finetune.freeze=[input_norm,stem]",
        "+finetune.lr_multipliers.encoder=0.1",
        "scheduler=onecycle",
    )
    model = components["model"]
    components.pop("decoder", None)
    trainer = Trainer(config=config, **components)
    groups = trainer.optimizer.param_groups
    assert [g["module"] for g in groups] == ["rest", "encoder"]
    assert groups[1]["lr"] == pytest.approx(groups[0]["lr"] * 0.1)  # onecycle keeps the ratio
    assert [g["max_lr"] for g in groups] == pytest.approx([config.learning_rate, config.learning_rate * 0.1])
    in_optimizer = {id(p) for g in groups for p in g["params"]}
    frozen = [p for name in ("input_norm", "stem") for p in getattr(model, name).parameters()]
    assert frozen and all(not p.requires_grad and id(p) not in in_optimizer for p in frozen)
    assert {id(p) for p in model.encoder.parameters()} == {id(p) for p in groups[1]["params"]}
    model.train()
    assert not model.input_norm.training and not model.stem.training and model.encoder.training


def test_cosine_schedule_scales_every_group(compose_cfg, tmp_path):
    _, config, components = _components(
        compose_cfg, tmp_path, "+finetune.lr_multipliers.encoder=0.1", "+finetune.lr_multipliers.heads=2.0"
    )
    components.pop("decoder", None)
    trainer = Trainer(config=config, **components)
    for _ in range(2):
        lrs = [g["lr"] for g in trainer.optimizer.param_groups]
        assert lrs[1:] == pytest.approx([lrs[0] * 0.1, lrs[0] * 2.0])
        trainer.optimizer.step()
        trainer.scheduler.step()


def test_frozen_parameters_and_batchnorm_statistics_are_unchanged_after_training(
    pretrained, compose_cfg, tmp_path, as_job
):
    cfg = as_job(
        compose_cfg(
            *SMOKE,
            f"finetune.init_from={pretrained}",
            "finetune.freeze=[input_norm,stem]",
            "+finetune.lr_multipliers.encoder=0.1",
        )
    )
    train(cfg)
    before, after = _saved_model(pretrained), _saved_model(tmp_path / "checkpoints" / "last.pt")
    frozen = [k for k in before if k.startswith(("input_norm.", "stem."))]
    assert any("running_mean" in k for k in frozen)
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert not torch.equal(before["encoder.layers.0.linear1.weight"], after["encoder.layers.0.linear1.weight"])
    environment = json.loads((tmp_path / "environment.json").read_text())
    assert environment["init_from"] == str(pretrained.resolve())
    assert len(json.loads((tmp_path / "history.json").read_text())["train_loss"]) == 2  # a fresh history


def test_a_checkpoint_of_another_architecture_is_one_line(pretrained, compose_cfg, tmp_path):
    with pytest.raises(CheckpointError) as err:
        _components(compose_cfg, tmp_path, f"finetune.init_from={pretrained}", "model.d_model=32", "model.num_heads=2")
    message = str(err.value)
    assert "\n" not in message and "does not fit this model" in message and "of another shape" in message


def test_heads_of_another_shape_are_reinitialised_only_when_asked(pretrained, tmp_path, caplog):
    from chordexp.experiment.finetune import load_initial_weights
    from chordexp.model.chord_model import ChordRecognitionModel

    state = torch.load(pretrained, map_location="cpu", weights_only=True)
    hparams = state["model_hparams"]
    state["model"]["heads.root.weight"] = torch.zeros(7, hparams["d_model"])
    state["model"]["heads.root.bias"] = torch.zeros(7)
    other = tmp_path / "other_vocabulary.pt"
    torch.save(state, other)
    model = ChordRecognitionModel(**hparams)
    with pytest.raises(CheckpointError, match="init_strict=false"):
        load_initial_weights(model, other)
    fresh = model.heads.root.weight.detach().clone()
    assert load_initial_weights(model, other, strict=False) == ["heads.root.weight", "heads.root.bias"]
    assert torch.equal(model.heads.root.weight, fresh)
    assert torch.equal(model.encoder.layers[0].linear1.weight, state["model"]["encoder.layers.0.linear1.weight"])
    assert "re-initialised 2 tensors" in caplog.text


@pytest.mark.parametrize(
    "overrides,pattern",
    [
        (("finetune.freeze=[backbone]",), r"^finetune.freeze: unknown module 'backbone' .*valid: frontend, input_norm"),
        (("+finetune.lr_multipliers.encoder=0",), r"^finetune.lr_multipliers.encoder=0.0 must be"),
        (("finetune.freeze=[encoder]", "+finetune.lr_multipliers.encoder=0.5"), r"encoder is frozen"),
        (
            ("finetune.freeze=[frontend,input_norm,stem,intervals,project,position,encoder,norm,heads]",),
            r"^finetune.freeze: freezes every module of ChordRecognitionModel .*nothing would learn",
        ),
    ],
)
def test_bad_settings_are_one_line(compose_cfg, tmp_path, overrides, pattern):
    with pytest.raises(ConfigValueError, match=pattern) as err:
        _components(compose_cfg, tmp_path, *overrides)
    assert "\n" not in str(err.value)


def test_a_missing_init_from_file_is_one_line(compose_cfg, tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        _components(compose_cfg, tmp_path, f"finetune.init_from={tmp_path / 'nope.pt'}")


def test_the_finetune_preset_needs_init_from(compose_cfg):
    from chordexp.experiment.finetune import check_required

    cfg = compose_cfg("experiment=finetune", "data.dataset.root=/songs")
    assert cfg.data.dataset._target_.endswith("FolderSongDataset") and cfg.optimizer.lr == pytest.approx(1e-4)
    with pytest.raises(ConfigValueError, match="^finetune.init_from is required"):
        check_required(cfg)
    check_required(compose_cfg("experiment=finetune", "data.dataset.root=/songs", "finetune.init_from=x.pt"))


def test_a_resumed_fine_tuning_run_matches_an_uninterrupted_one(pretrained, compose_cfg, tmp_path):
    settings = (
        *SMOKE,
        f"finetune.init_from={pretrained}",
        "finetune.freeze=[input_norm,stem]",
        "+finetune.lr_multipliers.encoder=0.1",
        "scheduler=constant",
        "scheduler.warmup_epochs=0",
    )
    histories = {}
    try:
        whole = tmp_path / "whole"
        train(_install(compose_cfg(*settings, "trainer.num_epochs=3"), whole))
        histories["whole"] = json.loads((whole / "history.json").read_text())
        parts = tmp_path / "parts"
        train(_install(compose_cfg(*settings, "trainer.num_epochs=2"), parts))
        resumed = compose_cfg(*settings, "trainer.num_epochs=3", f"resume={parts}")
        train(_install(resumed, parts))
        histories["parts"] = json.loads((parts / "history.json").read_text())
    finally:
        HydraConfig.instance().cfg = None
        GlobalHydra.instance().clear()
    assert len(histories["parts"]["train_loss"]) == 3
    assert histories["parts"] == histories["whole"]
    whole_state, parts_state = (
        _saved_model(whole / "checkpoints" / "last.pt"),
        _saved_model(parts / "checkpoints" / "last.pt"),
    )
    assert all(torch.equal(whole_state[k], parts_state[k]) for k in whole_state)


@pytest.mark.slow  # two torchrun processes and a single-process twin: ~25-50 s on 2 cores
def test_fine_tuning_under_ddp_matches_one_process_and_keeps_frozen_parts(pretrained, tmp_path, run_cli):
    """torchrun, 2 CPU processes (gloo): frozen modules, BatchNorm buffers included, stay the
    checkpoint's; the history equals a single-process run's with the same global batch."""
    import os
    import subprocess
    import sys

    settings = [
        *SMOKE,
        "trainer.deterministic=true",
        f"finetune.init_from={pretrained}",
        "finetune.freeze=[input_norm,stem]",
        "+finetune.lr_multipliers.encoder=0.1",
    ]
    single = run_cli([*settings, f"hydra.run.dir={tmp_path / 'single'}"], cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "chordexp.run",
            *settings,
            f"hydra.run.dir={tmp_path / 'ddp'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ddp.returncode == 0, (ddp.stdout + ddp.stderr)[-3000:]
    histories = [json.loads((tmp_path / name / "history.json").read_text()) for name in ("ddp", "single")]
    assert list(histories[0]) == list(histories[1])
    for key, values in histories[1].items():
        assert histories[0][key] == pytest.approx(values, rel=1e-5), key
    before, after = _saved_model(pretrained), _saved_model(tmp_path / "ddp" / "checkpoints" / "last.pt")
    frozen = [k for k in before if k.startswith(("input_norm.", "stem."))]
    assert any("running_var" in k for k in frozen) and all(torch.equal(before[k], after[k]) for k in frozen)
    assert not torch.equal(before["encoder.layers.0.linear1.weight"], after["encoder.layers.0.linear1.weight"])
    assert json.loads((tmp_path / "ddp" / "environment.json").read_text())["init_from"] == str(pretrained.resolve())
