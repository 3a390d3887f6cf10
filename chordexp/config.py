"""The training loop's settings: ``TrainingConfig`` (the seed guide's flat dataclass, the
Python API) and the one check of its values, shared by the Trainer and a run's config.

Plain Python: the Hydra schemas that map a run's config onto it live in
``chordexp.experiment.schemas``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Callable, Dict, Optional, Tuple

from chordexp.errors import ConfigValueError

#: The loss's default label smoothing, the guide's (ChordRecognitionLoss reads it too).
LABEL_SMOOTHING = 0.1


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
    label_smoothing: float = LABEL_SMOOTHING
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


#: Each scheduler's options (``TrainingConfig.scheduler_options``) with the defaults a
#: run's config shows (``scheduler=cosine`` ...); onecycle's are torch's OneCycleLR
#: defaults, and onecycle also takes pct_start, anneal_strategy, cycle_momentum and
#: three_phase (``+scheduler.pct_start=0.2``; chordexp.training.schedulers says how each
#: is set when not given).
SCHEDULER_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "cosine": {"min_lr_ratio": 0.01},  # final lr = learning_rate * min_lr_ratio
    "onecycle": {
        "div_factor": 25.0,  # initial lr = learning_rate / div_factor
        "final_div_factor": 1e4,  # final lr = initial lr / final_div_factor
        "base_momentum": 0.85,
        "max_momentum": 0.95,
    },
    "constant": {},
}
#: The options each scheduler takes.
SCHEDULER_OPTIONS: Dict[str, Tuple[str, ...]] = {
    "cosine": tuple(SCHEDULER_DEFAULTS["cosine"]),
    "onecycle": (*SCHEDULER_DEFAULTS["onecycle"], "pct_start", "anneal_strategy", "cycle_momentum", "three_phase"),
    "constant": (),
}
#: AdamW's fused kernel (CPU and CUDA): ~4x faster than torch's default single-tensor loop
#: on CPU; the Trainer's default optimizer and ``optimizer=adamw`` both take it.
ADAMW_FUSED = True

MIXED_PRECISION_MODES = ("no", "bf16", "fp16")
NONFINITE_POLICIES = ("stop", "skip")
MONITOR_MODES = ("auto", "min", "max")
#: What ``trainer.monitor`` may name without a song validator (with one, also ``val_<name>``):
#: the validation keys of the training history. These names and the rule of ``minimised``
#: live here alone; the run's checks, the trainer (``chordexp.training.monitor``) and Optuna
#: searches read them.
MONITORS = ("val_loss", "val_chord_type_acc", "val_root_acc", "val_bass_note_acc")


def minimised(metric: str) -> bool:
    """Whether ``metric`` improves downwards: a name that holds "loss" (val_loss) does; any
    other (accuracies, song scores) improves upwards. ``monitor_mode='auto'`` follows this."""
    return "loss" in metric


def monitor_direction(monitor: str, mode: str) -> str:
    """``'min'`` or ``'max'``: ``mode`` itself, or for ``'auto'`` what ``minimised`` says."""
    if mode == "auto":
        return "min" if minimised(monitor) else "max"
    return mode


@dataclass(frozen=True)
class SettingRule:
    """What one TrainingConfig field must hold, worded for both places that report it: the
    Python API (``learning_rate must be > 0, got 0.0``) and a run's config, which names the
    key the value came from (``optimizer.lr=0.0 must be > 0``)."""

    name: str
    requirement: str = ""  # e.g. "must be > 0"; unused with choices
    ok: Optional[Callable[[Any], bool]] = None
    choices: Tuple[str, ...] = ()
    api_requirement: str = ""  # the API's own words where they differ from the config's

    def holds(self, value: Any) -> bool:
        return value in self.choices if self.choices else self.ok is not None and self.ok(value)

    def config_requirement(self) -> str:
        return f"must be one of {', '.join(self.choices)}" if self.choices else self.requirement

    def api_message(self, value: Any) -> str:
        if self.choices:
            return f"unknown {self.name} {value!r}; valid: {', '.join(self.choices)}"
        return f"{self.name} {self.api_requirement or self.requirement}, got {value}"


#: The Trainer's requirements, in the order it checks them.
SETTING_RULES = (
    SettingRule("mixed_precision", choices=MIXED_PRECISION_MODES),
    SettingRule("grad_accum_steps", "must be >= 1", lambda v: v >= 1),
    SettingRule("num_epochs", "must be > 0", lambda v: v > 0, api_requirement="must be >= 1"),
    SettingRule("learning_rate", "must be > 0", lambda v: v > 0),
    SettingRule("warmup_epochs", "must be >= 0", lambda v: v >= 0),
    SettingRule("on_nonfinite", choices=NONFINITE_POLICIES),
    SettingRule("monitor_mode", choices=MONITOR_MODES),
    SettingRule("label_smoothing", "must be in [0, 1)", lambda v: 0 <= v < 1),
)
RULES = {rule.name: rule for rule in SETTING_RULES}


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: ChordRecognitionModel's settings that hold each on its own, checked by the model and,
#: under ``model.<name>``, by a run's config before anything is built; the rules that span
#: several (d_model divisible by num_heads, the front end below Nyquist) are the model's.
MODEL_RULES = tuple(
    SettingRule(name, "must be an integer > 0", lambda v: _integer(v) and v > 0)
    for name in ("d_model", "num_heads", "channels", "bins_per_octave", "n_octaves", "feedforward_ratio")
) + (
    SettingRule("num_blocks", "must be an integer >= 0", lambda v: _integer(v) and v >= 0),
    SettingRule("dropout", "must be in [0, 1)", lambda v: _finite(v) and 0 <= v < 1),
    SettingRule("fmin", "must be a finite frequency > 0 Hz", lambda v: _finite(v) and v > 0),
    SettingRule("context_seconds", "must be a finite number of seconds >= 0", lambda v: _finite(v) and v >= 0),
)


def check_setting(name: str, value: Any) -> None:
    """Raise ConfigValueError if ``value`` breaks the rule of the setting ``name``."""
    rule = RULES[name]
    if not rule.holds(value):
        raise ConfigValueError(rule.api_message(value))


def check_training_config(config: TrainingConfig) -> None:
    """Raise ConfigValueError for the first setting of ``config`` that cannot work."""
    for rule in SETTING_RULES:
        check_setting(rule.name, getattr(config, rule.name))


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
    return (
        not path.is_absolute()
        and ".." not in path.parts
        and path.parts not in ((), (".",))
        and not PureWindowsPath(relative).drive
    )
