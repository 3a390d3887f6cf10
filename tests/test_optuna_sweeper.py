"""chordexp's Optuna sweeper (``hydra_plugins/chordexp_optuna_sweeper``) against a stand-in
launcher: the search space of the preset, pruned and failed trials, resuming a study.

The stand-in launcher plays the jobs in-process: a "job" reports its per-epoch values
through the real ``chordexp.experiment.optuna_trial`` callback, against the real SQLite storage,
so the pruner decides as it does in a search; no model is trained (the real command
line runs in test_hparams_search.py). The sweeper ends a bad search with one line
(SystemExit); the search-space errors are matched as ValueError (SearchSpaceError derives
from it): Hydra's plugin scan re-runs the plugin's modules, so their classes imported
here are not the ones raised.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, List

import optuna
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import instantiate
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

import chordexp.run  # noqa: F401  (makes the plugin visible to Hydra's scan in an editable install)
from chordexp.experiment.optuna_trial import PRUNED_FILE, direction_for, trial_callbacks
from chordexp.experiment.run_folder import STANDARD_HISTORY
from chordexp.report import run_status
from hydra_plugins.chordexp_optuna_sweeper.space import parse_search_space
from hydra_plugins.chordexp_optuna_sweeper.sweeper import RETRY_ATTR, ChordexpOptunaSweeper

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def preset_params() -> Dict[str, str]:
    return yaml.safe_load((CONF_DIR / "hparams_search" / "optuna.yaml").read_text())["hydra"]["sweeper"]["params"]


# --------------------------------------------------------------------------- search space


def test_the_preset_yaml_parses_into_log_floats_and_categories():
    space, fixed = parse_search_space([f"{key}={value}" for key, value in preset_params().items()])
    assert fixed == {}
    assert space["optimizer.lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert space["optimizer.weight_decay"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert space["scheduler"] == CategoricalDistribution(["cosine", "onecycle", "constant"])
    assert space["model.d_model"] == CategoricalDistribution([32, 64, 128])  # numbers stay numbers


def test_ranges_intervals_fixed_values_and_the_command_line_over_the_preset():
    space, fixed = parse_search_space(
        ["a=range(1,5)", "b=range(0,1,0.25)", "c=interval(0.1, 0.9)", "d=7", "e=choice(x,y)", "e=z", "d=choice(1,2)"]
    )
    assert space["a"] == IntDistribution(1, 4)  # like Python's range: stop excluded
    assert space["b"] == FloatDistribution(0.0, 0.75, step=0.25)
    assert space["c"] == FloatDistribution(0.1, 0.9)
    assert space["d"] == CategoricalDistribution([1, 2]) and fixed == {"e": "z"}  # the later entry wins
    with pytest.raises(ValueError, match=r"hydra.sweeper.params.g: .*log"):
        parse_search_space(["g=tag(log, interval(0, 1))"])
    with pytest.raises(ValueError, match=r"hydra.sweeper.params.h: .*not a search space"):
        parse_search_space(["h=glob(*)"])


def test_the_direction_follows_the_metric():
    assert direction_for("best_val_loss") == direction_for("final_val_loss") == "minimize"
    assert direction_for("best_val_chord_type_acc") == direction_for("best_val_majmin") == "maximize"
    assert direction_for("wall_time_s") == "minimize"


# --------------------------------------------------------------------------- a stand-in launcher

#: What a stand-in job does: ("complete", [per-epoch values]), ("fail", error) or ("interrupt", None).
Plan = Callable[[int], Any]


class PlayedJobs:
    """``launch`` as Hydra's launchers do, each job played by ``plan(job number)``."""

    def __init__(self, sweep: Path, plan: Plan) -> None:
        self.sweep, self.plan = sweep, plan
        self.launched: List[Dict[str, str]] = []

    def launch(self, job_overrides, initial_job_idx: int) -> List[JobReturn]:
        returns = []
        for number, overrides in enumerate(job_overrides, start=initial_job_idx):
            parsed = {o.get_key_element(): o.value() for o in OverridesParser.create().parse_overrides(list(overrides))}
            self.launched.append(parsed)
            kind, detail = self.plan(number)
            if kind == "interrupt":
                raise KeyboardInterrupt
            ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
            if kind == "fail":
                ret.status, ret.return_value = JobStatus.FAILED, detail
            else:
                ret.return_value = play_epochs(parsed, detail, self.sweep / str(number))
            returns.append(ret)
        return returns


def play_epochs(overrides: Dict[str, Any], values: List[float], folder: Path) -> float:
    """A trial run in miniature: one epoch per value through the real pruning callback."""
    folder.mkdir(parents=True)
    trial = {key.split(".", 1)[1]: overrides[key] for key in overrides if key.startswith("optuna_trial.")}
    callbacks = trial_callbacks(trial, "best_val_loss", folder)
    assert len(callbacks) == 1
    trainer = SimpleNamespace(
        history={key: [] for key in STANDARD_HISTORY},
        best_epoch=0,
        best_val_loss=math.inf,
        monitor="val_loss",
        config=SimpleNamespace(num_epochs=len(values)),
        stopped_early=False,
    )
    for epoch, value in enumerate(values, start=1):
        for key in STANDARD_HISTORY:
            trainer.history[key].append(value)
        if value < trainer.best_val_loss:
            trainer.best_val_loss, trainer.best_epoch = value, epoch
        callbacks[0].on_epoch_end(trainer, epoch, {})
        if trainer.stopped_early:
            break
    return trainer.best_val_loss


def make_sweeper(compose_cfg, tmp_path: Path, plan: Plan, *overrides: str) -> ChordexpOptunaSweeper:
    """The sweeper as Hydra instantiates it from the preset, with the stand-in launcher."""
    cfg = compose_cfg(
        "hparams_search=optuna",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"hydra.sweeper.storage=sqlite:///{tmp_path / 'study.db'}",
        *overrides,
    )
    sweeper = instantiate(cfg.hydra.sweeper)
    sweeper.config, sweeper.launcher = cfg, PlayedJobs(tmp_path / "sweep", plan)
    return sweeper


def stored(tmp_path: Path) -> List[Any]:
    return optuna.load_study(study_name="chordexp", storage=f"sqlite:///{tmp_path / 'study.db'}").trials


# --------------------------------------------------------------------------- outcomes


def test_a_pruned_trial_is_pruned_with_its_folder_and_a_failed_one_ends_nothing(compose_cfg, tmp_path):
    """Threshold pruner (upper 5): job 1 reports 9 at epoch 1 and is stopped there; job 2
    raises (a diverged run); jobs 0 and 3 complete. The study ends with all four told."""
    plan = {
        0: ("complete", [3.0, 2.0, 1.0]),
        1: ("complete", [9.0, 8.0, 7.0]),
        2: ("fail", ValueError("optimized_metric best_val_loss is nan: the run diverged")),
        3: ("complete", [2.5, 1.5, 0.5]),
    }
    sweeper = make_sweeper(
        compose_cfg,
        tmp_path,
        plan.__getitem__,
        "hydra.sweeper.n_trials=4",
        "hydra/sweeper/pruner=threshold",
        "hydra.sweeper.pruner.upper=5.0",
    )
    results = sweeper.sweep(arguments=[])

    trials = stored(tmp_path)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].intermediate_values == {1: 9.0} and trials[1].user_attrs["pruned_at_epoch"] == 1
    assert [t.value for t in trials] == [1.0, 9.0, None, 0.5]  # a pruned trial keeps its last reported value
    assert trials[0].intermediate_values == {1: 3.0, 2: 2.0, 3: 1.0}

    pruned = tmp_path / "sweep" / "1"
    assert yaml.safe_load((pruned / PRUNED_FILE).read_text()) == {
        "trial": 1,
        "epoch": 1,
        "metric": "best_val_loss",
        "value": 9.0,
    }
    assert run_status(pruned) == "pruned" and not (tmp_path / "sweep" / "0" / PRUNED_FILE).exists()

    assert results["best_trial"] == 3 and results["best_value"] == 0.5
    assert results["trials"] == {"complete": 2, "pruned": 1, "fail": 1}
    on_disk = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert on_disk["best_params"] == trials[3].params and on_disk["direction"] == "minimize"

    launched = sweeper.launcher.launched
    assert [job["optuna_trial.number"] for job in launched] == [0, 1, 2, 3]
    assert launched[0]["optuna_trial.storage"] == f"sqlite:///{tmp_path / 'study.db'}"
    assert all(float(job["optimizer.lr"]) == trial.params["optimizer.lr"] for job, trial in zip(launched, trials))


def test_too_many_failures_stop_the_sweep_below_max_failure_rate_one(compose_cfg, tmp_path):
    sweeper = make_sweeper(
        compose_cfg,
        tmp_path,
        lambda number: ("fail", ValueError("bad")),
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.max_failure_rate=0.5",
    )
    with pytest.raises(SystemExit, match="^error: 1 of 1 trials failed"):
        sweeper.sweep(arguments=[])
    assert [t.state for t in stored(tmp_path)] == [TrialState.FAIL]


def test_a_sweep_in_which_every_trial_failed_is_an_error(compose_cfg, tmp_path):
    sweeper = make_sweeper(
        compose_cfg, tmp_path, lambda number: ("fail", ValueError("bad")), "hydra.sweeper.n_trials=3"
    )
    with pytest.raises(SystemExit, match="^error: every one of the 3 trials failed"):
        sweeper.sweep(arguments=[])
    assert [t.state for t in stored(tmp_path)] == [TrialState.FAIL] * 3
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert results["best_trial"] is None and results["trials"]["fail"] == 3


@pytest.mark.parametrize(
    "overrides, message",
    [
        (("hydra/sweeper/pruner=hyperband", "hydra.sweeper.pruner.min_resource=0"), r"pruner.min_resource=0 must be"),
        (("hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.upper=nan"), r"pruner.upper=nan must be a finite"),
        (("hydra.sweeper.sampler.n_startup_trials=-5",), r"sampler.n_startup_trials=-5 must be an integer >= 0"),
    ],
)
def test_sampler_and_pruner_values_optuna_would_choke_on_stop_before_any_trial(
    compose_cfg, tmp_path, capsys, overrides, message
):
    sweeper = make_sweeper(compose_cfg, tmp_path, lambda number: ("complete", [1.0]), *overrides)
    assert bad_setting(sweeper, capsys, message)
    assert sweeper.launcher.launched == []


def bad_setting(sweeper, capsys, pattern: str) -> bool:
    """The sweep stops with one line on stderr matching ``pattern`` and exit status 2."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        sweeper.sweep(arguments=[])
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and len(err.splitlines()) == 1 and re.search(pattern, err), err
    return True


@pytest.mark.parametrize(
    "storage, pattern",
    [
        ("foo://bar", r"storage=foo://bar: not a database URL"),
        ("sqlite:////missing/dir/x.db", r"the folder /missing/dir does not exist"),
        ("NOTES", r"is not an SQLite database"),
        ("postgresql://u@127.0.0.1:9/db", r"storage=postgresql://u@127.0.0.1:9/db: cannot open the study there"),
    ],
)
def test_a_storage_that_cannot_work_is_one_line_and_exit_2(compose_cfg, tmp_path, capsys, storage, pattern):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes, not a database\n")
    storage = f"sqlite:///{notes}" if storage == "NOTES" else storage
    sweeper = make_sweeper(
        compose_cfg, tmp_path, lambda number: ("complete", [1.0]), f"hydra.sweeper.storage='{storage}'"
    )
    assert bad_setting(sweeper, capsys, pattern)
    assert notes.read_text() == "my notes, not a database\n" and sweeper.launcher.launched == []


def test_a_killed_study_resumes_from_its_storage(compose_cfg, tmp_path):
    """The same command three times on one storage, n_trials=5. First: trials 0, 1
    complete, Ctrl-C during trial 2 (KeyboardInterrupt out of the launcher: 2 is FAIL, its
    parameters queued). Second: the retry of 2 runs (3), then the process dies during 4
    (as by kill -9: 4 stays RUNNING). Third: 4 is FAIL, its retry (5) and one new trial
    (6) run: five trials count, and a fourth command has nothing left to do."""

    class Killed(BaseException):
        """Stands in for kill -9: nothing of the sweeper runs after it."""

    def first(number: int) -> Any:
        return ("interrupt", None) if number == 2 else ("complete", [1.0 + number])

    def second(number: int) -> Any:
        if number == 4:
            raise Killed
        return ("complete", [0.5])

    for plan, error in ((first, KeyboardInterrupt), (second, Killed)):
        with pytest.raises(error):
            make_sweeper(compose_cfg, tmp_path, plan, "hydra.sweeper.n_trials=5").sweep(arguments=[])
    assert stored(tmp_path)[4].state == TrialState.RUNNING

    third = make_sweeper(compose_cfg, tmp_path, lambda number: ("complete", [0.1 * number]), "hydra.sweeper.n_trials=5")
    results = third.sweep(arguments=[])

    trials = stored(tmp_path)
    Done, Fail = TrialState.COMPLETE, TrialState.FAIL
    assert [t.state for t in trials] == [Done, Done, Fail, Done, Fail, Done, Done]
    assert {t.number: t.user_attrs.get(RETRY_ATTR) for t in trials if RETRY_ATTR in t.user_attrs} == {3: 2, 5: 4}
    assert trials[3].params == trials[2].params and trials[5].params == trials[4].params
    assert trials[6].params not in [t.params for t in trials[:6]]  # reseeded: not the first command's draws again
    assert [job["optuna_trial.number"] for job in third.launcher.launched] == [5, 6]
    assert results["trials"] == {"complete": 5, "pruned": 0, "fail": 2} and results["best_value"] == 0.5

    done = make_sweeper(
        compose_cfg, tmp_path, lambda number: pytest.fail("no trial is left to run"), "hydra.sweeper.n_trials=5"
    )
    done.sweep(arguments=[])
    assert len(stored(tmp_path)) == 7


def test_a_study_made_for_the_other_direction_is_refused(compose_cfg, tmp_path, capsys):
    make_sweeper(compose_cfg, tmp_path, lambda n: ("complete", [1.0]), "hydra.sweeper.n_trials=1").sweep(arguments=[])
    sweeper = make_sweeper(
        compose_cfg,
        tmp_path,
        lambda n: ("complete", [1.0]),
        "hydra.sweeper.n_trials=1",
        "optimized_metric=best_val_chord_type_acc",
    )
    assert bad_setting(sweeper, capsys, "^error: hydra.sweeper.direction: .* was made to minimize, not maximize")


def test_resuming_a_study_with_another_search_space_is_one_line_and_leaves_nothing_running(
    compose_cfg, tmp_path, capsys
):
    first = make_sweeper(compose_cfg, tmp_path, lambda n: ("complete", [1.0]), "hydra.sweeper.n_trials=1")
    first.sweep(arguments=["scheduler=choice(cosine,onecycle)"])
    again = make_sweeper(compose_cfg, tmp_path / "2", lambda n: ("complete", [1.0]), "hydra.sweeper.n_trials=2")
    again.config.hydra.sweeper.storage = first.config.hydra.sweeper.storage
    again.storage = first.storage
    assert bad_setting(again, capsys, r"^error: hydra.sweeper.params: the search space differs from the one study")
    assert all(t.state != TrialState.RUNNING for t in stored(tmp_path))


@pytest.mark.parametrize(
    "space, pattern",
    [
        ("optimizer.lrr=interval(0.0001,0.01)", r"Could not override 'optimizer\.lrr'\. \(Key 'lrr' not in"),
        ("model.d_model=choice(big,small)", r"Error merging override model\.d_model=big \(Value 'big'"),
    ],
)
def test_a_search_space_that_does_not_compose_stops_before_the_first_trial(tmp_path, space, pattern):
    """A misspelt key or a value of the wrong type: one line and exit 2 before the study
    opens, instead of trial 0 failing and staying RUNNING in the study."""
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chordexp.run",
            "-m",
            "hparams_search=optuna",
            "experiment=smoke",
            space,
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            f"hydra.sweeper.storage=sqlite:///{tmp_path / 'study.db'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1, proc.stderr
    assert re.search(r"^error: hydra\.sweeper\.params: " + pattern, err[0]) and "nothing was run" in err[0], err[0]
    assert not (tmp_path / "study.db").exists() and not (tmp_path / "sweep").exists()
