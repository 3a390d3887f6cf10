"""The trial's side of an Optuna search (``hparams_search=optuna``): a run that is a
trial reports its objective to the study after every epoch and stops when the study's
pruner says the trial is hopeless.

chordexp's sweeper (``hydra_plugins/chordexp_optuna_sweeper``) names the trial in the
job's overrides (``optuna_trial.storage``, ``.study_name``, ``.number``: the
``OptunaTrialConfig`` of ``chordexp.experiment.schemas``), so this works wherever the job runs
(in-process, joblib workers, SLURM nodes) as long as the storage is reachable. The
pruner is the one the sweeper stored in the study's user attributes (storages do not
keep pruners). A pruned run ends like an early-stopped one (checkpoints, history,
metrics.json, plots) and leaves ``pruned.json`` in its folder; the trial gets the user
attribute ``pruned_at_epoch``, from which the sweeper tells the study PRUNED.
"""

from __future__ import annotations

import importlib
import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from chordexp.config import minimised
from chordexp.errors import ConfigValueError
from chordexp.experiment.run_folder import run_metrics, write_json
from chordexp.training.callbacks import Callback

log = logging.getLogger(__name__)

PRUNED_FILE = "pruned.json"
#: Study user attribute: the pruner's config (``{"_target_": "optuna.pruners.X", **kwargs}``).
PRUNER_ATTR = "chordexp.pruner"
#: Trial user attribute set when the pruner stopped the trial: the last epoch it ran.
PRUNED_ATTR = "pruned_at_epoch"
#: metrics.json keys a search minimises besides the losses (the rest, accuracies and song scores, are maximised).
MINIMIZED_METRICS = ("wall_time_s", "num_parameters", "epochs_run", "best_epoch")


def direction_for(metric: Optional[str]) -> str:
    """The direction that improves ``metric``: losses (``minimised``, the rule of
    ``monitor_mode='auto'``) and costs go down, scores up."""
    if metric is None:
        raise ConfigValueError("optimized_metric is null: an Optuna search needs the metrics.json key it optimises")
    return "minimize" if minimised(metric) or metric in MINIMIZED_METRICS else "maximize"


def is_pruned(folder: Path) -> bool:
    """Whether the run in ``folder`` was stopped by the study's pruner."""
    return (Path(folder) / PRUNED_FILE).is_file()


def objective_now(trainer: Any, metric: str) -> float:
    """What the run would return for ``metric`` if it stopped after this epoch."""
    metrics = run_metrics(
        trainer.history,
        best_epoch=trainer.best_epoch,
        best_val_loss=trainer.best_val_loss,
        stopped_early=False,
        wall_time_s=0.0,
        num_parameters=0,
        monitor=trainer.monitor,
    )
    value = metrics.get(metric)
    return float(value) if isinstance(value, (int, float)) else math.nan


class PruningCallback(Callback):
    """Reports ``metric`` (as the run would end now) at every epoch; stops the run
    cleanly when the study's pruner prunes the trial."""

    def __init__(self, trial: Any, metric: str, folder: Path) -> None:
        self.trial = trial
        self.metric = metric
        self.folder = Path(folder)

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: Mapping[str, float]) -> None:
        value = objective_now(trainer, self.metric)
        if not math.isfinite(value):  # a diverged run fails on its own; Optuna stores no NaN
            return
        self.trial.report(value, epoch)
        if epoch < trainer.config.num_epochs and self.trial.should_prune():
            self.trial.set_user_attr(PRUNED_ATTR, epoch)
            write_json(
                self.folder / PRUNED_FILE,
                {"trial": self.trial.number, "epoch": epoch, "metric": self.metric, "value": value},
            )
            log.info(
                "trial %d pruned after epoch %d (%s %.4f): the study's pruner stops it; the run ends here",
                self.trial.number,
                epoch,
                self.metric,
                value,
            )
            trainer.stopped_early = True  # train() ends after this epoch, as for early stopping


def trial_callbacks(trial_cfg: Optional[Mapping[str, Any]], metric: Optional[str], folder: Path) -> List[Callback]:
    """``[PruningCallback]`` when the run is a trial of a study (``optuna_trial.number``
    set) that is still running; else none. A finished trial's run (``resume=`` or
    ``rerun=`` of a trial folder) reports nothing: the study has its result."""
    if not trial_cfg or trial_cfg.get("number") is None or metric is None:
        return []
    import optuna

    storage = optuna.storages.get_storage(trial_cfg["storage"])
    study_name = trial_cfg["study_name"]
    study_id = storage.get_study_id_from_name(study_name)
    pruner = build_pruner(storage.get_study_user_attrs(study_id).get(PRUNER_ATTR))
    study = optuna.load_study(
        study_name=study_name, storage=storage, sampler=optuna.samplers.RandomSampler(), pruner=pruner
    )
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, int(trial_cfg["number"]))
    if storage.get_trial(trial_id).state != optuna.trial.TrialState.RUNNING:
        log.warning(
            "trial %s of study %s has finished; this run reports nothing to it", trial_cfg["number"], study_name
        )
        return []
    return [PruningCallback(optuna.trial.Trial(study, trial_id), metric, folder)]


def build_pruner(config: Optional[Mapping[str, Any]]) -> Any:
    """The pruner a sweeper stored (only ``optuna.pruners`` classes); NopPruner for none."""
    import optuna

    if not config:
        return optuna.pruners.NopPruner()
    kwargs: Dict[str, Any] = dict(config)
    target = str(kwargs.pop("_target_", ""))
    module, _, name = target.rpartition(".")
    if module != "optuna.pruners":
        raise ConfigValueError(f"study attribute {PRUNER_ATTR}: {target!r} is not an optuna.pruners class")
    return getattr(importlib.import_module(module), name)(**kwargs)
