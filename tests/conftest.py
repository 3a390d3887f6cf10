"""Shared fixtures: composed Hydra configs that write nowhere but ``tmp_path``.

``compose_cfg(*overrides)`` composes ``conf/config.yaml`` as ``python -m chordexp.run``
would (with the ``hydra`` node) and leaves no Hydra global state behind. ``as_job(cfg)``
gives a copy whose run folder is ``tmp_path``, installed as the current HydraConfig, so
``chordexp.experiment.task.train`` can run in-process; ``smoke_cfg`` is ``experiment=smoke`` so.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, List

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from chordexp.experiment.schemas import register_configs

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"


@pytest.fixture(autouse=True, scope="session")
def _audio_cache_in_a_temporary_folder(tmp_path_factory):
    """data=folder runs cache decoded audio (``data.cache_dir=auto``): in the tests, under
    the session's temporary folder, never the user's ~/.cache (subprocesses inherit it)."""
    before = os.environ.get("CHORDEXP_CACHE")
    os.environ["CHORDEXP_CACHE"] = str(tmp_path_factory.mktemp("audio-cache"))
    yield
    if before is None:
        os.environ.pop("CHORDEXP_CACHE", None)
    else:
        os.environ["CHORDEXP_CACHE"] = before


def _compose(*overrides: str, config_dir: Path = CONF_DIR) -> DictConfig:
    """Compose ``config_dir/config.yaml`` with ``overrides``; Hydra's global state is cleared after."""
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(config_dir)):
            return compose("config", overrides=list(overrides), return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def _run_cli(args: List[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m chordexp.run ARGS`` in a subprocess started in ``cwd``, two torch threads."""
    env = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", "chordexp.run", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def one_torch_thread():
    """The machine is shared: one torch thread for the test, restored after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def compose_cfg() -> Callable[..., DictConfig]:
    """``compose_cfg(*overrides, config_dir=conf/)``: a freshly composed root config."""
    return _compose


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli(args, cwd)``: the real command line in a subprocess."""
    return _run_cli


@pytest.fixture
def as_job(tmp_path: Path):
    """``as_job(cfg)``: a copy of ``cfg`` that runs as a Hydra job with its folder at ``tmp_path``."""

    def install(cfg: DictConfig) -> DictConfig:
        cfg = copy.deepcopy(cfg)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(tmp_path)
            cfg.hydra.job.name = "run"
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield install
    HydraConfig.instance().cfg = None
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def smoke_cfg_global() -> DictConfig:
    return _compose("experiment=smoke")


@pytest.fixture
def smoke_cfg(smoke_cfg_global: DictConfig, as_job) -> DictConfig:
    """``experiment=smoke``, composed once per session, copied per test, run folder ``tmp_path``."""
    return as_job(smoke_cfg_global)
