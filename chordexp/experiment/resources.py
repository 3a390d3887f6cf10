"""How much of the machine a training job may use: its cores, threads and device.

A sweep's parallel jobs (joblib launcher) and the processes of a DDP run share one
machine; each takes its share instead of all of it, so they do not fight over cores.
"""

from __future__ import annotations

import logging
import os

import torch
from hydra.core.hydra_config import HydraConfig

log = logging.getLogger(__name__)


def available_cpus() -> int:
    """Cores this process may run on (its affinity: a SLURM or container allocation),
    not all the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def parallel_jobs() -> int:
    """How many jobs of this sweep run at once on this machine (joblib launcher), else 1."""
    launcher = HydraConfig.get().launcher
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    n_jobs = int(launcher.get("n_jobs") or -1)
    cpus = available_cpus()
    return cpus if n_jobs < 0 else max(1, min(n_jobs, cpus))


def cpu_budget() -> int:
    """Cores this job may use: all of them, or its share when sweep jobs or the
    processes of a DDP run (``LOCAL_WORLD_SIZE``) share the machine."""
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, available_cpus() // (parallel_jobs() * max(1, processes)))


def set_threads(num_threads: int) -> None:
    """``torch.set_num_threads``: as asked (> 0), else the job's share of the cores, so
    parallel sweep jobs do not fight over them."""
    torch.set_num_threads(num_threads if num_threads > 0 else cpu_budget())
    log.info("torch threads: %d", torch.get_num_threads())


def pin_memory_for(device: str) -> bool:
    """Page-locked batches (with the trainer's non_blocking copies) when training on CUDA."""
    return torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda:")


def rank_device(device: str, local_rank: int) -> str:
    """Under DDP each process of a node takes its own GPU (``cuda:LOCAL_RANK``)."""
    if device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return device
