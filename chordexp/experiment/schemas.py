"""The Hydra schemas of a run's config, stored in Hydra's ConfigStore by ``register_configs``,
and the map of a composed config onto ``chordexp.config.TrainingConfig``.

Each YAML option in conf/<group>/ starts with ``defaults: [base_<option>, _self_]``, so a
misspelt key or a wrong type fails at composition. The root schema types each group with
its base class; an option's subclass (with its extra keys) replaces it when the option is
merged in. Each default has one home: the schemas of the model, the loss, the datasets and
the trackers are read from their constructors (``constructor_schema``), where a setting
another key owns follows it (a dataset's and the model's ``sample_rate`` follow
``data.sample_rate``); the trainer's fields come from TrainingConfig, the decoder's from
``chordexp.decode.DecoderSettings``, and conf/ holds only what the main job changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from chordexp.config import ADAMW_FUSED, SCHEDULER_DEFAULTS, TrainingConfig
from chordexp.config_checks import validate_run_config
from chordexp.decode import DECODER_DEFAULTS
from chordexp.errors import ConfigValueError
from chordexp.experiment.constructor_schema import constructor_schema, setting_default

MISSING = "???"  # OmegaConf's marker for a mandatory value


@dataclass
class OptimizerConfig:
    """``torch.optim`` class built as a factory: ``instantiate(cfg)(model.parameters())``."""

    _target_: str = MISSING
    _partial_: bool = True
    lr: float = TrainingConfig.learning_rate
    weight_decay: float = TrainingConfig.weight_decay


@dataclass
class AdamFamilyConfig(OptimizerConfig):
    """torch's defaults of Adam and AdamW's moment estimates."""

    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8


@dataclass
class AdamWConfig(AdamFamilyConfig):
    _target_: str = "torch.optim.AdamW"
    fused: bool = ADAMW_FUSED  # a resume keeps the path its checkpoint was written with


@dataclass
class AdamConfig(AdamFamilyConfig):
    _target_: str = "torch.optim.Adam"


@dataclass
class SGDConfig(OptimizerConfig):
    _target_: str = "torch.optim.SGD"
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
    min_lr_ratio: float = SCHEDULER_DEFAULTS["cosine"]["min_lr_ratio"]  # final lr = learning_rate * min_lr_ratio


@dataclass
class OneCycleSchedulerConfig(SchedulerConfig):
    name: str = "onecycle"
    div_factor: float = SCHEDULER_DEFAULTS["onecycle"]["div_factor"]  # initial lr = learning_rate / div_factor
    final_div_factor: float = SCHEDULER_DEFAULTS["onecycle"]["final_div_factor"]  # final lr = initial / this
    base_momentum: float = SCHEDULER_DEFAULTS["onecycle"]["base_momentum"]
    max_momentum: float = SCHEDULER_DEFAULTS["onecycle"]["max_momentum"]


@dataclass
class ConstantSchedulerConfig(SchedulerConfig):
    name: str = "constant"
    warmup_epochs: int = 0


@dataclass
class LossConfig:
    """Every loss takes ``label_smoothing`` (``TrainingConfig.label_smoothing`` is read from it)."""

    _target_: str = MISSING
    label_smoothing: float = TrainingConfig.label_smoothing


#: The loss's settings and defaults: its constructor's arguments.
ChordLossConfig = constructor_schema("chordexp.model.loss", "ChordRecognitionLoss", "ChordLossConfig", LossConfig)


@dataclass
class DatasetConfig:
    """Keyword arguments of the dataset class (an ``options`` dict is spread into them);
    ``size``, ``split`` and ``seed`` are supplied by the run."""

    _target_: str = MISSING


#: A dataset's arguments that the run supplies, not settings of its schema.
DATASET_SUPPLIED = ("size", "split", "seed")
#: The clip a dataset renders or cuts is what the model hears: one home, ``data``.
FOLLOW_CLIP = (("sample_rate", "${data.sample_rate}"), ("clip_seconds", "${data.clip_seconds}"))
#: A collection's split options live on ``data`` (a sweep sets ``data.fold``).
FOLLOW_SPLITS = (("num_folds", "${data.num_folds}"), ("fold", "${data.fold}"), ("cache_dir", "${data.cache_dir}"))


def dataset_schema(
    module: str, class_name: str, base: type = DatasetConfig, follow=FOLLOW_CLIP, name: str = ""
) -> type:
    """A dataset's schema read from its constructor (``constructor_schema``), under the
    name ``chordexp.data`` exports it as."""
    return constructor_schema(
        f"chordexp.data.{module}",
        class_name,
        f"{name or class_name}Config",
        base,
        target=f"chordexp.data.{name or class_name}",
        supplied=DATASET_SUPPLIED,
        follow=follow,
    )


@dataclass
class GeneratorOptionsConfig(DatasetConfig):
    # Generator options (fields of chordexp.data.synth_clips.SynthOptions), passed as keywords;
    # empty = the realism's defaults. Add one with +data.dataset.options.NAME=VALUE.
    options: Dict[str, Any] = field(default_factory=dict)


#: Each dataset's settings and defaults: its constructor's arguments (docs/realism.md for
#: the songs' realism probabilities); sample_rate and clip_seconds follow ``data``.
SyntheticDatasetConfig = dataset_schema("synthetic", "SyntheticChordDataset", GeneratorOptionsConfig)
SongsDatasetConfig = dataset_schema("songs", "SyntheticSongDataset")
DummyDatasetConfig = dataset_schema("dummy", "DummyChordDataset", follow=())
#: Windows cut from a folder of songs, each audio file with a ``.lab`` beside it (or a
#: collection: chordexp/data/collection.py, docs/collections.md).
FolderDatasetConfig = dataset_schema("folder", "FolderChordDataset", follow=FOLLOW_CLIP + FOLLOW_SPLITS)
#: Excerpts of your own songs with a label per frame (song mode): the folder's settings.
FolderSongsDatasetConfig = dataset_schema(
    "folder", "FolderChordDataset", follow=FOLLOW_CLIP + FOLLOW_SPLITS, name="FolderSongDataset"
)


def clip_defaults(module: str, class_name: str) -> Dict[str, Any]:
    """``sample_rate`` and ``clip_seconds`` of a data option: its dataset's defaults."""
    return {key: setting_default(f"chordexp.data.{module}", class_name, key) for key, _ in FOLLOW_CLIP}


_SONG_CLIP = clip_defaults("songs", "SyntheticSongDataset")  # a folder's songs are cut as the synthetic ones
_WINDOW_CLIP = clip_defaults("synthetic", "SyntheticChordDataset")


@dataclass
class DataConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    # Song mode: items carry a label per model frame and the model outputs frame logits
    # (model.frame_outputs follows this); validation also transcribes whole songs.
    sequence: bool = False
    val_songs: int = 0  # whole validation songs transcribed and scored with mir_eval each epoch
    val_song_seconds: float = 45.0
    # The clip's sample rate and length (data.dataset's and the model's follow them);
    # each data option defaults to its dataset's.
    sample_rate: int = _WINDOW_CLIP["sample_rate"]
    clip_seconds: float = _WINDOW_CLIP["clip_seconds"]
    train_size: int = 16000
    val_size: int = 2000
    batch_size: int = TrainingConfig.batch_size
    num_workers: int = TrainingConfig.num_workers
    # Render every clip once (in num_workers processes, 0 = one per core) and keep the
    # audio in memory as float16 (88 kB per 1-s 44.1 kHz clip); epochs then read memory.
    cache: bool = False


@dataclass
class SyntheticDataConfig(DataConfig):
    dataset: SyntheticDatasetConfig = field(default_factory=SyntheticDatasetConfig)  # type: ignore[valid-type]


@dataclass
class SongsDataConfig(DataConfig):
    dataset: SongsDatasetConfig = field(default_factory=SongsDatasetConfig)  # type: ignore[valid-type]
    sequence: bool = True
    val_songs: int = 8
    sample_rate: int = _SONG_CLIP["sample_rate"]
    clip_seconds: float = _SONG_CLIP["clip_seconds"]


@dataclass
class DummyDataConfig(DataConfig):
    dataset: DummyDatasetConfig = field(default_factory=DummyDatasetConfig)  # type: ignore[valid-type]


@dataclass
class FolderDataConfig(DataConfig):
    dataset: FolderDatasetConfig = field(default_factory=FolderDatasetConfig)  # type: ignore[valid-type]
    num_folds: int = 0  # k-fold cross-validation (K >= 2; 0: the val_fraction split)
    fold: int = 0  # the held-out fold: `-m data.fold=0,1,2,3,4` runs every fold
    cache_dir: Optional[str] = "auto"  # decoded audio on disk ('auto': the user cache; null: memory)


@dataclass
class FolderSongsDataConfig(FolderDataConfig):
    dataset: FolderSongsDatasetConfig = field(default_factory=FolderSongsDatasetConfig)  # type: ignore[valid-type]
    sequence: bool = True
    val_songs: int = 8
    sample_rate: int = _SONG_CLIP["sample_rate"]  # as data=songs, so a model trained there fine-tunes here
    clip_seconds: float = _SONG_CLIP["clip_seconds"]


@dataclass
class ModelConfig:
    _target_: str = MISSING


#: The model's settings and defaults: its constructor's arguments (a new one needs nothing here).
#: The model hears what the data renders (sample_rate), attends over windows of the clip
#: length it is trained on (context_seconds) and outputs frame logits in song mode.
ChordModelConfig = constructor_schema(
    "chordexp.model.chord_model",
    "ChordRecognitionModel",
    "ChordModelConfig",
    ModelConfig,
    follow=(
        ("sample_rate", "${data.sample_rate}"),
        ("context_seconds", "${data.clip_seconds}"),
        ("frame_outputs", "${data.sequence}"),
    ),
)


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
    prior_weight: float = DECODER_DEFAULTS.prior_weight  # the chord-type prior divided out (> 0) or sharpened (< 0)
    estimate_tuning: bool = DECODER_DEFAULTS.estimate_tuning  # move the front end's filters by the measured tuning
    transpositions: int = DECODER_DEFAULTS.transpositions  # also hear it 1..N semitones up and down, average


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
    """An experiment tracker (``chordexp.loggers``): a Trainer callback that
    ``components.build_loggers`` builds from ``_target_`` with the run folder and the run
    config; docs/tracking.md."""

    _target_: str = MISSING


def logger_schema(module: str, class_name: str) -> type:
    """A tracker's schema read from its constructor (``run_folder`` and ``run_config`` are
    supplied by the run), under the name ``chordexp.loggers`` exports it as."""
    return constructor_schema(
        f"chordexp.loggers.{module}",
        class_name,
        f"{class_name}Config",
        LoggerConfig,
        target=f"chordexp.loggers.{class_name}",
    )


TensorBoardLoggerConfig = logger_schema("tensorboard_events", "TensorBoardLogger")
CSVLoggerConfig = logger_schema("csv_file", "CSVLogger")
MLflowLoggerConfig = logger_schema("mlflow_run", "MLflowLogger")
WandbLoggerConfig = logger_schema("wandb_run", "WandbLogger")


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
    "data": {
        "base_songs": SongsDataConfig,
        "base_synthetic": SyntheticDataConfig,
        "base_dummy": DummyDataConfig,
        "base_folder": FolderDataConfig,
        "base_folder_songs": FolderSongsDataConfig,
    },
    "model": {"base_chord_model": ChordModelConfig},
    "logger": {
        "base_tensorboard_logger": TensorBoardLoggerConfig,
        "base_csv_logger": CSVLoggerConfig,
        "base_mlflow_logger": MLflowLoggerConfig,
        "base_wandb_logger": WandbLoggerConfig,
    },
}


def register_configs() -> None:
    """Store the root schema and every group schema in Hydra's ConfigStore."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=ExperimentConfig)
    for group, schemas in GROUP_SCHEMAS.items():
        for name, node in schemas.items():
            cs.store(group=group, name=name, node=node)


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
    missing = sorted(OmegaConf.missing_keys({key: cfg[key] for key in cfg if key != "hydra"}))
    if missing:
        raise ConfigValueError(f"{missing[0]} is required: add {missing[0]}=... to the command line")


def resolved_dict(cfg: Any) -> Dict[str, Any]:
    """A plain nested dict with interpolations resolved, without Hydra's ``hydra`` node
    (present with ``return_hydra_config=True``; it only resolves inside a running job).
    A plain dict is returned as it is."""
    if isinstance(cfg, dict):
        return cfg
    return {
        key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
        for key in cfg
        if key != "hydra"
    }
