"""Typed configuration.

``TrainingConfig`` is the seed guide's flat dataclass, usable from plain Python.
The Hydra group schemas below it validate the YAML in ``conf/``; ``register_configs``
stores them in Hydra's ConfigStore. Hydra itself is imported only inside that function,
so the core (trainer, model, data) never pulls Hydra in.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Dict, List, Optional

from chordexp.errors import ConfigValueError


@dataclass
class TrainingConfig:
    """Every knob of the training loop, with the guide's defaults."""

    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    batch_size: int = 16
    num_epochs: int = 100
    warmup_epochs: int = 5
    scheduler: str = "cosine"  # 'cosine', 'onecycle' or 'constant'
    gradient_clip: float = 1.0  # max global grad norm; <= 0 disables clipping
    label_smoothing: float = 0.1
    checkpoint_dir: str = "checkpoints"
    save_every: int = 5  # periodic checkpoint every N epochs; <= 0 disables
    patience: int = 15  # early stopping on validation loss; <= 0 disables
    min_delta: float = 0.001
    log_every: int = 50  # log a training line every N batches
    device: str = "auto"  # 'auto' = 'cuda' if available, else 'cpu'
    # Beyond the guide's tables (its troubleshooting section asks for them):
    seed: int = 0
    mixed_precision: str = "no"  # 'no', 'bf16' or 'fp16' (autocast; fp16 uses a GradScaler)
    grad_accum_steps: int = 1  # optimizer step every N batches
    num_workers: int = 0  # DataLoader workers (used by the builders of loaders)
    deterministic: bool = False  # torch.use_deterministic_algorithms
    on_nonfinite: str = "stop"  # a NaN/inf loss or gradient: 'stop' the run, or 'skip' the step
    compile: bool = False  # torch.compile the model for training (GPU speed-up; off: CPU-safe default)
    # What best.pt, early stopping (patience, min_delta) and best_epoch follow: a validation
    # history key (val_loss, val_<task>_acc, or val_<name> of the Trainer's song_validator).
    monitor: str = "val_loss"
    monitor_mode: str = "auto"  # 'auto' (min if the name contains 'loss', else max), 'min' or 'max'
    scheduler_options: Dict[str, Any] = field(default_factory=dict)  # extra scheduler kwargs


# ---------------------------------------------------------------------------
# Hydra group schemas. Each YAML option in conf/<group>/ starts with
# ``defaults: [base_<option>, _self_]``, so a misspelt key or a wrong type fails at
# composition. The root schema types each group with its base class; an option's
# subclass (with its extra keys) replaces it when the option is merged in.
# Defaults of the fields shared with TrainingConfig are read from TrainingConfig, so
# there is one home for each default.
# ---------------------------------------------------------------------------

MISSING = "???"  # OmegaConf's marker for a mandatory value (string form, no import)
MIXED_PRECISION_MODES = ("no", "bf16", "fp16")
NONFINITE_POLICIES = ("stop", "skip")
MONITOR_MODES = ("auto", "min", "max")


@dataclass
class OptimizerConfig:
    """``torch.optim`` class built as a factory: ``instantiate(cfg)(model.parameters())``."""

    _target_: str = MISSING
    _partial_: bool = True
    lr: float = TrainingConfig.learning_rate
    weight_decay: float = TrainingConfig.weight_decay


@dataclass
class AdamWConfig(OptimizerConfig):
    _target_: str = "torch.optim.AdamW"
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    # One fused kernel per step (CPU and CUDA): ~4x faster than torch's default
    # single-tensor loop on CPU; a resume keeps the path its checkpoint was written with.
    fused: bool = True


@dataclass
class AdamConfig(OptimizerConfig):
    _target_: str = "torch.optim.Adam"
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8


@dataclass
class SGDConfig(OptimizerConfig):
    _target_: str = "torch.optim.SGD"
    lr: float = 1e-2
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True


@dataclass
class SchedulerConfig:
    """``name`` and ``warmup_epochs`` map to TrainingConfig; other keys become
    ``TrainingConfig.scheduler_options`` (extra keyword arguments for the Trainer)."""

    name: str = MISSING
    warmup_epochs: int = TrainingConfig.warmup_epochs


@dataclass
class CosineSchedulerConfig(SchedulerConfig):
    name: str = "cosine"
    min_lr_ratio: float = 0.01  # final lr = learning_rate * min_lr_ratio


@dataclass
class OneCycleSchedulerConfig(SchedulerConfig):
    name: str = "onecycle"
    div_factor: float = 25.0  # initial lr = learning_rate / div_factor
    final_div_factor: float = 1e4  # final lr = initial lr / final_div_factor
    base_momentum: float = 0.85
    max_momentum: float = 0.95


@dataclass
class ConstantSchedulerConfig(SchedulerConfig):
    name: str = "constant"
    warmup_epochs: int = 0


@dataclass
class LossConfig:
    _target_: str = MISSING
    label_smoothing: float = TrainingConfig.label_smoothing


@dataclass
class ChordLossConfig(LossConfig):
    _target_: str = "chordexp.model.loss.ChordRecognitionLoss"
    chord_type_weight: float = 1.0
    root_weight: float = 1.0
    bass_weight: float = 0.5


@dataclass
class DatasetConfig:
    """Keyword arguments of the dataset class (an ``options`` dict is spread into them);
    ``size``, ``split`` and ``seed`` are supplied by the run."""

    _target_: str = MISSING


@dataclass
class SyntheticDatasetConfig(DatasetConfig):
    _target_: str = "chordexp.data.SyntheticChordDataset"
    sample_rate: int = 44100
    clip_seconds: float = 1.0
    realism: str = "rich"  # 'rich' or 'plain' (simpler timbres, faster)
    # Generator options (fields of chordexp.data.synth.SynthOptions), passed as keywords;
    # empty = the realism's defaults. Add one with +data.dataset.options.NAME=VALUE.
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class DummyDatasetConfig(DatasetConfig):
    _target_: str = "chordexp.data.DummyChordDataset"
    num_samples: int = 44100


@dataclass
class FolderDatasetConfig(DatasetConfig):
    """Windows cut from a folder of songs, each audio file with a ``.lab`` beside it."""

    _target_: str = "chordexp.data.FolderChordDataset"
    root: str = MISSING  # the folder of songs (searched recursively)
    sample_rate: int = 44100
    clip_seconds: float = 1.0
    val_fraction: float = 0.1  # share of songs (by a hash of their path) used for validation
    on_error: str = "skip"  # bad song: 'skip' (one warning each) or 'raise'
    unknown_chords: str = "map"  # label outside the vocabulary: 'map' (nearest type) or 'skip'
    pitch_shift: int = 6  # train windows shifted by -k..k semitones (0: off)
    min_label_fraction: float = 0.5  # a window's chord must cover at least this share of it
    # Collections (chordexp/data/collection.py, docs/collections.md): annotations in a
    # parallel tree, k folds, an explicit split list, songs grouped by their first folders.
    annotations: Optional[str] = None  # folder mirroring root with the .lab/.jams files (None: beside the audio)
    num_folds: int = 0  # k-fold cross-validation: K >= 2 (0: the val_fraction split)
    fold: int = 0  # the held-out (val) fold, 0..K-1
    split_file: Optional[str] = None  # lines 'train SONG_ID' / 'val SONG_ID'; unlisted songs unused
    group_depth: int = 0  # songs sharing their first N folders stay in one split (1: artist/album/song)
    cache_dir: Optional[str] = None  # decoded audio on disk, memory-mapped ('auto': the user cache; None: in memory)


@dataclass
class SongsDatasetConfig(DatasetConfig):
    """Excerpts of synthetic band songs with a label per frame (song mode)."""

    _target_: str = "chordexp.data.SyntheticSongDataset"
    sample_rate: int = 22050
    clip_seconds: float = 15.0  # excerpt length: the context the model attends over
    tuning_cents: float = 50.0  # the whole band tuned off A440 by up to this much
    n_prob: float = 0.5  # how often songs hold stretches without harmony (intros, breaks)
    soundfont: Optional[str] = None  # .sf2/.sf3 for the band; None = TimGM6mb (never the evaluation font)


@dataclass
class FolderSongsDatasetConfig(FolderDatasetConfig):
    """Excerpts of your own songs with a label per frame (song mode)."""

    _target_: str = "chordexp.data.FolderSongDataset"
    clip_seconds: float = 15.0


@dataclass
class DataConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    # Song mode: items carry a label per model frame and the model outputs frame logits
    # (model.frame_outputs follows this); validation also transcribes whole songs.
    sequence: bool = False
    val_songs: int = 0  # whole validation songs transcribed and scored with mir_eval each epoch
    val_song_seconds: float = 45.0
    sample_rate: int = 44100  # of the clips; model.sample_rate follows it
    clip_seconds: float = 1.0  # length of the clips; model.context_seconds follows it
    train_size: int = 16000
    val_size: int = 2000
    batch_size: int = TrainingConfig.batch_size
    num_workers: int = TrainingConfig.num_workers
    # Render every clip once (in num_workers processes, 0 = one per core) and keep the
    # audio in memory as float16 (88 kB per 1-s 44.1 kHz clip); epochs then read memory.
    cache: bool = False


@dataclass
class SyntheticDataConfig(DataConfig):
    dataset: SyntheticDatasetConfig = field(default_factory=SyntheticDatasetConfig)


@dataclass
class SongsDataConfig(DataConfig):
    dataset: SongsDatasetConfig = field(default_factory=SongsDatasetConfig)
    sequence: bool = True
    val_songs: int = 8


@dataclass
class FolderSongsDataConfig(DataConfig):
    dataset: FolderSongsDatasetConfig = field(default_factory=FolderSongsDatasetConfig)
    sequence: bool = True
    val_songs: int = 8
    num_folds: int = 0  # data.dataset.num_folds follows it (k-fold cross-validation)
    fold: int = 0  # data.dataset.fold follows it: `-m data.fold=0,1,2,3,4` runs every fold
    cache_dir: Optional[str] = "auto"  # data.dataset.cache_dir follows it (docs/collections.md)


@dataclass
class DummyDataConfig(DataConfig):
    dataset: DummyDatasetConfig = field(default_factory=DummyDatasetConfig)


@dataclass
class FolderDataConfig(DataConfig):
    dataset: FolderDatasetConfig = field(default_factory=FolderDatasetConfig)
    num_folds: int = 0  # data.dataset.num_folds follows it (k-fold cross-validation)
    fold: int = 0  # data.dataset.fold follows it: `-m data.fold=0,1,2,3,4` runs every fold
    cache_dir: Optional[str] = "auto"  # data.dataset.cache_dir follows it (docs/collections.md)


@dataclass
class ModelConfig:
    _target_: str = MISSING


@dataclass
class ChordModelConfig(ModelConfig):
    """Arguments of ``ChordRecognitionModel``; add a field here when it gains one."""

    _target_: str = "chordexp.model.chord_model.ChordRecognitionModel"
    sample_rate: int = 44100
    d_model: int = 128
    num_blocks: int = 4
    num_heads: int = 4
    dropout: float = 0.1
    channels: int = 16  # width of the conv stem
    bins_per_octave: int = 36
    n_octaves: int = 6
    fmin: float = 32.70
    context_seconds: float = 1.0  # the clip length it is trained on
    frame_outputs: bool = False  # song mode: forward gives frame logits (B, T, C); follows data.sequence


@dataclass
class TrainerConfig:
    """TrainingConfig fields that belong to no group, plus run-level knobs."""

    num_epochs: int = TrainingConfig.num_epochs
    gradient_clip: float = TrainingConfig.gradient_clip
    checkpoint_dir: str = TrainingConfig.checkpoint_dir  # relative to the run folder
    save_every: int = TrainingConfig.save_every
    patience: int = TrainingConfig.patience
    min_delta: float = TrainingConfig.min_delta
    log_every: int = TrainingConfig.log_every
    device: str = TrainingConfig.device
    mixed_precision: str = TrainingConfig.mixed_precision
    grad_accum_steps: int = TrainingConfig.grad_accum_steps
    deterministic: bool = TrainingConfig.deterministic
    on_nonfinite: str = TrainingConfig.on_nonfinite
    compile: bool = TrainingConfig.compile
    monitor: str = TrainingConfig.monitor
    monitor_mode: str = TrainingConfig.monitor_mode
    num_threads: int = 0  # torch threads; 0 = all cores, or this job's share in a parallel sweep


@dataclass
class DecoderConfig:
    """How frame posteriors become chord segments (song mode saves it with the model)."""

    self_transition: Optional[float] = None  # HMM chord persistence; null = estimated from the training labels
    prior_weight: float = 0.0  # divide the training chord-type prior out of the posteriors (0: off, 1: fully)
    estimate_tuning: bool = False  # measure the offset from A440 first and move the front end's filters by it


@dataclass
class FinetuneConfig:
    """Start from a trained model (``chordexp.experiment.finetune``): settings of the run, kept out of
    ``model`` (the constructor's arguments) and ``optimizer`` (a torch.optim partial)."""

    init_from: Optional[str] = None  # a checkpoint of ours (.pt): its weights, fresh optimizer/schedule/history
    init_strict: bool = True  # false: heads of another shape than the checkpoint's are re-initialised (logged)
    freeze: List[str] = field(default_factory=list)  # top-level modules: no gradient, eval mode (BatchNorm stats kept)
    lr_multipliers: Dict[str, float] = field(default_factory=dict)  # {module: factor}: its own group at lr * factor


@dataclass
class LoggerConfig:
    """An experiment tracker (``chordexp.loggers``): a Trainer callback that ``run.py`` builds
    from ``_target_`` with the run folder and the run config; docs/tracking.md."""

    _target_: str = MISSING


@dataclass
class TensorBoardLoggerConfig(LoggerConfig):
    _target_: str = "chordexp.loggers.TensorBoardLogger"
    log_dir: str = "tensorboard"  # inside the run folder


@dataclass
class CSVLoggerConfig(LoggerConfig):
    _target_: str = "chordexp.loggers.CSVLogger"
    filename: str = "metrics.csv"  # inside the run folder: one row per epoch


@dataclass
class MLflowLoggerConfig(LoggerConfig):
    _target_: str = "chordexp.loggers.MLflowLogger"
    tracking_uri: Optional[str] = None  # null: sqlite:///<run folder>/mlflow.db, artefacts in <run folder>/mlartifacts
    experiment_name: str = "chordexp"
    run_name: Optional[str] = None  # null: the run folder's name
    log_artifacts: bool = True  # config, metrics.json, history.json and plots when the run ends


@dataclass
class WandbLoggerConfig(LoggerConfig):
    _target_: str = "chordexp.loggers.WandbLogger"
    mode: str = "offline"  # offline (files in <run folder>/wandb; `wandb sync` uploads them) | online | disabled
    project: str = "chordexp"
    entity: Optional[str] = None
    name: Optional[str] = None  # null: the run folder's name
    tags: List[str] = field(default_factory=list)
    log_artifacts: bool = True  # config, metrics.json, history.json and plots saved with the run when it ends


@dataclass
class OptunaTrialConfig:
    """Which Optuna trial a run is: set by chordexp's sweeper (``hparams_search=optuna``)
    in each trial's overrides, so the run reports per-epoch values to the study and can
    be pruned (``chordexp.experiment.optuna_trial``). Null outside a search."""

    storage: Optional[str] = None  # the study's RDB URL
    study_name: Optional[str] = None
    number: Optional[int] = None  # the trial's number in the study (its job folder's name)


@dataclass
class ExperimentConfig:
    """Root schema (``base_config``): the composed config of one run."""

    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    seed: int = TrainingConfig.seed
    optimized_metric: Optional[str] = "best_val_loss"  # what main() returns to a sweeper
    # A folder of songs (audio + .lab of the same name): after training, best.pt
    # transcribes them and mir_eval scores them into song_metrics.json (null: skip).
    eval_songs: Optional[str] = None
    # Set by `python -m chordexp.run resume=RUN_FOLDER`: continue that run from its last.pt.
    resume: Optional[str] = None
    # `_target_` nodes may only name chordexp's documented components (chordexp/experiment/targets.py);
    # true lets a config instantiate any importable class (your own model or dataset).
    allow_any_target: bool = False
    # Experiment trackers, name -> tracker node (conf/logger: tensorboard, csv, mlflow, wandb);
    # `logger=[tensorboard,mlflow]` selects several, `logger=null` none.
    logger: Dict[str, Any] = field(default_factory=dict)
    optuna_trial: OptunaTrialConfig = field(default_factory=OptunaTrialConfig)


#: group -> {ConfigStore name: schema}; every conf/<group>/<option>.yaml names one.
GROUP_SCHEMAS: Dict[str, Dict[str, type]] = {
    "optimizer": {"base_adamw": AdamWConfig, "base_adam": AdamConfig, "base_sgd": SGDConfig},
    "scheduler": {
        "base_cosine": CosineSchedulerConfig,
        "base_onecycle": OneCycleSchedulerConfig,
        "base_constant": ConstantSchedulerConfig,
    },
    "loss": {"base_chord_loss": ChordLossConfig},
    "data": {"base_songs": SongsDataConfig, "base_synthetic": SyntheticDataConfig, "base_dummy": DummyDataConfig,
             "base_folder": FolderDataConfig, "base_folder_songs": FolderSongsDataConfig},
    "model": {"base_chord_model": ChordModelConfig},
    "logger": {"base_tensorboard_logger": TensorBoardLoggerConfig, "base_csv_logger": CSVLoggerConfig,
               "base_mlflow_logger": MLflowLoggerConfig, "base_wandb_logger": WandbLoggerConfig},
}


def register_configs() -> None:
    """Store the root schema and every group schema in Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="base_config", node=ExperimentConfig)
    for group, schemas in GROUP_SCHEMAS.items():
        for name, node in schemas.items():
            cs.store(group=group, name=name, node=node)


# ---------------------------------------------------------------------------
# Composed config -> TrainingConfig
# ---------------------------------------------------------------------------


def to_training_config(cfg: Any) -> TrainingConfig:
    """Map a composed run config (DictConfig or nested dict) onto the flat TrainingConfig.

    Each TrainingConfig field has one home in the composed config; values are checked
    first, so a bad one fails here with the key it came from.
    """
    check_required(cfg)
    c = resolved_dict(cfg)
    validate_run_config(c)
    opt, sched, data, trainer = c["optimizer"], c["scheduler"], c["data"], c["trainer"]
    trainer_fields = {k: v for k, v in trainer.items() if k in TrainingConfig.__dataclass_fields__}
    return TrainingConfig(
        learning_rate=float(opt["lr"]),
        weight_decay=float(opt["weight_decay"]),
        batch_size=int(data["batch_size"]),
        num_workers=int(data["num_workers"]),
        scheduler=sched["name"],
        warmup_epochs=int(sched["warmup_epochs"]),
        scheduler_options={k: v for k, v in sched.items() if k not in ("name", "warmup_epochs")},
        label_smoothing=float(c["loss"]["label_smoothing"]),
        seed=int(c["seed"]),
        **trainer_fields,
    )


def check_required(cfg: Any) -> None:
    """Raise ConfigValueError for a ``???`` value the user must give (``data.dataset.root``)."""
    if isinstance(cfg, dict):
        return
    from omegaconf import OmegaConf

    missing = sorted(OmegaConf.missing_keys({key: cfg[key] for key in cfg if key != "hydra"}))
    if missing:
        raise ConfigValueError(f"{missing[0]} is required: add {missing[0]}=... to the command line")


def validate_run_config(c: Dict[str, Any]) -> None:
    """Raise ConfigValueError naming the first key whose value cannot work."""
    num_epochs = c["trainer"]["num_epochs"]
    warmup = c["scheduler"]["warmup_epochs"]
    checks = [
        ("optimizer.lr", c["optimizer"]["lr"] > 0, "must be > 0"),
        ("optimizer.weight_decay", c["optimizer"]["weight_decay"] >= 0, "must be >= 0"),
        ("data.batch_size", c["data"]["batch_size"] > 0, "must be > 0"),
        ("data.train_size", c["data"]["train_size"] > 0, "must be > 0"),
        ("data.val_size", c["data"]["val_size"] > 0, "must be > 0"),
        ("data.num_workers", c["data"]["num_workers"] >= 0, "must be >= 0"),
        ("trainer.num_epochs", num_epochs > 0, "must be > 0"),
        ("scheduler.warmup_epochs", warmup >= 0, "must be >= 0"),
        (
            "scheduler.warmup_epochs",
            warmup == 0 or warmup < num_epochs,
            f"must be < trainer.num_epochs ({num_epochs}) or 0",
        ),
        ("loss.label_smoothing", 0 <= c["loss"]["label_smoothing"] < 1, "must be in [0, 1)"),
        (
            "trainer.mixed_precision",
            c["trainer"]["mixed_precision"] in MIXED_PRECISION_MODES,
            f"must be one of {', '.join(MIXED_PRECISION_MODES)}",
        ),
        ("trainer.grad_accum_steps", c["trainer"]["grad_accum_steps"] >= 1, "must be >= 1"),
        (
            "trainer.on_nonfinite",
            c["trainer"].get("on_nonfinite", "stop") in NONFINITE_POLICIES,
            f"must be one of {', '.join(NONFINITE_POLICIES)}",
        ),
        ("trainer.monitor", is_monitor_name(c["trainer"].get("monitor", "val_loss")),
         "must name a validation metric of the history: val_loss, val_chord_type_acc, val_root_acc, "
         "val_bass_note_acc, or val_<name> of a song validator"),
        (
            "trainer.monitor_mode",
            c["trainer"].get("monitor_mode", "auto") in MONITOR_MODES,
            f"must be one of {', '.join(MONITOR_MODES)}",
        ),
        ("trainer.num_threads", c["trainer"].get("num_threads", 0) >= 0, "must be >= 0 (0 = all cores, or the job's share)"),
        ("trainer.device", is_device_name(c["trainer"].get("device", "auto")), f"must be one of {DEVICE_NAMES}"),
        ("trainer.checkpoint_dir", stays_inside(c["trainer"].get("checkpoint_dir", "checkpoints")),
         "must be a relative path inside the run folder (no absolute path, no '..'), e.g. checkpoints"),
        ("decoder.self_transition", _decoder(c, "self_transition") is None
         or _finite_number(_decoder(c, "self_transition")) and 0 < _decoder(c, "self_transition") < 1,
         "must be in (0, 1), or null (estimated from the training labels)"),
        ("decoder.prior_weight", _finite_number(_decoder(c, "prior_weight", 0.0))
         and 0 <= _decoder(c, "prior_weight", 0.0) <= 1, "must be in [0, 1]"),
        ("eval_songs", not c.get("eval_songs") or Path(str(c["eval_songs"])).expanduser().is_dir(),
         "must be an existing folder of audio files with .lab files beside them (or null)"),
    ]
    from chordexp.config_checks import value_checks

    checks += value_checks(c)  # the model's and the optimizer's numbers, the seed, NaN and inf
    for key, ok, requirement in checks:
        if not ok:
            value: Any = c
            for part in key.split("."):
                value = value.get(part)
            raise ConfigValueError(f"{key}={value!r} {requirement}")


def _decoder(c: Dict[str, Any], key: str, default: Any = None) -> Any:
    return (c.get("decoder") or {}).get(key, default)


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
        and abs(value) != float("inf")


DEVICE_NAMES = "auto, cpu, cuda, cuda:N, mps"


def is_monitor_name(name: Any) -> bool:
    """A name the trainer could monitor: ``val_`` and a metric name (which ones exist is
    known once the first validation has run, when a song validator adds its own)."""
    return isinstance(name, str) and re.fullmatch(r"val_\w+", name) is not None


def is_device_name(name: Any) -> bool:
    """A device the trainer knows (whether it exists here is checked when it is used)."""
    return isinstance(name, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", name.strip().lower()) is not None


def stays_inside(relative: Any) -> bool:
    """``relative`` names a path inside the folder it is joined to: not absolute, no ``..``,
    not the folder itself."""
    if not isinstance(relative, str) or not relative.strip():
        return False
    path = PurePosixPath(relative.replace("\\", "/"))
    return not path.is_absolute() and ".." not in path.parts and path.parts not in ((), (".",)) \
        and not PureWindowsPath(relative).drive


def resolved_dict(cfg: Any) -> Dict[str, Any]:
    """A plain nested dict with interpolations resolved, without Hydra's ``hydra`` node
    (present with ``return_hydra_config=True``; it only resolves inside a running job).
    A plain dict is returned as it is; omegaconf is imported only when needed."""
    if isinstance(cfg, dict):
        return cfg
    from omegaconf import OmegaConf

    return {
        key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
        for key in cfg
        if key != "hydra"
    }
