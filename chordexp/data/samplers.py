"""Samplers that shard each global batch between the processes of a DDP run (see
``chordexp.training.distributed`` for why: every rank draws the permutation a single
process would and takes its share of every batch). Plain torch; no process group needed.
"""

from __future__ import annotations

from typing import Iterator, Sized

import torch
from torch.utils.data import RandomSampler, Sampler


class ShardedRandomSampler(RandomSampler):
    """The permutation ``RandomSampler(data, generator=g)`` draws, rank ``r`` taking
    positions ``r::world_size``. Every rank holds a generator in the same state, so all
    draw the same permutation; the union of the ranks' ``k``-th batches (of
    ``batch / world_size`` items each) is the single-process run's ``k``-th batch. When
    the dataset does not divide evenly, the permutation is padded with its first items
    so every rank takes the same number of steps (as ``DistributedSampler`` does)."""

    def __init__(self, data_source: Sized, generator: torch.Generator, rank: int, world_size: int) -> None:
        super().__init__(data_source, generator=generator)
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[int]:
        order = list(super().__iter__())
        order += order[: (-len(order)) % self.world_size]
        return iter(order[self.rank :: self.world_size])

    def __len__(self) -> int:
        return -(-len(self.data_source) // self.world_size)


class ShardedSequentialSampler(Sampler[int]):
    """Items ``rank, rank + W, ...`` in order: each validation item is seen by exactly
    one rank (metrics are sums, so shards may differ in size by one)."""

    def __init__(self, data_source: Sized, rank: int, world_size: int) -> None:
        self.size, self.rank, self.world_size = len(data_source), rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))
