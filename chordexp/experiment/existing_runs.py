"""What a folder already holds: the record of a run, of a sweep, or files a run writes.

A folder holds a run when it has ``.hydra/config.yaml``, ``metrics.json``,
``history.json``, ``environment.json``, ``resolved_config.yaml`` or a non-empty
checkpoint folder; a sweep, when it has ``multirun.yaml`` (or an Optuna sweep's
``optimization_results.yaml``). Nothing here changes a folder: the refusals are
``chordexp.experiment.run_lock``'s.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, List

from omegaconf import OmegaConf

from chordexp.config import TrainingConfig
from chordexp.output_dirs import RUN_MARKERS, RUN_RECORD_FILES, RUN_RECORD_FOLDERS

#: Files whose presence means a folder holds a run (besides a non-empty checkpoint folder).
RUN_RECORDS = RUN_MARKERS
#: Files whose presence means a folder holds a sweep.
SWEEP_RECORDS = ("multirun.yaml", "optimization_results.yaml")
DEFAULT_CHECKPOINT_DIR = TrainingConfig.checkpoint_dir


def run_records(folder: Path, checkpoint_dir: str = DEFAULT_CHECKPOINT_DIR) -> List[str]:
    """The records of a run in ``folder`` (``[]``: none, the folder may take a new run)."""
    found = [name for name in RUN_RECORDS if (folder / name).is_file()]
    checkpoints = folder / checkpoint_dir
    with contextlib.suppress(OSError):
        if checkpoints.is_dir() and any(checkpoints.iterdir()):
            found.append(f"{checkpoint_dir}/")
    return found


def files_a_run_writes(folder: Path, cfg: Any) -> List[str]:
    """The files and record folders in ``folder`` that a new run would write over: its
    records (``RUN_RECORD_FILES``), a non-empty ``plots/`` or ``tensorboard/``, the CSV
    tracker's file. A folder of other files may take a run; these may not be lost."""
    names = list(RUN_RECORD_FILES)
    csv_name = OmegaConf.select(cfg, "logger.csv.filename", default=None) if cfg is not None else None
    if csv_name:
        names.append(str(csv_name))
    found = [name for name in names if (folder / name).is_file()]
    for sub in (name for name in RUN_RECORD_FOLDERS if name != ".hydra"):  # .hydra: run_records' business
        with contextlib.suppress(OSError):
            if (folder / sub).is_dir() and any((folder / sub).iterdir()):
                found.append(f"{sub}/")
    return found


def runs_under(folder: Path, checkpoint_dir: str = DEFAULT_CHECKPOINT_DIR, limit: int = 3) -> List[str]:
    """Up to ``limit`` descriptions of sweeps or runs at or under ``folder`` (a run's own
    subfolders are not searched)."""
    found: List[str] = []
    for root, dirs, _ in os.walk(folder):
        here = Path(root)
        records = [name for name in SWEEP_RECORDS if (here / name).is_file()] + run_records(here, checkpoint_dir)
        if records:
            found.append(f"{here} ({', '.join(records)})")
            if len(found) >= limit:
                break
        if run_records(here, checkpoint_dir):
            dirs[:] = []
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return found
