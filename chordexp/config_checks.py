"""Values of a run's composed config that compose but cannot work: the trainer's settings
(``chordexp.config.SETTING_RULES``, under the keys they come from), the data sizes, the
model's and the optimizer's numbers, the seed, and NaN or inf wherever a number is read.
Each check is ``(key, ok, requirement)``; the first one that fails becomes ``invalid
config: <key>=<value> <requirement>`` before anything is built (instead of a traceback
from deep inside torch, or a NaN that silently turns a feature off, such as
``trainer.gradient_clip=nan`` disabling clipping). Plain Python.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Tuple

from chordexp.config import (
    DEVICE_NAMES,
    MODEL_RULES,
    MONITORS,
    RULES,
    TrainingConfig,
    is_device_name,
    is_monitor_name,
    stays_inside,
)
from chordexp.decode import (
    DECODER_DEFAULTS,
    PRIOR_WEIGHT_RANGE,
    TRANSPOSITIONS_RANGE,
    prior_weight_ok,
    self_transition_ok,
    transpositions_ok,
)
from chordexp.errors import ConfigValueError

Check = Tuple[str, bool, str]
SEED_LIMIT = 2**63  # torch, numpy and the DataLoader generators all take seeds below this


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_run_config(c: Dict[str, Any]) -> None:
    """Raise ConfigValueError naming the first key of the resolved, plain config ``c`` whose
    value cannot work."""
    for key, ok, requirement in run_checks(c) + value_checks(c):
        if not ok:
            value: Any = c
            for part in key.split("."):
                value = value.get(part)
            raise ConfigValueError(f"{key}={value!r} {requirement}")


def setting_check(key: str, setting: str, value: Any) -> Check:
    """TrainingConfig's rule for ``setting``, reported under the config ``key`` it comes from."""
    rule = RULES[setting]
    return key, rule.holds(value), rule.config_requirement()


def run_checks(c: Dict[str, Any]) -> List[Check]:
    """The settings of the training loop, the data sizes, the decoder and ``eval_songs``."""
    trainer, decoder = c["trainer"], c.get("decoder") or {}
    num_epochs = trainer["num_epochs"]
    warmup = c["scheduler"]["warmup_epochs"]
    self_transition, prior_weight = (
        decoder.get("self_transition"),
        decoder.get("prior_weight", DECODER_DEFAULTS.prior_weight),
    )
    return [
        setting_check("optimizer.lr", "learning_rate", c["optimizer"]["lr"]),
        ("optimizer.weight_decay", c["optimizer"]["weight_decay"] >= 0, "must be >= 0"),
        ("data.batch_size", c["data"]["batch_size"] > 0, "must be > 0"),
        ("data.train_size", c["data"]["train_size"] > 0, "must be > 0"),
        ("data.val_size", c["data"]["val_size"] > 0, "must be > 0"),
        ("data.num_workers", c["data"]["num_workers"] >= 0, "must be >= 0"),
        setting_check("trainer.num_epochs", "num_epochs", num_epochs),
        setting_check("scheduler.warmup_epochs", "warmup_epochs", warmup),  # longer than the run: shortened
        setting_check("loss.label_smoothing", "label_smoothing", c["loss"]["label_smoothing"]),
        setting_check("trainer.mixed_precision", "mixed_precision", trainer["mixed_precision"]),
        setting_check("trainer.grad_accum_steps", "grad_accum_steps", trainer["grad_accum_steps"]),
        setting_check("trainer.on_nonfinite", "on_nonfinite", trainer.get("on_nonfinite", TrainingConfig.on_nonfinite)),
        (
            "trainer.monitor",
            is_monitor_name(trainer.get("monitor", TrainingConfig.monitor)),
            f"must name a validation metric of the history: {', '.join(MONITORS)}, or val_<name> of a song validator",
        ),
        setting_check("trainer.monitor_mode", "monitor_mode", trainer.get("monitor_mode", TrainingConfig.monitor_mode)),
        ("trainer.num_threads", trainer.get("num_threads", 0) >= 0, "must be >= 0 (0 = all cores, or the job's share)"),
        (
            "trainer.device",
            is_device_name(trainer.get("device", TrainingConfig.device)),
            f"must be one of {DEVICE_NAMES}",
        ),
        (
            "trainer.checkpoint_dir",
            stays_inside(trainer.get("checkpoint_dir", TrainingConfig.checkpoint_dir)),
            "must be a relative path inside the run folder (no absolute path, no '..'), e.g. checkpoints",
        ),
        (
            "decoder.self_transition",
            self_transition is None or self_transition_ok(self_transition),
            "must be in (0, 1), or null (estimated from the training labels)",
        ),
        ("decoder.prior_weight", prior_weight_ok(prior_weight), f"must be in {list(PRIOR_WEIGHT_RANGE)}"),
        (
            "decoder.transpositions",
            transpositions_ok(decoder.get("transpositions", DECODER_DEFAULTS.transpositions)),
            f"must be an integer in {TRANSPOSITIONS_RANGE[0]}..{TRANSPOSITIONS_RANGE[1]} (semitones up and down; 0: off)",
        ),
        (
            "eval_songs",
            not c.get("eval_songs") or Path(str(c["eval_songs"])).expanduser().is_dir(),
            "must be an existing folder of audio files with .lab files beside them (or null)",
        ),
    ]


def value_checks(c: Dict[str, Any]) -> List[Check]:
    """The checks of the composed (resolved, plain) config ``c``, in order."""
    optimizer, trainer = c.get("optimizer") or {}, c.get("trainer") or {}
    seed = c.get("seed", 0)
    checks: List[Check] = [
        ("optimizer.lr", finite(optimizer.get("lr", 1.0)), "must be a finite number > 0"),
        ("optimizer.weight_decay", finite(optimizer.get("weight_decay", 0.0)), "must be a finite number >= 0"),
        (
            "seed",
            isinstance(seed, int) and 0 <= seed < SEED_LIMIT,
            "must be an integer in 0..2**63-1 (the range of torch's and numpy's generators)",
        ),
        (
            "trainer.gradient_clip",
            finite(trainer.get("gradient_clip", TrainingConfig.gradient_clip)),
            "must be a finite number (the largest gradient norm; <= 0 turns clipping off)",
        ),
        (
            "trainer.min_delta",
            finite(trainer.get("min_delta", 0.0)) and trainer.get("min_delta", 0.0) >= 0,
            "must be a finite number >= 0",
        ),
    ]
    checks += optimizer_checks(optimizer)
    checks += fold_checks(c.get("data") or {})
    model = c.get("model") or {}
    if str(model.get("_target_", "")).endswith("ChordRecognitionModel"):
        checks += model_checks(model)
    return checks


def fold_checks(data: Dict[str, Any]) -> List[Check]:
    """A collection's split options, under the keys a user sets (``data.num_folds``,
    ``data.fold``; the dataset's own check names its arguments)."""
    if "num_folds" not in data:
        return []
    folds, fold = data["num_folds"], data.get("fold", 0)
    split_file = (data.get("dataset") or {}).get("split_file")

    def integer(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    folds_ok = integer(folds) and (folds == 0 or folds >= 2)
    return [
        ("data.num_folds", folds_ok, "must be 0 (a val_fraction split) or an integer >= 2 (k-fold cross-validation)"),
        (
            "data.fold",
            not folds_ok or integer(fold) and 0 <= fold < max(folds, 1),
            f"must be an integer in 0..{max(folds, 1) - 1} (data.num_folds={folds})" if folds_ok else "",
        ),
        (
            "data.num_folds",
            not (folds and split_file),
            f"and data.dataset.split_file={split_file} both choose the split: give one of them",
        ),
    ]


def optimizer_checks(optimizer: Dict[str, Any]) -> List[Check]:
    """torch.optim's own ranges (Adam, AdamW: betas, eps; SGD: momentum, dampening, nesterov)."""
    checks: List[Check] = []
    if "betas" in optimizer:
        betas = optimizer["betas"]
        ok = isinstance(betas, (list, tuple)) and len(betas) == 2 and all(finite(b) and 0 <= b < 1 for b in betas)
        checks.append(("optimizer.betas", ok, "must be two numbers in [0, 1), e.g. [0.9, 0.999]"))
    if "eps" in optimizer:
        checks.append(
            (
                "optimizer.eps",
                finite(optimizer["eps"]) and optimizer["eps"] >= 0,
                "must be a finite number >= 0 (e.g. 1e-8)",
            )
        )
    if "momentum" in optimizer:
        momentum = optimizer["momentum"]
        checks.append(("optimizer.momentum", finite(momentum) and momentum >= 0, "must be a finite number >= 0"))
        if optimizer.get("nesterov"):
            checks.append(
                (
                    "optimizer.momentum",
                    not finite(momentum) or momentum > 0,
                    "must be > 0 with optimizer.nesterov=true (or set optimizer.nesterov=false)",
                )
            )
    if "dampening" in optimizer:
        dampening = optimizer["dampening"]
        checks.append(("optimizer.dampening", finite(dampening) and 0 <= dampening <= 1, "must be in [0, 1]"))
        if optimizer.get("nesterov"):
            checks.append(("optimizer.dampening", dampening == 0, "must be 0 with optimizer.nesterov=true"))
    return checks


def model_checks(model: Dict[str, Any]) -> List[Check]:
    """ChordRecognitionModel's numbers: its own rules (``chordexp.config.MODEL_RULES``),
    under the keys they come from."""
    return [
        (f"model.{rule.name}", rule.holds(model[rule.name]), rule.config_requirement())
        for rule in MODEL_RULES
        if rule.name in model
    ]
