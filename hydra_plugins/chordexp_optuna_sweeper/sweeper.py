"""A Hydra sweeper that runs an Optuna study, a batch of trials at a time, through
Hydra's launcher (basic, joblib, SLURM), with pruning (see docs/search.md).

Each trial is one ordinary job: its folder is numbered like the trial, its overrides
are the sampled parameters plus ``optuna_trial.*`` (storage, study, number), through
which the job reports per-epoch values and learns when it is pruned
(``chordexp.experiment.optuna_trial``). A job that fails makes its trial FAIL and the study goes
on; one the pruner stopped is PRUNED. ``n_trials`` is the size of the finished study:
run the same command with the same storage and the study resumes, trials left running
by a killed sweep are FAILed and their parameters queued again.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, cast

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

#: Trial user attribute of a retry: the number of the trial a stopped sweep left unfinished.
RETRY_ATTR = "retry_of"
DIRECTIONS = ("minimize", "maximize")
Direction = Literal["minimize", "maximize"]
#: Job errors that mean the user stopped the sweep (a signal), not that the trial failed.
INTERRUPTIONS = ("TrainingInterrupted", "KeyboardInterrupt")


class SweepError(ValueError):
    """A sweeper setting that cannot work; the message names the key (exit status 2)."""


class SweepFailed(SweepError):
    """Trials failed, too many or all of them (exit status 1, as any sweep whose jobs failed)."""


class ChordexpOptunaSweeper(Sweeper):
    def __init__(
        self,
        sampler: Any,
        pruner: Any,
        direction: Optional[str],
        study_name: str,
        storage: Optional[str],
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: Optional[DictConfig],
    ) -> None:
        self.sampler = sampler
        self.pruner = pruner
        self.direction = direction
        self.study_name = study_name
        self.storage = storage
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.params = params
        self.config: Optional[DictConfig] = None
        self.launcher: Any = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    # ------------------------------------------------------------------ settings
    def _check_settings(self) -> Direction:
        """The study's direction; SweepError for a setting that cannot work."""
        from chordexp.experiment.optuna_trial import direction_for

        if self.n_trials < 1 or self.n_jobs < 1:
            raise SweepError(
                f"hydra.sweeper.n_trials={self.n_trials} and hydra.sweeper.n_jobs={self.n_jobs} must be >= 1"
            )
        if not 0.0 <= self.max_failure_rate <= 1.0:
            raise SweepError(f"hydra.sweeper.max_failure_rate={self.max_failure_rate} must be in [0, 1]")
        assert self.config is not None  # set by setup()
        for part in ("sampler", "pruner"):
            check_counts(part, OmegaConf.to_container(self.config.hydra.sweeper[part], resolve=True))
        if self.direction is None:
            assert self.config is not None  # set by setup()
            try:
                return cast(Direction, direction_for(self.config.get("optimized_metric")))
            except ValueError as error:
                raise SweepError(str(error)) from None
        if self.direction not in DIRECTIONS:
            raise SweepError(
                f"hydra.sweeper.direction={self.direction!r}: one of minimize, maximize, or null "
                f"(follows optimized_metric)"
            )
        return cast(Direction, str(self.direction))  # checked against DIRECTIONS above

    def storage_url(self) -> str:
        """The study's RDB URL: ``storage``, a relative SQLite path made absolute (jobs may
        run elsewhere), or ``sqlite:///<sweep dir>/optuna.db`` when none is given."""
        assert self.config is not None  # set by setup()
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).resolve()
        if not self.storage:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{sweep_dir / 'optuna.db'}"
        url = str(self.storage)
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url[len(prefix) :].startswith(("/", ":memory:")) and url != prefix:
            return prefix + os.path.abspath(url[len(prefix) :])
        return url

    # ------------------------------------------------------------------ the study
    def sweep(self, arguments: List[str]) -> Any:
        """Run the study. A setting, storage or search space that cannot work ends the
        command with one line (``error: ...``) and exit status 2, as bad input does
        everywhere; failed trials (too many, or all) with exit status 1."""
        from .space import SearchSpaceError

        try:
            return self._sweep(arguments)
        except SweepFailed as error:
            raise SystemExit(f"error: {error}") from None
        except (SweepError, SearchSpaceError) as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None

    def _sweep(self, arguments: List[str]) -> Any:
        import optuna

        from chordexp.experiment.optuna_trial import PRUNER_ATTR

        from .space import parse_search_space

        assert self.config is not None and self.launcher is not None
        direction = self._check_settings()
        params = cast(Mapping[str, Any], self.params or {})  # a DictConfig of override strings
        preset = [f"{key}={value}" for key, value in params.items()]
        space, fixed = parse_search_space([*preset, *arguments])
        if not space:
            raise SweepError(
                "hydra.sweeper.params holds no choice(...), interval(...) or range(...): nothing to search"
            )
        self._check_space_composes(space, fixed)
        storage = self.storage_url()
        check_storage(storage)
        try:
            study = optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                sampler=self.sampler,
                pruner=self.pruner,
                direction=direction,
                load_if_exists=True,
            )
        except Exception as error:  # SQLAlchemy and Optuna raise many types for a storage they cannot open
            raise SweepError(
                f"hydra.sweeper.storage={storage}: cannot open the study there ({first_line(error)})"
            ) from None
        if study.direction.name.lower() != direction:
            raise SweepError(
                f"hydra.sweeper.direction: study {self.study_name} in {storage} was made to "
                f"{study.direction.name.lower()}, not {direction}; give another study_name"
            )
        self._reseed_for_resume(study)
        pruner_config = OmegaConf.to_container(self.config.hydra.sweeper.pruner, resolve=True)
        study.set_user_attr(PRUNER_ATTR, pruner_config)
        requeue_unfinished(study)
        log.info(
            "study %s in %s: %s %s; sampler %s, pruner %s",
            self.study_name,
            storage,
            direction,
            self.config.get("optimized_metric"),
            type(self.sampler).__name__,
            type(self.pruner).__name__,
        )
        job_keys = [f"optuna_trial.storage={quoted(storage)}", f"optuna_trial.study_name={quoted(self.study_name)}"]

        finished = finished_count(study)
        to_go = self.n_trials - finished
        if finished:
            log.info("resuming: %d of %d trials done, %d to go", finished, self.n_trials, max(to_go, 0))
        launched, failed = 0, 0
        while to_go > 0:
            trials = [study.ask() for _ in range(min(self.n_jobs, to_go))]
            try:
                overrides = [
                    trial_overrides(trial, space, fixed) + [*job_keys, f"optuna_trial.number={trial.number}"]
                    for trial in trials
                ]
            except ValueError as error:  # Optuna: a parameter's space differs from the stored study's
                for trial in trials:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
                raise SweepError(
                    f"hydra.sweeper.params: the search space differs from the one study {self.study_name} in "
                    f"{storage} was made with ({first_line(error)}); give a new hydra.sweeper.study_name or storage"
                ) from None
            try:
                returns = self._launch(trials, overrides)
            except KeyboardInterrupt:
                stop_trials(study, trials)
                raise
            failures, interrupted = 0, None
            for trial, ret in zip(trials, returns):
                outcome = self._tell(study, trial, ret)
                failures += outcome == "failed"
                interrupted = interrupted or (outcome if outcome.startswith("interrupted") else None)
            if interrupted:
                raise SystemExit(
                    f"sweep stopped ({interrupted}); to resume the study, run the same command with "
                    f"hydra.sweeper.storage={storage} and a new hydra.sweep.dir"
                )
            launched, failed = launched + len(returns), failed + failures
            if failures / len(returns) > self.max_failure_rate:
                raise SweepFailed(
                    f"{failures} of {len(returns)} trials failed, more than "
                    f"hydra.sweeper.max_failure_rate={self.max_failure_rate}: the sweep stops"
                )
            to_go -= len(trials)
        results = self._write_results(study, storage)
        if launched and failed == launched:  # exit 1, as for any sweep in which jobs failed
            raise SweepFailed(
                f"every one of the {launched} trials failed (their run.log says why); "
                f"the study is in {storage}, optimization_results.yaml has no best trial"
            )
        return results

    def _check_space_composes(self, space: Dict[str, Any], fixed: Dict[str, str]) -> None:
        """SweepError before the study opens when a key of the search space (or a fixed
        override) is not in the config or its first value has the wrong type: a misspelt
        key would otherwise fail only when trial 0 starts, leaving it RUNNING in the study."""
        assert self.config is not None
        if self.hydra_context is None:  # set up without Hydra (a test's stand-in launcher): no loader
            return
        probe = [*(f"{key}={value}" for key, value in fixed.items())]
        probe += [f"{key}={first_value(distribution)}" for key, distribution in space.items()]
        try:
            self.hydra_context.config_loader.load_sweep_config(self.config, probe)
        except Exception as error:  # Hydra's ConfigCompositionException and OmegaConf's errors
            reason = first_line(error) + (f" ({first_line(error.__cause__)})" if error.__cause__ else "")
            raise SweepError(
                f"hydra.sweeper.params: {reason}; checked before the first trial, nothing was run"
            ) from None

    def _reseed_for_resume(self, study: Any) -> None:
        """A resumed study gets its sampler seeded with ``seed + trials so far``: the same
        seed again would draw the first command's random start-up points once more."""
        from hydra.utils import instantiate

        assert self.config is not None  # set by setup()
        existing = len(study.get_trials(deepcopy=False))
        seed = self.config.hydra.sweeper.sampler.get("seed")
        if existing and seed is not None:
            self.sampler = instantiate(self.config.hydra.sweeper.sampler, seed=int(seed) + existing)
            study.sampler = self.sampler

    def _launch(self, trials: Sequence[Any], overrides: List[List[str]]) -> List[Any]:
        """One launch of the batch, job folders numbered like the trials (one launch per
        trial if another process took numbers in between)."""
        first = trials[0].number
        if [t.number for t in trials] == list(range(first, first + len(trials))):
            return list(self.launcher.launch(overrides, initial_job_idx=first))
        return [
            ret
            for trial, job in zip(trials, overrides)
            for ret in self.launcher.launch([job], initial_job_idx=trial.number)
        ]

    def _tell(self, study: Any, trial: Any, ret: Any) -> str:
        """Tell the study how the job ended: ``complete``, ``pruned``, ``failed`` or ``interrupted ...``."""
        import optuna
        from hydra.core.utils import JobStatus

        from chordexp.experiment.optuna_trial import PRUNED_ATTR

        State = optuna.trial.TrialState
        stored = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)  # as the job left it
        if stored.user_attrs.get(PRUNED_ATTR) is not None:
            study.tell(trial, state=State.PRUNED)
            log.info("trial %d pruned after epoch %d", trial.number, stored.user_attrs[PRUNED_ATTR])
            return "pruned"
        if ret.status == JobStatus.COMPLETED:
            value = ret.return_value
            try:
                value = float(value)
            except (TypeError, ValueError):
                value = math.nan
            if math.isfinite(value):
                study.tell(trial, value)
                log.info("trial %d: %s", trial.number, value)
                return "complete"
            error_line = f"the job returned {ret.return_value!r}, not a finite number"
        else:
            error = ret._return_value
            if type(error).__name__ in INTERRUPTIONS:
                stop_trials(study, [trial])
                return f"interrupted: trial {trial.number}: {error}"
            error_line = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        study.tell(trial, state=State.FAIL)
        log.warning("trial %d failed (%s); the study goes on", trial.number, error_line)
        return "failed"

    def _write_results(self, study: Any, storage: str) -> Dict[str, Any]:
        """``optimization_results.yaml`` in the sweep folder: the best trial and the counts."""
        import optuna

        assert self.config is not None  # set by setup()
        states = [t.state for t in study.get_trials(deepcopy=False)]
        counts = {
            name.lower(): states.count(getattr(optuna.trial.TrialState, name))
            for name in ("COMPLETE", "PRUNED", "FAIL")
        }
        complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
        best = study.best_trial if complete else None
        results = {
            "name": "optuna",
            "study_name": self.study_name,
            "storage": storage,
            "direction": study.direction.name.lower(),
            "optimized_metric": self.config.get("optimized_metric"),
            "best_trial": best.number if best else None,
            "best_params": best.params if best else None,
            "best_value": best.value if best else None,
            "trials": counts,
        }
        if best:
            log.info("best trial %d: %s %s", best.number, best.value, best.params)
        else:
            log.warning("no trial of study %s completed: no best trial", self.study_name)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
        return results


#: Sampler and pruner counts and their least value: Optuna takes some of these as given
#: and fails later (hyperband's min_resource=0 divides by zero in every trial).
LEAST = {
    "n_startup_trials": 0,
    "n_warmup_steps": 0,
    "interval_steps": 1,
    "min_resource": 1,
    "max_resource": 1,
    "reduction_factor": 2,
    "min_early_stopping_rate": 0,
}


SQLITE = "sqlite:///"


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def check_storage(url: str) -> None:
    """SweepError for a storage URL that cannot work, before SQLAlchemy tries it: an
    unknown scheme, an SQLite file in a missing folder, or a file that is not SQLite."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    known = ("sqlite", "postgresql", "mysql", "oracle", "mssql")
    if scheme.split("+", 1)[0] not in known:
        raise SweepError(
            f"hydra.sweeper.storage={url}: not a database URL Optuna can use ({', '.join(k + '://' for k in known)})"
        )
    if url.startswith(SQLITE) and url[len(SQLITE) :] not in ("", ":memory:"):
        path = Path(url[len(SQLITE) :])
        if not path.parent.is_dir():
            raise SweepError(f"hydra.sweeper.storage={url}: the folder {path.parent} does not exist")
        if path.exists():
            if not path.is_file():
                raise SweepError(f"hydra.sweeper.storage={url}: {path} is not a file")
            with open(path, "rb") as handle:
                head = handle.read(16)
            if head and head != b"SQLite format 3\x00":
                raise SweepError(f"hydra.sweeper.storage={url}: {path} is not an SQLite database; give a new file")


def check_counts(part: str, settings: Any) -> None:
    """SweepError naming ``hydra.sweeper.<part>.<key>`` for a NaN or infinite number, or a
    count below its least value (``LEAST``)."""
    if not isinstance(settings, dict):
        return
    for key, value in settings.items():
        name = f"hydra.sweeper.{part}.{key}"
        if isinstance(value, float) and not math.isfinite(value):
            raise SweepError(f"{name}={value} must be a finite number")
        if key in LEAST and not isinstance(value, str) and value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < LEAST[key]:
                raise SweepError(f"{name}={value} must be an integer >= {LEAST[key]}")


def trial_overrides(trial: Any, space: Dict[str, Any], fixed: Dict[str, str]) -> List[str]:
    """The job's overrides: the fixed ones (command line, preset), then the sampled values."""
    sampled = {name: trial._suggest(name, distribution) for name, distribution in space.items()}
    return [*(f"{key}={value}" for key, value in fixed.items()), *(f"{key}={value}" for key, value in sampled.items())]


def first_value(distribution: Any) -> Any:
    """A value of ``distribution`` to compose with: the first choice, or the lower bound."""
    choices = getattr(distribution, "choices", None)
    if choices is not None:
        return "null" if choices[0] is None else choices[0]
    return distribution.low


def quoted(text: str) -> str:
    """``text`` as a quoted override value (URLs hold ``:`` and ``/``)."""
    return "'" + str(text).replace("\\", "\\\\").replace("'", "\\'") + "'"


def finished_count(study: Any) -> int:
    """Trials that count towards ``n_trials``: finished ones, less those queued again."""
    import optuna

    State = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(RETRY_ATTR) for t in trials} - {None}
    return sum(t.state in (State.COMPLETE, State.PRUNED, State.FAIL) and t.number not in retried for t in trials)


def stop_trials(study: Any, trials: Sequence[Any]) -> None:
    """FAIL ``trials`` (stopped by the user) and queue their parameters again."""
    import optuna

    for trial in trials:
        study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        study.enqueue_trial(dict(trial.params), user_attrs={RETRY_ATTR: trial.number})


def requeue_unfinished(study: Any) -> None:
    """Trials a killed sweep left RUNNING: FAIL them and queue their parameters again.
    (One sweeper runs a study; its parallelism is its launcher's.)"""
    import optuna

    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in running:
        log.warning(
            "trial %d was left running by a stopped sweep: marked FAIL, its parameters queued again", trial.number
        )
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        study.enqueue_trial(dict(trial.params), user_attrs={RETRY_ATTR: trial.number})
