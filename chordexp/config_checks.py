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

from chordexp.config import DEVICE_NAMES, RULES, TrainingConfig, is_device_name, is_monitor_name, stays_inside
from chordexp.decode import DECODER_DEFAULTS, PRIOR_WEIGHT_RANGE, prior_weight_ok, self_transition_ok
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
            "must name a validation metric of the history: val_loss, val_chord_type_acc, val_root_acc, "
            "val_bass_note_acc, or val_<name> of a song validator",
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
    model = c.get("model") or {}
    if str(model.get("_target_", "")).endswith("ChordRecognitionModel"):
        checks += model_checks(model)
    return checks


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
    """ChordRecognitionModel's numbers (its own check that d_model divides by num_heads
    stays the model's)."""

    def positive_int(key: str) -> Check:
        value = model.get(key, 1)
        return (f"model.{key}", isinstance(value, int) and value > 0, "must be an integer > 0")

    checks = [positive_int(key) for key in ("d_model", "num_heads", "channels", "bins_per_octave", "n_octaves")]
    blocks = model.get("num_blocks", 1)
    checks.append(("model.num_blocks", isinstance(blocks, int) and blocks >= 0, "must be an integer >= 0"))
    dropout = model.get("dropout", 0.0)
    checks.append(("model.dropout", finite(dropout) and 0 <= dropout < 1, "must be in [0, 1)"))
    fmin = model.get("fmin", 32.7)
    checks.append(("model.fmin", finite(fmin) and fmin > 0, "must be a finite frequency > 0 Hz"))
    context = model.get("context_seconds", 1.0)
    checks.append(
        ("model.context_seconds", finite(context) and context >= 0, "must be a finite number of seconds >= 0")
    )
    return checks
