"""``environment.json``: how and where a run was made, and what differs from the run it
redoes or resumes (versions, git state, device, command line, host)."""

from __future__ import annotations

import logging
import os
import platform
import shlex
import socket
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, cast

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from chordexp.experiment import run_folder
from chordexp.experiment.rerun import saved_run_folder
from chordexp.experiment.run_lock import typed_argv
from chordexp.training.distributed import DistContext

log = logging.getLogger(__name__)


def record_environment(
    folder: Path,
    *,
    seed: int,
    device: str,
    resume: bool,
    distributed: Optional[DistContext] = None,
    init_from: Optional[str] = None,
) -> Dict[str, Any]:
    """Write ``environment.json`` (and ``git_diff.patch`` for uncommitted code), warning
    about every difference from the environment of the run this one redoes or resumes.
    A resumed run keeps its original record and appends one per resume."""
    record = environment_record(seed=seed, device=device)
    record["distributed"] = (
        None if distributed is None else {"world_size": distributed.world_size, "backend": distributed.backend}
    )
    if init_from:  # finetune.init_from: the weights this run started from
        record["init_from"] = str(Path(init_from).expanduser().resolve())
    source = folder if resume else saved_run_folder(primary_config_dir())
    recorded = run_folder.read_json(source / "environment.json") if source else None
    if recorded is not None:
        for line in run_folder.environment_differences(recorded, record):
            log.warning("environment differs from %s: %s", source, line)
    if resume and recorded is not None:
        resumes = list(recorded.get("resumes", []))
        diff = run_folder.save_git_diff(record, folder / f"git_diff.resume_{len(resumes) + 1}.patch")
        resumes.append(dict(record, git_diff=diff.name if diff else None))
        run_folder.write_json(folder / "environment.json", dict(recorded, resumes=resumes))
    else:
        diff = run_folder.save_git_diff(record, folder / "git_diff.patch")
        record["git_diff"] = diff.name if diff else None
        if source is not None and not resume:
            record["rerun_of"] = str(source)
        run_folder.write_json(folder / "environment.json", record)
    return record


def environment_record(*, seed: int, device: str, argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """What is needed to tell how and where a run was made."""
    if argv is None:  # the command as typed, without the run folder chordexp.experiment.run_lock pinned for Hydra
        argv = typed_argv()
    argv = list(argv)
    return {
        "versions": run_folder.package_versions(),
        "git": run_folder.git_state(Path(__file__).resolve().parent),
        "seed": seed,
        "device": device,
        "cuda_device": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
        "torch_threads": torch.get_num_threads(),
        "command": shlex.join(command_line(argv)),
        "argv": argv,
        "cwd": os.getcwd(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def command_line(argv: List[str]) -> List[str]:
    """The command as typed: ``python -m chordexp.run ...`` rather than the module's path."""
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main_spec is not None and argv and argv[0].endswith(".py"):
        return [sys.executable, "-m", main_spec.name, *argv[1:]]
    return [sys.executable, *argv]


def primary_config_dir() -> Optional[str]:
    """Where Hydra found the primary config (``conf/``, or a run's ``.hydra`` for a rerun)."""
    # HydraConfig.get() is a DictConfig at run time (typed as the HydraConf dataclass): its nodes have .get
    for source in cast(List[DictConfig], HydraConfig.get().runtime.config_sources):
        if source.get("provider") == "main":
            return str(source.get("path"))
    return None
