"""The main job's defaults in clip mode (``data=synthetic``), composed from ``conf/``
exactly as ``python -m chordexp.run data=synthetic`` composes them, so the benchmarks
measure the model, loss, optimizer and schedule that training really uses (the YAML
defaults differ from the Python ones, e.g. dropout). The figures and baselines of the
benchmark table are defined on 1-s clips; song mode (the default run) has none yet.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from chordexp.config import TrainingConfig
from chordexp.experiment.conf_dir import CONF_DIR
from chordexp.experiment.schemas import register_configs, to_training_config

#: what every benchmark composes first: the clip task its figures are defined on
CLIP_MODE = ("data=synthetic",)


def compose_default(*overrides: str, clip_mode: bool = True) -> Any:
    """The composed root config of the default run, with ``overrides`` (in clip mode
    unless ``clip_mode=False``: the song-mode benchmark); Hydra's global state is cleared
    afterwards."""
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
            return compose("config", overrides=[*(CLIP_MODE if clip_mode else ()), *overrides])
    finally:
        GlobalHydra.instance().clear()


def default_components(*overrides: str) -> Tuple[TrainingConfig, Dict[str, Any]]:
    """``(training config, {model, criterion, optimizer_factory})`` of the default run;
    the model is built after ``torch.manual_seed(config.seed)`` as the run does."""
    cfg = compose_default(*overrides)
    config = to_training_config(cfg)
    torch.manual_seed(config.seed)
    return config, {
        "model": instantiate(cfg.model, _convert_="all"),
        "criterion": instantiate(cfg.loss, _convert_="all"),
        "optimizer_factory": instantiate(cfg.optimizer, _convert_="all"),
    }


def default_batch_size() -> int:
    return int(compose_default().data.batch_size)
