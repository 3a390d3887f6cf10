"""The Optuna search preset (``hparams_search=optuna``), the SLURM launcher preset and
failing jobs in sweeps: composition, and real searches through the command line."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override
from hydra.types import RunMode
from hydra.utils import instantiate
from test_run import check_run_folder

from chordexp.experiment.optuna_trial import PRUNED_FILE, direction_for
from chordexp.experiment.resources import parallel_jobs
from chordexp.experiment.run_folder import METRIC_KEYS
from chordexp.experiment.schemas import to_training_config
from chordexp.report import collect_runs

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
SEARCHED = {"optimizer.lr", "optimizer.weight_decay", "scheduler", "model.d_model"}
DIVERGING_LR = 1e30  # AdamW steps of 1e30: the training loss is NaN within the first epoch
STUDY = "chordexp"  # hydra.sweeper.study_name of the preset


def search_space(cfg) -> Dict[str, Override]:
    """``hydra.sweeper.params`` parsed as Hydra parses them for the sweeper."""
    parser = OverridesParser.create()
    return {key: parser.parse_override(f"{key}={value}") for key, value in cfg.hydra.sweeper.params.items()}


def choices(override: Override) -> List[Any]:
    assert isinstance(override.value(), ChoiceSweep), override
    return list(override.value().list)


def trials_of(db: Path) -> List[Any]:
    """Every trial of the preset's study stored in the SQLite file ``db``."""
    import optuna

    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{db}").trials


def overrides_of(folder: Path) -> Dict[str, str]:
    return dict(item.split("=", 1) for item in yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text()))


def check_trial_matches_its_folder(trial: Any, folder: Path) -> None:
    """The job folder numbered like the trial ran the trial's parameters."""
    overrides = overrides_of(folder)
    for name, value in trial.params.items():
        given = overrides[name]
        assert (float(given) == pytest.approx(value)) if isinstance(value, float) else given == str(value), name


# --------------------------------------------------------------------------- composing


def test_preset_is_a_seeded_tpe_search_of_lr_weight_decay_scheduler_and_width(compose_cfg):
    cfg = compose_cfg("hparams_search=optuna")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.chordexp_optuna_sweeper.sweeper.ChordexpOptunaSweeper"
    assert cfg.hydra.runtime.choices.hparams_search == "optuna" and cfg.hydra.mode == RunMode.MULTIRUN
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.sampler.seed == cfg.seed == 0
    assert compose_cfg("hparams_search=optuna", "seed=7").hydra.sweeper.sampler.seed == 7
    assert sweeper.pruner._target_ == "optuna.pruners.MedianPruner"
    assert cfg.optimized_metric in METRIC_KEYS
    assert sweeper.direction is None and direction_for(cfg.optimized_metric) == "minimize"  # follows the metric
    assert sweeper.n_trials >= 8 and sweeper.max_failure_rate == 1.0  # a failed trial ends nothing
    for group, option, target in (
        ("sampler", "cmaes", "optuna.samplers.CmaEsSampler"),
        ("sampler", "random", "optuna.samplers.RandomSampler"),
        ("pruner", "hyperband", "optuna.pruners.HyperbandPruner"),
        ("pruner", "successive_halving", "optuna.pruners.SuccessiveHalvingPruner"),
        ("pruner", "none", "optuna.pruners.NopPruner"),
    ):
        other = compose_cfg("hparams_search=optuna", f"hydra/sweeper/{group}={option}", "seed=3")
        node = instantiate(other.hydra.sweeper[group])
        assert type(node).__name__ == target.rsplit(".", 1)[1] and type(node).__module__.startswith("optuna.")
    assert (
        compose_cfg(
            "hparams_search=optuna", "trainer.num_epochs=9", "hydra/sweeper/pruner=hyperband"
        ).hydra.sweeper.pruner.max_resource
        == 9
    )

    space = search_space(cfg)
    assert set(space) == SEARCHED
    for key in ("optimizer.lr", "optimizer.weight_decay"):
        interval = space[key].value()
        assert isinstance(interval, IntervalSweep) and "log" in interval.tags, key
        assert 0 < interval.start < interval.end <= 0.1, key
    assert set(choices(space["scheduler"])) == {p.stem for p in (CONF_DIR / "scheduler").glob("*.yaml")}
    assert len(choices(space["model.d_model"])) >= 2
    assert compose_cfg().hydra.sweeper._target_.endswith("BasicSweeper")  # only with the preset


@pytest.mark.parametrize("model", sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml")))
def test_every_point_of_the_search_space_is_a_valid_run(compose_cfg, model):
    """Every choice, with the intervals' corners: each composes, validates and builds its
    model (d_model must divide by the option's num_heads), so no trial fails on its config."""
    from hydra.utils import instantiate

    space = search_space(compose_cfg("hparams_search=optuna"))
    lr, wd = space["optimizer.lr"].value(), space["optimizer.weight_decay"].value()
    corners = [(lr.start, wd.end), (lr.end, wd.start)]
    points = [(s, d) for s in choices(space["scheduler"]) for d in choices(space["model.d_model"])]
    for i, (scheduler, d_model) in enumerate(points):
        corner = corners[i % 2]
        cfg = compose_cfg(
            "experiment=smoke",
            f"model={model}",
            "hparams_search=optuna",
            f"scheduler={scheduler}",
            f"model.d_model={d_model}",
            f"optimizer.lr={corner[0]}",
            f"optimizer.weight_decay={corner[1]}",
        )
        config = to_training_config(cfg)
        assert (config.scheduler, config.learning_rate, config.weight_decay) == (scheduler, *corner)
        assert cfg.model.d_model % cfg.model.num_heads == 0, (model, d_model)
        assert instantiate(cfg.model).norm.normalized_shape == (d_model,)


def test_slurm_preset_composes_the_submitit_slurm_launcher(compose_cfg):
    cfg = compose_cfg(
        "hparams_search=optuna", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.sweeper.n_jobs=8"
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert cfg.hydra.runtime.choices["hydra/launcher"] == "slurm"
    assert (launcher.timeout_min, launcher.cpus_per_task, launcher.mem_gb, launcher.nodes) == (120, 8, 16, 1)
    assert launcher.gpus_per_node is None and launcher.partition == "gpu" and launcher.array_parallelism == 16
    assert launcher.submitit_folder == f"{cfg.hydra.sweep.dir}/.submitit/%j"
    assert cfg.hydra.sweeper.n_jobs == 8  # eight trials per submitted array
    assert compose_cfg("hydra/launcher=slurm").hydra.launcher.partition is None  # composes without site values


class Submitted(Exception):
    """Raised by the stand-in for submitit's ``map_array``: the jobs would go to sbatch now."""


def test_slurm_launcher_turns_a_sweep_into_one_sbatch_array(compose_cfg, tmp_path, monkeypatch):
    """Hydra's SlurmLauncher.launch with the preset, up to the submission: submitit accepts
    every parameter (it checks them against sbatch's) and gets one array of the sweep's jobs."""
    import submitit
    from hydra.utils import instantiate

    fake_srun = tmp_path / "bin" / "srun"  # submitit's SLURM executor wants srun on PATH
    fake_srun.parent.mkdir()
    fake_srun.write_text("#!/bin/sh\nexit 0\n")
    fake_srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_srun.parent}{os.pathsep}{os.environ['PATH']}")
    captured: Dict[str, Any] = {}

    def map_array(executor, function, *iterables):
        captured.update(executor=executor, function=function, jobs=list(zip(*iterables)))
        raise Submitted

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", map_array)
    sweep = tmp_path / "sweep"
    cfg = compose_cfg(
        "experiment=smoke",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.account=acme",
        f"hydra.sweep.dir={sweep}",
    )
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    with pytest.raises(Submitted):
        launcher.launch([["optimizer.lr=1e-3"], ["optimizer.lr=1e-2"]], initial_job_idx=0)

    executor = captured["executor"]._executor
    assert type(executor).__name__ == "SlurmExecutor" and executor.folder == sweep / ".submitit" / "%j"
    assert executor.max_num_timeout == 0
    assert {
        k: executor.parameters[k]
        for k in (
            "time",
            "cpus_per_task",
            "mem",
            "partition",
            "account",
            "job_name",
            "nodes",
            "ntasks_per_node",
            "array_parallelism",
        )
    } == {
        "time": 120,
        "cpus_per_task": 8,
        "mem": "16GB",
        "partition": "gpu",
        "account": "acme",
        "job_name": "run",
        "nodes": 1,
        "ntasks_per_node": 1,
        "array_parallelism": 16,
    }
    assert executor.parameters.get("gpus_per_node") is None
    assert [(job[0], job[2]) for job in captured["jobs"]] == [(["optimizer.lr=1e-3"], 0), (["optimizer.lr=1e-2"], 1)]


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ([], 1),
        (["hydra/launcher=slurm"], 1),  # each SLURM job has its own cores
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], min(2, os.cpu_count() or 1)),
    ],
)
def test_only_joblib_jobs_share_the_machine(compose_cfg, as_job, overrides, expected):
    as_job(compose_cfg(*overrides))
    assert parallel_jobs() == expected


# --------------------------------------------------------------------------- running


def test_optuna_search_prunes_a_trial_keeps_its_folder_and_goes_on_after_a_failed_one(run_cli, tmp_path):
    """Three small trials, random sampler, lr drawn from {1e-3, 1e30}, a threshold pruner
    that stops any trial above 0 after its first epoch. The 1e-3 trials are PRUNED with
    their run folder kept (one epoch, metrics.json, pruned.json; ``pruned`` in the report);
    the 1e30 trial's loss turns NaN, it is FAIL, and the study runs the next trial."""
    sweep, db = tmp_path / "sweep", tmp_path / "study.db"
    done = run_cli(
        [
            "hparams_search=optuna",
            "experiment=smoke",
            "hydra.sweeper.n_trials=3",
            "hydra/sweeper/sampler=random",
            "hydra.sweeper.sampler.seed=3",  # draws 1e-3, 1e30, 1e-3
            "hydra/sweeper/pruner=threshold",
            "hydra.sweeper.pruner.upper=0.0",
            "data.train_size=16",
            "trainer.num_epochs=2",
            f"optimizer.lr=choice(1e-3,{DIVERGING_LR})",
            f"hydra.sweep.dir={sweep}",
            f"hydra.sweeper.storage=sqlite:///{db}",
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trial 1 failed (NonFiniteLossError" in done.stdout + done.stderr

    trials = trials_of(db)
    assert [t.number for t in trials] == [0, 1, 2]
    assert [t.state.name for t in trials] == ["PRUNED", "FAIL", "PRUNED"], "the seed no longer draws 1e-3, 1e30, 1e-3"
    assert [t.params["optimizer.lr"] for t in trials] == [1e-3, DIVERGING_LR, 1e-3]
    assert set(trials[0].params) == SEARCHED

    statuses = {row["path"]: row["status"] for row in collect_runs(sweep)}
    assert statuses == {"0": "pruned", "1": "failed", "2": "pruned"}
    for trial in trials:
        folder = sweep / str(trial.number)
        check_trial_matches_its_folder(trial, folder)
        assert overrides_of(folder)["optuna_trial.number"] == str(trial.number)
        if trial.state.name == "FAIL":
            assert not (folder / "metrics.json").exists() and trial.value is None
            assert "NonFiniteLossError" in (folder / "run.log").read_text()
            continue
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["epochs_run"] == 1 and (folder / "checkpoints" / "best.pt").is_file()
        assert trial.intermediate_values == {1: pytest.approx(metrics["best_val_loss"])}
        assert trial.value == pytest.approx(metrics["best_val_loss"])  # a pruned trial keeps its last value
        assert json.loads((folder / PRUNED_FILE).read_text())["epoch"] == 1
        assert "trial %d pruned after epoch 1" % trial.number in (folder / "run.log").read_text()

    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["trials"] == {"complete": 0, "pruned": 2, "fail": 1} and results["best_value"] is None


def test_failed_job_of_a_parallel_sweep_keeps_the_others_and_reports_failed(run_cli, tmp_path):
    """Two jobs at once (joblib); the second diverges. The first keeps its complete folder,
    Hydra reports the failure after both ran, and the report lists the run as failed."""
    sweep = tmp_path / "sweep"
    done = run_cli(
        [
            "-m",
            "experiment=smoke",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "data.train_size=16",
            "trainer.num_epochs=2",
            f"optimizer.lr=1e-3,{DIVERGING_LR}",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
    )
    assert done.returncode != 0 and "NonFiniteLossError" in done.stderr
    check_run_folder(sweep / "0", num_epochs=2, save_every=2)
    failed = sweep / "1"
    assert not (failed / "metrics.json").exists() and (failed / "environment.json").is_file()
    assert "run failed" in (failed / "run.log").read_text()

    from test_report import report_cli

    report = report_cli(f"runs={sweep}", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    rows = {line.split()[0]: line.split() for line in report.stdout.splitlines()[2:4]}
    assert rows["0"][2] == "finished" and float(rows["0"][1]) == 1e-3
    assert rows["1"][2] == "failed" and float(rows["1"][1]) == DIVERGING_LR


@pytest.mark.slow
def test_eight_trial_search_on_smoke_names_the_best_trial(run_cli, tmp_path):
    """The preset as shipped, 8 trials of ``experiment=smoke``: every trial a complete run
    (or one the median pruner stopped), the best one named in optimization_results.yaml."""
    sweep, db = tmp_path / "sweep", tmp_path / "study.db"
    done = run_cli(
        [
            "hparams_search=optuna",
            "experiment=smoke",
            "hydra.sweeper.n_trials=8",
            f"hydra.sweep.dir={sweep}",
            f"hydra.sweeper.storage=sqlite:///{db}",
        ],
        cwd=tmp_path,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    trials = trials_of(db)
    assert len(trials) == 8 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert sum(t.state.name == "COMPLETE" for t in trials) >= 5  # the pruner waits for 5 finished trials
    for trial in trials:
        assert 1e-4 <= trial.params["optimizer.lr"] <= 1e-2 and 1e-4 <= trial.params["optimizer.weight_decay"] <= 0.1
        check_trial_matches_its_folder(trial, sweep / str(trial.number))
        metrics = json.loads((sweep / str(trial.number) / "metrics.json").read_text())
        assert math.isfinite(trial.value) and trial.value == pytest.approx(metrics["best_val_loss"])
    best = min((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_params"] == best.params and results["best_value"] == pytest.approx(best.value)
    assert len({t.params["scheduler"] for t in trials}) > 1  # the search moves through the space
