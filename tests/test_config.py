"""Composition of conf/ against the schemas, and the map onto TrainingConfig."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from chordexp.config import TrainingConfig
from chordexp.errors import ConfigValueError
from chordexp.experiment.schemas import GROUP_SCHEMAS, AdamWConfig, ExperimentConfig, to_training_config

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ("optimizer", "scheduler", "loss", "data", "model")
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF_DIR / g).glob("*.yaml"))]
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def error_text(exc: BaseException) -> str:
    """An exception with its causes, as Hydra prints them."""
    parts = []
    while exc is not None:
        parts.append(str(exc))
        exc = exc.__cause__
    return "\n".join(parts)


def test_every_group_has_the_expected_options():
    found = {g: sorted(o for gg, o in OPTIONS if gg == g) for g in GROUPS}
    assert found == {
        "optimizer": ["adam", "adamw", "sgd"],
        "scheduler": ["constant", "cosine", "onecycle"],
        "loss": ["chord"],
        "data": ["dummy", "folder", "folder_songs", "songs", "synthetic"],
        "model": ["base", "small"],
    }
    assert {"smoke", "song_smoke", "onecycle_fast"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("group,option", OPTIONS)
def test_each_option_starts_from_its_schema(group, option):
    text = (CONF_DIR / group / f"{option}.yaml").read_text()
    defaults = yaml.safe_load(text)["defaults"]
    assert len(defaults) == 2 and defaults[1] == "_self_"
    assert defaults[0] in GROUP_SCHEMAS[group], f"{group}/{option}.yaml names an unknown schema"


@pytest.mark.parametrize("group,option", OPTIONS)
def test_each_option_composes_typed_by_its_schema(compose_cfg, group, option):
    required = REQUIRED_OVERRIDES.get((group, option), ())
    cfg = compose_cfg(f"{group}={option}", *required)
    schema_name = yaml.safe_load((CONF_DIR / group / f"{option}.yaml").read_text())["defaults"][0]
    assert OmegaConf.get_type(cfg[group]) is GROUP_SCHEMAS[group][schema_name]
    assert cfg.hydra.runtime.choices[group] == option
    assert not OmegaConf.missing_keys({k: cfg[k] for k in cfg if k != "hydra"})
    to_training_config(cfg)  # every option maps and validates


def test_default_run_is_the_real_job(compose_cfg):
    cfg = compose_cfg()
    choices = cfg.hydra.runtime.choices
    assert (choices.optimizer, choices.scheduler, choices.loss, choices.data, choices.model) == (
        "adamw",
        "cosine",
        "chord",
        "songs",
        "base",
    )
    assert choices.experiment is None
    assert OmegaConf.get_type(cfg) is ExperimentConfig
    # a real run, not a smoke test: hours of rendered song excerpts, several epochs, song validation
    assert cfg.data.train_size * cfg.data.clip_seconds >= 3 * 3600 and cfg.trainer.num_epochs >= 5
    assert cfg.data.sequence and cfg.model.frame_outputs and cfg.data.val_songs >= 4 and cfg.data.cache
    assert 10 <= cfg.data.clip_seconds <= 20  # what song models train on
    assert cfg.model.sample_rate == cfg.data.sample_rate == cfg.data.dataset.sample_rate
    assert cfg.model.context_seconds == cfg.data.clip_seconds == cfg.data.dataset.clip_seconds


def test_clip_mode_stays_one_switch_away(compose_cfg):
    cfg = compose_cfg("data=synthetic")
    assert not cfg.data.sequence and not cfg.model.frame_outputs and cfg.data.val_songs == 0
    assert cfg.data.train_size >= 5000 and cfg.data.dataset.realism == "rich"
    assert cfg.model.context_seconds == cfg.data.clip_seconds == 1.0


def test_run_folders_are_relative_to_where_the_user_runs(compose_cfg):
    hydra_cfg = compose_cfg().hydra
    assert hydra_cfg.run.dir.startswith("outputs/")
    assert hydra_cfg.sweep.dir.startswith("outputs/multirun/")
    assert OmegaConf.to_container(hydra_cfg.sweep)["subdir"] == "${hydra.job.num}"
    assert hydra_cfg.job.name == "run"  # so the log file is run.log
    assert hydra_cfg.job.chdir in (None, False)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_experiment_composes_without_plus(compose_cfg, name):
    cfg = compose_cfg(f"experiment={name}", *REQUIRED_OVERRIDES.get(("experiment", name), ()))
    assert cfg.hydra.runtime.choices.experiment == name
    assert "experiment" not in cfg  # a _global_ overlay, no node of its own
    to_training_config(cfg)


def test_experiment_overrides_groups_and_command_line_overrides_experiment(compose_cfg):
    smoke = compose_cfg("experiment=smoke")
    assert smoke.hydra.runtime.choices.model == "small"  # switched by the experiment
    assert smoke.trainer.num_epochs == 3  # the experiment beats config.yaml
    assert smoke.data.train_size == 32  # ... and the data group
    assert smoke.model.sample_rate == smoke.data.dataset.sample_rate == 16000  # interpolations follow
    cli = compose_cfg("experiment=smoke", "trainer.num_epochs=4", "data.train_size=40", "model=base")
    assert (cli.trainer.num_epochs, cli.data.train_size) == (4, 40)
    assert cli.hydra.runtime.choices.model == "base"
    onecycle = compose_cfg("experiment=onecycle_fast")
    assert onecycle.scheduler.name == "onecycle" and onecycle.scheduler.warmup_epochs == 1
    assert onecycle.optimizer.lr == 3e-3


def test_smoke_is_small_and_exercises_a_periodic_checkpoint(compose_cfg):
    cfg = compose_cfg("experiment=smoke")
    assert cfg.trainer.num_epochs >= 2
    assert 0 < cfg.trainer.save_every < cfg.trainer.num_epochs
    assert cfg.data.train_size <= 64 and cfg.hydra.runtime.choices.model == "small"


def test_generator_options_pass_through_the_dataset_node(compose_cfg):
    cfg = compose_cfg("data=synthetic", "+data.dataset.options.noise_prob=0.5", "data.dataset.realism=plain")
    assert cfg.data.dataset.options == {"noise_prob": 0.5} and cfg.data.dataset.realism == "plain"


def test_unknown_option_lists_the_available_ones(compose_cfg):
    with pytest.raises(MissingConfigException) as err:
        compose_cfg("optimizer=adamx")
    text = error_text(err.value)
    assert "optimizer/adamx" in text and "adamw" in text and "sgd" in text


@pytest.mark.parametrize(
    "override,key,why",
    [
        ("optimizer.lrr=1", "optimizer.lrr", "Key 'lrr' not in 'AdamWConfig'"),
        ("trainer.num_epochs=abc", "trainer.num_epochs", "could not be converted to Integer"),
        ("data.batch_size=1.5", "data.batch_size", "could not be converted to Integer"),
        ("trainer.deterministic=maybe", "trainer.deterministic", "is not a valid bool"),
        ("model.d_modell=3", "model.d_modell", "not in 'ChordModelConfig'"),
    ],
)
def test_bad_override_fails_at_composition_naming_the_key(compose_cfg, override, key, why):
    with pytest.raises(ConfigCompositionException) as err:
        compose_cfg(override)
    text = error_text(err.value)
    assert key in text and why in text


def test_option_keys_are_checked_against_the_option_schema(compose_cfg):
    """sgd has momentum, adamw does not: the schema follows the chosen option."""
    assert compose_cfg("optimizer=sgd", "optimizer.momentum=0.5").optimizer.momentum == 0.5
    with pytest.raises(ConfigCompositionException, match="optimizer.momentum"):
        compose_cfg("optimizer=adamw", "optimizer.momentum=0.5")


def test_mapping_gives_every_training_config_field_one_home(compose_cfg):
    cfg = compose_cfg(
        "optimizer.lr=0.002",
        "optimizer.weight_decay=0.05",
        "data.batch_size=8",
        "data.num_workers=1",
        "scheduler=onecycle",
        "scheduler.warmup_epochs=2",
        "scheduler.div_factor=10",
        "loss.label_smoothing=0.2",
        "seed=7",
        "trainer.num_epochs=6",
        "trainer.gradient_clip=0.5",
        "trainer.checkpoint_dir=ck",
        "trainer.save_every=3",
        "trainer.patience=4",
        "trainer.min_delta=0.01",
        "trainer.log_every=9",
        "trainer.device=cpu",
        "trainer.mixed_precision=bf16",
        "trainer.grad_accum_steps=2",
        "trainer.deterministic=true",
        "trainer.on_nonfinite=skip",
        "trainer.compile=true",
        "trainer.monitor=val_majmin",
        "trainer.monitor_mode=max",
    )
    expected = TrainingConfig(
        learning_rate=0.002,
        weight_decay=0.05,
        batch_size=8,
        num_workers=1,
        scheduler="onecycle",
        warmup_epochs=2,
        label_smoothing=0.2,
        seed=7,
        num_epochs=6,
        gradient_clip=0.5,
        checkpoint_dir="ck",
        save_every=3,
        patience=4,
        min_delta=0.01,
        log_every=9,
        device="cpu",
        mixed_precision="bf16",
        grad_accum_steps=2,
        deterministic=True,
        on_nonfinite="skip",
        compile=True,
        monitor="val_majmin",
        monitor_mode="max",
        scheduler_options={"div_factor": 10.0, "final_div_factor": 1e4, "base_momentum": 0.85, "max_momentum": 0.95},
    )
    config = to_training_config(cfg)
    assert config == expected
    # every field differs from its default, so none was silently left at it
    defaults = TrainingConfig()
    assert all(getattr(config, f.name) != getattr(defaults, f.name) for f in dataclasses.fields(TrainingConfig))


def test_mapping_accepts_a_plain_dict():
    cfg = OmegaConf.to_container(OmegaConf.structured(ExperimentConfig(optimizer=AdamWConfig())))
    cfg["scheduler"]["name"] = "cosine"
    assert to_training_config(cfg).learning_rate == TrainingConfig().learning_rate


@pytest.mark.parametrize("name", ["cosine", "onecycle", "constant"])
def test_scheduler_options_are_what_the_trainer_accepts(compose_cfg, name):
    from chordexp.training.schedulers import SCHEDULER_OPTIONS

    config = to_training_config(compose_cfg(f"scheduler={name}"))
    assert config.scheduler == name
    assert set(config.scheduler_options) <= set(SCHEDULER_OPTIONS[name])


@pytest.mark.parametrize(
    "overrides,key",
    [
        (["optimizer.lr=0"], "optimizer.lr"),
        (["optimizer.lr=-1e-3"], "optimizer.lr"),
        (["data.batch_size=0"], "data.batch_size"),
        (["data.train_size=0"], "data.train_size"),
        (["trainer.num_epochs=0"], "trainer.num_epochs"),
        (["scheduler.warmup_epochs=-1"], "scheduler.warmup_epochs"),
        (["trainer.mixed_precision=fp8"], "trainer.mixed_precision"),
        (["loss.label_smoothing=1.0"], "loss.label_smoothing"),
        (["trainer.grad_accum_steps=0"], "trainer.grad_accum_steps"),
        (["trainer.monitor=loss"], "trainer.monitor"),
        (["trainer.monitor_mode=up"], "trainer.monitor_mode"),
    ],
)
def test_bad_value_fails_with_one_line_naming_the_key(compose_cfg, overrides, key):
    cfg = compose_cfg(*overrides)  # composes: the types are right
    with pytest.raises(ConfigValueError) as err:
        to_training_config(cfg)
    message = str(err.value)
    assert message.startswith(f"{key}=") and "\n" not in message


def test_constant_schedule_without_warmup_is_valid_for_one_epoch(compose_cfg):
    config = to_training_config(compose_cfg("scheduler=constant", "trainer.num_epochs=1"))
    assert (config.num_epochs, config.warmup_epochs, config.scheduler_options) == (1, 0, {})


def _schema_defaults(schema: type) -> dict:
    instance = schema()
    return {f.name: getattr(instance, f.name) for f in dataclasses.fields(schema) if not f.name.startswith("_")}


def _schemas_with_targets():
    for group in ("optimizer", "loss", "model", "logger"):
        yield from GROUP_SCHEMAS[group].values()
    for schema in GROUP_SCHEMAS["data"].values():
        yield dataclasses.fields(schema)[0].default_factory  # the data option's dataset schema


@pytest.mark.parametrize("schema", list(_schemas_with_targets()), ids=lambda schema: schema.__name__)
def test_schema_keys_are_arguments_of_their_target(schema):
    """Our components' schemas are read from their constructors: every setting, the same
    default, or a reference to the key that owns it (``${data.sample_rate}``)."""
    import inspect

    from hydra.utils import get_object

    from chordexp.experiment.schemas import DATASET_SUPPLIED

    target = get_object(schema._target_)
    params = inspect.signature(target).parameters
    while any(p.kind is p.VAR_POSITIONAL for p in params.values()):  # FolderSongDataset(*args, **kwargs)
        target = target.__mro__[1]
        params = inspect.signature(target).parameters
    fields = _schema_defaults(schema)
    fields.pop("options", None)  # a synthetic dataset's generator options, spread into **options
    assert set(fields) <= set(params), f"{schema.__name__} has keys {target.__name__} does not take"
    if not schema._target_.startswith("torch."):  # our own components: same defaults, every setting
        # (keyword-only parameters, a dataset's size/split/seed and a tracker's run folder and
        # config are runtime wiring a run supplies, not settings)
        settings = {
            name: p.default
            for name, p in params.items()
            if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty and name not in DATASET_SUPPLIED
        }
        assert set(fields) == set(settings)
        for name, default in fields.items():
            if isinstance(default, str) and default.startswith("${"):
                continue  # follows its one home
            assert default == (list(settings[name]) if isinstance(settings[name], tuple) else settings[name]), name


@pytest.mark.parametrize("group,option", [o for o in OPTIONS if o[0] in ("optimizer", "loss", "model")])
def test_each_component_option_instantiates(compose_cfg, group, option):
    import torch
    from hydra.utils import instantiate

    cfg = compose_cfg(f"{group}={option}", "model=small")
    if group == "optimizer":
        optimizer = instantiate(cfg.optimizer, _convert_="all")([torch.nn.Parameter(torch.zeros(2))])
        assert optimizer.defaults["lr"] == cfg.optimizer.lr
    else:
        assert isinstance(instantiate(cfg[group], _convert_="all"), torch.nn.Module)


#: options that need a value from the user (data=folder: where the songs are)
REQUIRED_OVERRIDES = {
    ("data", "folder"): ("data.dataset.root=/path/to/songs",),
    ("data", "folder_songs"): ("data.dataset.root=/path/to/songs",),
    ("experiment", "finetune"): ("data.dataset.root=/path/to/songs",),
}


# data=folder needs real songs on disk: tests/test_folder_config.py builds its splits
@pytest.mark.parametrize("option", [o for g, o in OPTIONS if g == "data" and not o.startswith("folder")])
def test_each_data_option_builds_disjoint_train_and_val_splits(compose_cfg, option):
    import torch

    from chordexp.experiment.components import build_datasets

    cfg = compose_cfg(f"data={option}", "data.train_size=3", "data.val_size=2", "seed=5")
    train_set, val_set = build_datasets(cfg)
    assert (len(train_set), len(val_set)) == (3, 2)
    audio, targets = train_set[0]
    assert audio.shape == (int(cfg.data.sample_rate * cfg.data.clip_seconds),)
    keys = {"chord_type", "root", "bass_note"}
    assert set(targets) == (keys | {"mask"} if cfg.data.sequence else keys)
    assert not torch.equal(audio, val_set[0][0])  # the splits are different streams
    assert torch.equal(audio, build_datasets(cfg)[0][0][0])  # ... and reproducible from the seed


def test_help_lists_every_option_and_no_schema(tmp_path):
    """--help names every YAML option of every group; the base_* schemas stay out of it."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "chordexp.run", "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 0, done.stderr
    listing = done.stdout.split("== Config (")[0]
    groups = {
        line.split(":")[0]: line.split(":", 1)[1]
        for line in listing.splitlines()
        if line.split(":")[0] in GROUPS + ("experiment",)
    }
    for group in GROUPS + ("experiment",):
        listed = {item.split("(")[0].strip() for item in groups[group].split(",")}
        on_disk = {p.stem for p in (CONF_DIR / group).glob("*.yaml")}
        assert on_disk <= listed, (group, on_disk - listed)
    assert "base_" not in listing
