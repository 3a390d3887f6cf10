"""A multirun (``-m``) through the real command line leaves one complete folder per job."""

from __future__ import annotations

import json

import yaml
from omegaconf import OmegaConf
from test_run import check_run_folder


def test_two_job_sweep_leaves_a_complete_folder_per_job(run_cli, tmp_path):
    sweep = tmp_path / "sweep"
    done = run_cli(["-m", "experiment=smoke", "optimizer=adamw,sgd", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (sweep / "multirun.yaml").is_file()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]

    for job, (option, target) in enumerate([("adamw", "torch.optim.AdamW"), ("sgd", "torch.optim.SGD")]):
        folder = sweep / str(job)
        metrics = check_run_folder(folder, num_epochs=3, save_every=2)
        assert yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text()) == [
            "experiment=smoke",
            f"optimizer={option}",
        ]
        config = OmegaConf.load(folder / ".hydra" / "config.yaml")
        assert config.optimizer._target_ == target
        assert OmegaConf.load(folder / "resolved_config.yaml").optimizer._target_ == target
        assert json.loads((folder / "metrics.json").read_text()) == metrics
    assert not (tmp_path / "outputs").exists()  # nothing went to the default location


def test_joblib_launcher_runs_jobs_in_parallel_with_a_share_of_the_cores_each(run_cli, tmp_path):
    import os

    sweep = tmp_path / "sweep"
    done = run_cli(
        [
            "-m",
            "experiment=smoke",
            "optimizer=adamw,sgd",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    threads = max(1, (os.cpu_count() or 1) // 2)
    for job in ("0", "1"):
        check_run_folder(sweep / job, num_epochs=3, save_every=2)
        assert f"torch threads: {threads}" in (sweep / job / "run.log").read_text()
    assert yaml.safe_load((sweep / "multirun.yaml").read_text())["hydra"]["launcher"]["n_jobs"] == 2
