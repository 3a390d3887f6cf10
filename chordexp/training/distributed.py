"""Data-parallel training with ``torch.distributed`` (DDP), launched by ``torchrun``.

Why it is built this way:

- **One global batch.** ``batch_size`` is the global batch: each of the ``world_size``
  processes takes ``batch_size / world_size`` items of it. The samplers (``chordexp.data.samplers``) draw the
  same permutation a single process would (same generator, same seed) and give rank
  ``r`` the positions ``r, r + W, r + 2W, ...``, so global batch ``k`` holds the same
  items as batch ``k`` of a single-process run; gradients are averaged by DDP.
- **Batch statistics of the global batch.** The model's BatchNorm layers normalise with
  statistics over all processes' items (``SyncBatchNorm`` on GPUs; on CPU, where
  SyncBatchNorm does not run, :class:`GlobalBatchNorm2d`), so a 2-process run computes
  what a 1-process run with the same global batch computes, up to float rounding.
- **Agreement.** Metrics are summed over processes, so every rank sees the global
  history and takes the same early-stopping decision; a stop request (a signal on any
  rank) is agreed on every batch, so all ranks stop at the same point.

Without ``torchrun`` (no ``WORLD_SIZE`` > 1 in the environment) nothing here is used.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Callable, List, Optional, Tuple, cast

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from chordexp.model.loss import ChordRecognitionLoss

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DistContext:
    """Where this process stands in a distributed run (rank 0 writes the run folder)."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when ``torchrun`` (or another launcher) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env() -> Optional[DistContext]:
    """Join the process group ``torchrun`` describes in the environment (None when not
    launched as one of several). The backend is ``gloo`` for CPU tensors and also
    ``nccl`` for CUDA ones where GPUs exist, so CPU-side agreement (the run folder,
    flags) works in both cases."""
    if not launched_by_torchrun():
        return None
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    context = DistContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1"))),
        backend=backend,
    )
    if torch.cuda.is_available():
        torch.cuda.set_device(context.local_rank % torch.cuda.device_count())
    return context


def current_context() -> Optional[DistContext]:
    """The context of an already initialised process group (None when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    return DistContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(dist.get_world_size()))),
        backend=str(dist.get_backend()),
    )


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(value: Any, src: int = 0) -> Any:
    """``value`` of rank ``src`` on every rank (e.g. the run folder rank 0 chose)."""
    box: List[Any] = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def announce_run_folder(folder: Any) -> None:
    """Rank 0 sends its run folder to the other ranks (they wait for it in ``chordexp.run.cli``)."""
    context = current_context()
    if context is not None and context.is_main:
        broadcast_object(str(folder))


def sum_across(tensor: Tensor) -> Tensor:
    """In-place sum over all ranks (metric sums, item counts)."""
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def global_mean_count(world_size: int) -> Callable[[Tensor], Tensor]:
    """The loss's ``reduce_count`` under DDP: this rank's count -> (global count / world
    size), so the gradients DDP averages are those of the global batch's mean, even when
    ranks hold different numbers of chords or valid frames."""

    def reduce(count: Tensor) -> Tensor:
        return sum_across(count.clone()) / world_size

    return reduce


def any_across(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any rank."""
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


# ------------------------------------------------------------------------ batch norm
class _SumAcrossRanks(torch.autograd.Function):
    """All-reduce (sum) with the matching backward: gradients of the sum flow back to
    every rank's contribution."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor, group: Any) -> Tensor:
        ctx.group = group
        out = tensor.clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Any:
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the items of all ranks (CPU-capable
    ``SyncBatchNorm``). Same parameters and buffers as BatchNorm2d, so checkpoints load
    into the plain model; evaluation uses the running statistics as usual."""

    group: Any = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.group is None:
            return super().forward(x)
        dims = (0, 2, 3)
        count = _SumAcrossRanks.apply(x.new_tensor([x.numel() / x.shape[1]]), self.group)
        mean = _SumAcrossRanks.apply(x.sum(dims), self.group) / count
        centred = x - mean[None, :, None, None]
        var = _SumAcrossRanks.apply((centred * centred).sum(dims), self.group) / count
        if self.track_running_stats:
            with torch.no_grad():
                # track_running_stats: BatchNorm2d has all three buffers
                assert self.num_batches_tracked is not None
                assert self.running_mean is not None and self.running_var is not None
                self.num_batches_tracked += 1
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * (count / (count - 1).clamp(min=1))
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.detach(), alpha=factor)
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


def global_batch_norm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with its BatchNorm layers computing global-batch statistics:
    SyncBatchNorm on CUDA, GlobalBatchNorm2d (in place, same state) on CPU."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    group = dist.new_group(backend="gloo")  # its own group: BN collectives never interleave with DDP's
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = GlobalBatchNorm2d
            module.group = group
    return model


def training_modules(
    model: nn.Module, device: torch.device, distributed: Optional[DistContext], compile_forward: bool
) -> Tuple[nn.Module, nn.Module]:
    """``(model, train_model)``: the model on ``device`` (with global-batch BatchNorm under
    DDP), and what the training forward calls: its DDP wrapper under DDP, compiled if
    ``compile_forward``. Checkpoints and validation use ``model``, so they keep the plain names."""
    model = model.to(device)
    train_model = model
    if distributed is not None:
        model = global_batch_norm(model, device)
        device_ids = [device.index] if device.type == "cuda" else None
        train_model = DistributedDataParallel(model, device_ids=device_ids)
    if compile_forward:
        # the compiled wrapper of a module is a module (OptimizedModule); torch's stub says Callable
        train_model = cast(nn.Module, torch.compile(train_model))
    return model, train_model


def training_criterion(
    criterion: Optional[nn.Module], label_smoothing: float, distributed: Optional[DistContext], device: torch.device
) -> nn.Module:
    """``criterion`` on ``device``, by default ``ChordRecognitionLoss(label_smoothing)``. Under
    DDP the loss's means are those of the global batch (its counts summed over ranks)."""
    mean_count = None if distributed is None else global_mean_count(distributed.world_size)
    if criterion is None:
        criterion = ChordRecognitionLoss(
            label_smoothing=label_smoothing, chord_count=mean_count, frame_count=mean_count
        )
    elif (
        mean_count is not None
        and isinstance(criterion, ChordRecognitionLoss)
        and criterion.chord_count is None
        and criterion.frame_count is None
    ):
        criterion = criterion.with_counts(mean_count)  # built without them: a copy that has them
    return criterion.to(device) if isinstance(criterion, nn.Module) else criterion
