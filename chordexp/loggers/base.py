"""What every tracker shares: the end-of-run hook, the library check, the state file."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Iterable, Mapping, Optional

from chordexp.config import stays_inside
from chordexp.errors import ConfigValueError
from chordexp.experiment.run_folder import write_json
from chordexp.output_dirs import RUN_RECORD_FILES, RUN_RECORD_FOLDERS
from chordexp.training.callbacks import Callback

log = logging.getLogger("chordexp.loggers")

#: Run artefacts a tracker uploads when the run ends, relative to the run folder (globs).
ARTIFACTS = (
    "resolved_config.yaml",
    "metrics.json",
    "history.json",
    "song_metrics.json",
    "environment.json",
    "plots/*.png",
)


class RunLogger(Callback):
    """A tracker: the Trainer's hooks, and ``finish`` once the run folder is complete
    (metrics.json and plots exist only after ``train()`` returns)."""

    def finish(self, run_folder: Path, failed: bool = False) -> None:
        """The run ended (``failed``: with an error); upload artefacts, close the run."""


def finish_loggers(loggers: Iterable[Any], run_folder: Path, failed: bool = False) -> None:
    """``finish`` every tracker; one that fails is logged, so the others still finish and
    the run's own outcome (or error) stands."""
    for logger in loggers:
        finish = getattr(logger, "finish", None)
        if finish is None:
            continue
        try:
            finish(Path(run_folder), failed=failed)
        except Exception as err:  # a tracker must not turn a finished run into a failed one
            log.warning("%s could not finish: %s", type(logger).__name__, err)


def require(module: str, tracker: str, extra: str) -> None:
    """Fail before training when ``module`` is not installed: one line with the install."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module entry of None
        found = False
    if not found:
        raise ConfigValueError(
            f"logger.{tracker} needs the {module} package, which is not installed: "
            f"pip install 'chordexp[{extra}]' (or choose other trackers: logger=[tensorboard])"
        )


def inside(run_folder: Path, relative: str, key: str, folder: str = "") -> Path:
    """``run_folder / relative``, refusing a path that leaves the run folder (``key`` names it):
    a tracker must not write over another run's files, nor over this run's own records
    (``logger.csv.filename=checkpoints/last.pt`` turned the checkpoint into a CSV).
    ``folder``: the record folder this tracker owns (``tensorboard``)."""
    if not stays_inside(relative):
        raise ConfigValueError(
            f"{key}={relative!r} must be a relative path inside the run folder (no absolute path, no '..')"
        )
    path = PurePosixPath(Path(relative).as_posix())
    parts = [part for part in path.parts if part not in ("", ".")]
    record = (
        "/".join(parts) in RUN_RECORD_FILES
        or (bool(parts) and parts[0] in RUN_RECORD_FOLDERS and parts[0] != folder)
        or path.suffix == ".pt"
    )
    if record:
        raise ConfigValueError(
            f"{key}={relative!r} names one of the run's own records ({', '.join(RUN_RECORD_FILES[:3])}, "
            f"{', '.join(f + '/' for f in RUN_RECORD_FOLDERS)}, checkpoints): choose another name"
        )
    return Path(run_folder) / relative


def artifact_paths(run_folder: Path) -> Iterable[Path]:
    """The ARTIFACTS that exist in ``run_folder``, in a stable order."""
    for pattern in ARTIFACTS:
        yield from sorted(path for path in Path(run_folder).glob(pattern) if path.is_file())


def numeric_summary(run_folder: Path) -> Dict[str, float]:
    """metrics.json's numbers (``best_val_loss``, ``epochs_run``, ...), for run summaries."""
    path = Path(run_folder) / "metrics.json"
    if not path.is_file():
        return {}
    metrics = json.loads(path.read_text())
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def read_state(path: Path) -> Optional[Dict[str, Any]]:
    """A tracker's state file (its run id), or None when there is none yet."""
    return json.loads(path.read_text()) if path.is_file() else None


def write_state(path: Path, state: Mapping[str, Any]) -> None:
    write_json(path, state)
