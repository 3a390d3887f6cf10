"""The hand-written PyTorch loop the Trainer is measured against, and the in-memory
batches both of them eat.

Nothing here but what a training step needs: forward, loss, backward, gradient
clipping, optimizer step and scheduler step. Anything the Trainer does beyond this
(validation, checkpoints, history, logging, metrics) is its overhead.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from chordexp.data import SyntheticChordDataset

Batch = Tuple[Tensor, Dict[str, Tensor]]


def synthetic_batches(count: int, batch_size: int, seed: int = 0) -> List[Batch]:
    """``count`` collated batches of default 1-s clips (the fast 'plain' generator;
    the cost of a step does not depend on what the audio sounds like)."""
    dataset = SyntheticChordDataset(count * batch_size, split="test", seed=seed, realism="plain")
    batches = []
    for b in range(count):
        items = [dataset[b * batch_size + i] for i in range(batch_size)]
        audio = torch.stack([audio for audio, _ in items])
        targets = {key: torch.stack([t[key] for _, t in items]) for key in items[0][1]}
        batches.append((audio, targets))
    return batches


def plain_step(
    model: nn.Module, criterion: nn.Module, optimizer: Optimizer, batch: Batch, gradient_clip: float
) -> Tensor:
    """One training step; returns the (detached) total loss."""
    audio, targets = batch
    losses = criterion(model(audio), targets)
    optimizer.zero_grad(set_to_none=True)
    losses["total_loss"].backward()
    if gradient_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), gradient_clip)
    optimizer.step()
    return losses["total_loss"].detach()


def plain_train(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: Optimizer,
    scheduler: LRScheduler,
    per_batch: bool,
    batches: List[Batch],
    epochs: int,
    gradient_clip: float,
) -> None:
    """``epochs`` passes over ``batches``, stepping ``scheduler`` per batch or per epoch."""
    model.train()
    for _ in range(epochs):
        for batch in batches:
            plain_step(model, criterion, optimizer, batch, gradient_clip)
            if per_batch:
                scheduler.step()
        if not per_batch:
            scheduler.step()
