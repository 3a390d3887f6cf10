"""Train and validation DataLoaders with a reproducible order.

The shuffle order comes from its own ``torch.Generator`` seeded from ``seed``, so it is
the same for any ``num_workers`` (a DataLoader also draws worker seeds from its
generator, and persistent workers draw them only once). Datasets here seed themselves
per item, so worker seeds do not change the data.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any, Dict, Optional, Protocol, Sized, Tuple, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler

from chordexp.data.samplers import ShardedRandomSampler, ShardedSequentialSampler
from chordexp.errors import ConfigValueError


class Shard(Protocol):
    """What the loaders need of a DDP run (``chordexp.training.distributed.DistContext``)."""

    @property
    def rank(self) -> int: ...

    @property
    def world_size(self) -> int: ...


def build_loaders(
    train_dataset: Dataset,
    val_dataset: Dataset,
    batch_size: int,
    num_workers: int = 0,
    seed: int = 0,
    pin_memory: bool = False,
    distributed: Optional[Shard] = None,
) -> Tuple[DataLoader, DataLoader]:
    """``(train_loader, val_loader)``: train shuffled (a new order each epoch, fixed by
    ``seed``), val in order; batches are ``(audio (B, num_samples), {key: (B,)})``.

    Under DDP (``distributed``), ``batch_size`` is the global batch: this rank's loaders
    give it ``batch_size / world_size`` items of each global batch (see
    ``chordexp.training.distributed``)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ConfigValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
        raise ConfigValueError(f"num_workers must be a non-negative integer, got {num_workers!r}")
    # the datasets are map-style, so sized (torch's Dataset type does not declare __len__)
    train_items, val_items = cast(Sized, train_dataset), cast(Sized, val_dataset)
    shuffle_gen = torch.Generator().manual_seed(int(seed))
    worker_gen = torch.Generator().manual_seed(int(seed) + 1)
    if distributed is None:
        train_sampler: Sampler = RandomSampler(train_items, generator=shuffle_gen)
        val_sampler: Sampler = SequentialSampler(val_items)
    else:
        world, rank = distributed.world_size, distributed.rank
        if batch_size % world:
            raise ConfigValueError(
                f"batch_size={batch_size} is the global batch and must divide by the {world} processes of this run"
            )
        batch_size //= world
        train_sampler = ShardedRandomSampler(train_items, shuffle_gen, rank, world)
        val_sampler = ShardedSequentialSampler(val_items, rank, world)
    common: Dict[str, Any] = dict(
        batch_size=int(batch_size),
        num_workers=int(num_workers),
        multiprocessing_context=worker_context() if num_workers > 0 else None,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        worker_init_fn=single_thread_worker if num_workers > 0 else None,
    )
    train = DataLoader(train_dataset, sampler=train_sampler, drop_last=False, generator=worker_gen, **common)
    val = DataLoader(val_dataset, sampler=val_sampler, drop_last=False, **common)
    return train, val


def worker_context() -> Optional[str]:
    """Start DataLoader workers by fork where the platform has it, whatever the process's
    default: inside a joblib (loky) sweep job the default context cannot start them."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else None


def single_thread_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: one thread per worker for torch and numpy's BLAS,
    so workers do not oversubscribe the cores the training process uses."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it, numpy's BLAS pool keeps its size (idle here)
        return
    threadpool_limits(1)
