"""The pieces of a training run built from the ``_target_`` nodes of a composed config:
datasets, loaders, model, loss, optimizer and the experiment trackers.

The order of construction is the order of the random draws (datasets, then a reseed,
then the model): changing it changes the numbers a seed gives.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader, SequentialSampler

from chordexp.config import TrainingConfig
from chordexp.data import InMemoryDataset, build_loaders
from chordexp.experiment.finetune import apply_finetune, settings_of
from chordexp.experiment.resources import cpu_budget, pin_memory_for
from chordexp.experiment.schemas import resolved_dict
from chordexp.experiment.song_mode import build_song_validator, check_frame_grid, decoder_settings
from chordexp.experiment.targets import check_targets
from chordexp.training.distributed import DistContext, global_mean_count


def build_components(
    cfg: DictConfig, config: TrainingConfig, distributed: Optional[DistContext] = None
) -> Dict[str, Any]:
    """The Trainer's arguments, built from the ``_target_`` nodes of ``cfg``.

    The optimizer node is a partial (``optimizer_factory(params)``). ``_convert_="all"``
    hands plain lists and dicts to the components, so no OmegaConf object ends up in a
    checkpoint. Under DDP the loss divides by the global batch's counts (its ``chord_count``
    and ``frame_count``).
    """
    check_targets(cfg)  # only documented components, unless allow_any_target=true
    seed_everything(config.seed)
    train_set, val_set = build_datasets(cfg)
    sequence = bool(cfg.data.get("sequence", False))
    song_validator = decoder = None
    if sequence:
        check_frame_grid(train_set, cfg)
        song_validator = build_song_validator(val_set, cfg)
    num_workers = config.num_workers
    if cfg.data.cache:
        train_set, val_set = cache_in_memory(train_set, val_set, num_workers)
        num_workers = 0
    if sequence:
        decoder = decoder_settings(train_set, cfg)
        if song_validator is not None:
            song_validator.decoder = dict(decoder)
    train_loader, val_loader = build_loaders(
        train_set,
        val_set,
        batch_size=config.batch_size,
        num_workers=num_workers,
        seed=config.seed,
        distributed=distributed,
        pin_memory=pin_memory_for(config.device),
    )
    seed_everything(config.seed)  # model init does not depend on what the datasets drew
    model = instantiate(cfg.model, _convert_="all")
    resuming = bool(cfg.get("resume")) and (Path(config.checkpoint_dir) / "last.pt").is_file()
    optimizer_factory = apply_finetune(
        model, instantiate(cfg.optimizer, _convert_="all"), settings_of(cfg), config.learning_rate, load=not resuming
    )  # a resume loads its last.pt
    mean_count = None if distributed is None else global_mean_count(distributed.world_size)
    loss_counts = {} if mean_count is None else {"chord_count": mean_count, "frame_count": mean_count}
    return {
        "model": model,
        "train_loader": train_loader,
        "val_loader": val_loader,
        "criterion": instantiate(cfg.loss, _convert_="all", **loss_counts),
        "optimizer_factory": optimizer_factory,
        **({"song_validator": song_validator} if song_validator is not None else {}),
        **({"decoder": decoder} if decoder is not None else {}),
    }


def build_datasets(cfg: DictConfig) -> Tuple[Any, Any]:
    """Train and val datasets from ``cfg.data``: same generator, own split and size,
    the run's seed; ``options`` (generator options) are spread into the keywords."""
    dataset = resolved_dict(cfg.data.dataset)
    dataset.update(dataset.pop("options", None) or {})
    train_set, val_set = (
        instantiate(dataset, size=size, split=split, seed=cfg.seed)
        for split, size in (("train", cfg.data.train_size), ("val", cfg.data.val_size))
    )
    return train_set, val_set


def build_loggers(cfg: DictConfig, folder: Path) -> List[Any]:
    """The experiment trackers of ``cfg.logger`` (name -> ``_target_`` node) as Trainer
    callbacks, each given the run folder and the config (without ``logger``) to log.

    Built as partials and called here, so a tracker's own error (its library missing)
    reaches the user as that one line, not wrapped in Hydra's InstantiationException.
    """
    check_targets(cfg)
    params = {key: value for key, value in resolved_dict(cfg).items() if key != "logger"}
    nodes = cfg.get("logger")
    if nodes is None:  # a config saved before the logger group (rerun=/resume= of an older run): as then
        nodes = {"tensorboard": {"_target_": "chordexp.loggers.TensorBoardLogger", "log_dir": "tensorboard"}}
    return [
        instantiate(nodes[name], _partial_=True, _convert_="all")(run_folder=folder, run_config=params)
        for name in nodes
        if nodes[name] is not None
    ]


def cache_in_memory(train_set: Any, val_set: Any, num_workers: int) -> Tuple[Any, Any]:
    """Both datasets rendered once into memory, in ``num_workers`` processes (0: one per
    core of this job's share)."""
    workers = num_workers or cpu_budget()
    return InMemoryDataset(train_set, num_workers=workers), InMemoryDataset(val_set, num_workers=workers)


def whole_val_loader(val_loader: Any, batch_size: int) -> Any:
    """The validation loader over every item (under DDP, rank 0's loader holds a shard)."""
    if isinstance(val_loader.sampler, SequentialSampler):
        return val_loader
    return DataLoader(val_loader.dataset, batch_size=batch_size)


def seed_everything(seed: int) -> None:
    """Python's, numpy's and torch's global generators from one seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
