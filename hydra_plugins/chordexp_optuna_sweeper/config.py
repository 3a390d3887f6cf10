"""The sweeper's config node (``hydra/sweeper: chordexp_optuna``) and its sampler and
pruner options (``hydra/sweeper/sampler: tpe|cmaes|random``,
``hydra/sweeper/pruner: median|successive_halving|hyperband|threshold|none``), in Hydra's ConfigStore.

No ``from __future__ import annotations`` here: Hydra's scan runs this module before it
is in sys.modules, where dataclasses cannot resolve string annotations."""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

SWEEPER_TARGET = "hydra_plugins.chordexp_optuna_sweeper.sweeper.ChordexpOptunaSweeper"


@dataclass
class TPESamplerConfig:
    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None
    n_startup_trials: int = 10  # random trials before TPE models the good region
    multivariate: bool = False
    constant_liar: bool = True  # parallel trials (n_jobs > 1) do not all draw the same point


@dataclass
class CmaEsSamplerConfig:
    _target_: str = "optuna.samplers.CmaEsSampler"
    seed: Optional[int] = None
    n_startup_trials: int = 1
    consider_pruned_trials: bool = False
    restart_strategy: Optional[str] = None


@dataclass
class RandomSamplerConfig:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None


@dataclass
class MedianPrunerConfig:
    """Stops a trial whose value at an epoch is worse than the median of earlier trials there."""

    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5  # finished trials before anything is pruned
    n_warmup_steps: int = 1  # epoch 1 says too little: judge from epoch 2 on
    interval_steps: int = 1


@dataclass
class SuccessiveHalvingPrunerConfig:
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = 1  # epochs every trial gets ("auto": from the first finished trial)
    reduction_factor: int = 3
    min_early_stopping_rate: int = 0


@dataclass
class HyperbandPrunerConfig:
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "${trainer.num_epochs}"
    reduction_factor: int = 3


@dataclass
class ThresholdPrunerConfig:
    """Stops a trial whose value leaves [lower, upper] (a loss that blows up)."""

    _target_: str = "optuna.pruners.ThresholdPruner"
    lower: Optional[float] = None
    upper: Optional[float] = None
    n_warmup_steps: int = 0


@dataclass
class NopPrunerConfig:
    """No pruning; trials still report their per-epoch values (the dashboard draws them)."""

    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class ChordexpOptunaSweeperConf:
    _target_: str = SWEEPER_TARGET
    defaults: List[Any] = field(default_factory=lambda: ["_self_", {"sampler": "tpe"}, {"pruner": "median"}])
    sampler: Any = None
    pruner: Any = None
    direction: Optional[str] = None  # minimize | maximize; null: follows optimized_metric
    study_name: str = "chordexp"
    storage: Optional[str] = None  # an RDB URL (sqlite:///study.db); null: sqlite in the sweep folder
    n_trials: int = 20  # trials the study holds when done (a resumed study runs the rest)
    n_jobs: int = 1  # trials launched at once (joblib, SLURM)
    max_failure_rate: float = 1.0  # above this share of failed trials in a batch the sweep stops
    params: Dict[str, str] = field(default_factory=dict)  # key: choice(...) | interval(...) | range(...) | value


SAMPLERS = {"tpe": TPESamplerConfig, "cmaes": CmaEsSamplerConfig, "random": RandomSamplerConfig}
PRUNERS = {
    "median": MedianPrunerConfig,
    "successive_halving": SuccessiveHalvingPrunerConfig,
    "hyperband": HyperbandPrunerConfig,
    "threshold": ThresholdPrunerConfig,
    "none": NopPrunerConfig,
}

_store = ConfigStore.instance()
_store.store(group="hydra/sweeper", name="chordexp_optuna", node=ChordexpOptunaSweeperConf, provider="chordexp")
for _name, _node in SAMPLERS.items():
    _store.store(
        group="hydra/sweeper/sampler", name=_name, node=_node, package="hydra.sweeper.sampler", provider="chordexp"
    )
for _name, _node in PRUNERS.items():
    _store.store(
        group="hydra/sweeper/pruner", name=_name, node=_node, package="hydra.sweeper.pruner", provider="chordexp"
    )
