"""The record a run leaves in its folder, beside Hydra's ``.hydra/`` and ``run.log``.

``resolved_config.yaml`` (the composed config with every interpolation resolved),
``metrics.json`` (final and best validation metrics) and the pieces of
``environment.json`` that need no torch (versions, git state, differences; the record
itself is ``chordexp.experiment.environment``'s).
"""

from __future__ import annotations

import json
import math
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from omegaconf import OmegaConf

from chordexp.atomic import atomic_write_text
from chordexp.experiment.schemas import resolved_dict

#: Validation metrics of the history, each reported at the last and at the best epoch.
VAL_METRICS = ("val_loss", "val_chord_type_acc", "val_root_acc", "val_bass_note_acc")
#: History keys every run has; any other (a song validator's ``val_<name>``) is an extra
#: history key, reported as ``final_<key>`` and ``best_<key>`` too.
STANDARD_HISTORY = ("train_loss", *VAL_METRICS, "learning_rate")

#: Keys of every metrics.json, in order (extra history keys add their final_/best_ keys
#: after the standard ones). ``monitor`` is text: the history key best_epoch follows;
#: ``best_monitor_value`` is its value at best_epoch.
METRIC_KEYS = (
    *(f"final_{name}" for name in ("train_loss", *VAL_METRICS)),
    *(f"best_{name}" for name in VAL_METRICS),
    "monitor",
    "best_monitor_value",
    "best_epoch",
    "epochs_run",
    "stopped_early",
    "wall_time_s",
    "num_parameters",
)
#: metrics.json keys that are not numbers: no sweeper can optimise them.
TEXT_METRIC_KEYS = ("monitor",)
#: ``final_<key>``/``best_<key>`` of an extra history key (known only once training ran).
EXTRA_METRIC_KEY = re.compile(r"(final|best)_val_\w+")


def is_optimizable_metric(key: str) -> bool:
    """Whether ``key`` can be a sweep's ``optimized_metric``: a numeric key of every
    metrics.json, or ``best_val_<name>``/``final_val_<name>`` of a song validator's metric
    (whether the run records ``val_<name>`` is only known once it has validated)."""
    return (key in METRIC_KEYS and key not in TEXT_METRIC_KEYS) or EXTRA_METRIC_KEY.fullmatch(key) is not None


#: Versions recorded in environment.json; tinysoundfont null: the data's SoundFont parts
#: were played by the additive fallback (chordexp.data.soundfont.AdditiveRenderer).
PACKAGES = ("torch", "hydra-core", "omegaconf", "numpy", "tinysoundfont")


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON atomically (``chordexp.atomic``: temp file, fsync,
    rename), so a crash or a full disk leaves the previous file whole."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=True) + "\n")


def write_resolved_config(cfg: Any, path: Path) -> None:
    """Save the run's config (without Hydra's own node) with interpolations resolved."""
    atomic_write_text(path, OmegaConf.to_yaml(OmegaConf.create(resolved_dict(cfg))))


def git_state(directory: Path) -> Dict[str, Any]:
    """Commit and dirtiness of the git checkout holding ``directory``.

    ``dirty`` means tracked files differ from the commit (untracked files such as run
    outputs do not count). Both are None when git or the repository is not there.
    """

    def git(*args: str) -> Optional[str]:
        try:
            done = subprocess.run(
                ["git", "--no-optional-locks", "-C", str(directory), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def git_diff(directory: Path) -> Optional[str]:
    """``git diff HEAD`` of the checkout holding ``directory`` (tracked files), or None."""
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(directory), "diff", "HEAD", "--binary"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout


def save_git_diff(record: Mapping[str, Any], path: Path) -> Optional[Path]:
    """When ``record`` says the code was dirty, save the diff that made it so at ``path``
    (a run of uncommitted code can then be redone: check out the commit, apply it)."""
    if not record.get("git", {}).get("dirty"):
        return None
    diff = git_diff(Path(__file__).resolve().parent)
    if diff is None:
        return None
    Path(path).write_text(diff)
    return Path(path)


def environment_differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> List[str]:
    """One line per way the code or packages of ``current`` differ from ``recorded``
    (environment.json of the run being redone or resumed): what could change the numbers."""
    lines = []
    old_git, new_git = recorded.get("git") or {}, current.get("git") or {}
    if old_git.get("commit") != new_git.get("commit"):
        lines.append(f"git commit differs: recorded {old_git.get('commit')}, now {new_git.get('commit')}")
    if old_git.get("dirty") or new_git.get("dirty"):
        lines.append(
            f"uncommitted changes: recorded dirty={old_git.get('dirty')}, now dirty={new_git.get('dirty')} "
            "(the recorded diff, if any, is git_diff.patch in the run folder)"
        )
    old_versions, new_versions = recorded.get("versions") or {}, current.get("versions") or {}
    for name in sorted(set(old_versions) | set(new_versions)):
        if old_versions.get(name) != new_versions.get(name):
            lines.append(f"{name} version differs: recorded {old_versions.get(name)}, now {new_versions.get(name)}")
    return lines


def read_json(path: Path) -> Optional[Dict[str, Any]]:
    """The JSON object in ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def package_versions(names=PACKAGES) -> Dict[str, Optional[str]]:
    versions: Dict[str, Optional[str]] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_metrics(
    history: Mapping[str, List[float]],
    *,
    best_epoch: int,
    best_val_loss: float,
    stopped_early: bool,
    wall_time_s: float,
    num_parameters: int,
    monitor: str = "val_loss",
) -> Dict[str, Any]:
    """Flat summary of a finished run; ``best_epoch`` is 1-based (0: no epoch ran).

    ``best_<key>`` is the value at ``best_epoch`` (the epoch ``monitor`` chose), except
    ``best_val_loss``: the trainer's best validation loss (with another monitor than
    val_loss, the lowest of any epoch). Every extra history key (``val_majmin`` of a song
    validator) gets ``final_<key>`` and ``best_<key>``, so ``optimized_metric`` may name them.
    """
    epochs_run = len(history["val_loss"])
    extra = [key for key in history if key not in STANDARD_HISTORY]
    metrics: Dict[str, Any] = {}
    for name in ("train_loss", *VAL_METRICS, *extra):
        metrics[f"final_{name}"] = history[name][-1] if len(history[name]) else math.nan
    for name in (*VAL_METRICS, *extra):
        metrics[f"best_{name}"] = at_epoch(history.get(name, []), best_epoch)
    metrics["best_val_loss"] = float(best_val_loss)
    metrics["monitor"] = monitor
    metrics["best_monitor_value"] = at_epoch(history.get(monitor, []), best_epoch)
    metrics.update(
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        stopped_early=bool(stopped_early),
        wall_time_s=round(wall_time_s, 3),
        num_parameters=num_parameters,
    )
    return metrics


def at_epoch(values: List[float], epoch: int) -> float:
    """``values`` of 1-based ``epoch``; NaN when there is none."""
    return float(values[epoch - 1]) if 1 <= epoch <= len(values) else math.nan
