"""``resume=`` continues one run: its config may not change, but for a few keys.

A resume restores the model, optimizer (its learning rate included), scheduler, scaler,
history and random generators from ``checkpoints/last.pt`` and builds everything else
from the config composed for the resume (the run's ``.hydra/config.yaml`` plus the
command's overrides). A value changed there since the checkpoint was written would be
half applied: a new ``data.batch_size`` takes effect, a new ``optimizer.lr`` does not (the
optimizer state brings the old one back), and the run's records would no longer say how
it was trained. So the composed config is compared with the one the checkpoint was
trained with (``state["extra"]["run_config"]``, the resolved config every
``python -m chordexp.run`` saves in its checkpoints) and any difference outside
:data:`RESUMABLE_KEYS` is refused in one line naming the keys and the ways out.

:data:`RESUMABLE_KEYS` are the keys that say how long, where and how fast the run goes
on, not what it trains: ``trainer.num_epochs`` (train on), ``trainer.device``,
``trainer.num_threads``, ``data.num_workers`` (the advice after a dead DataLoader
worker), ``trainer.log_every``, ``eval_songs`` (scored after training), ``logger``
(the experiment trackers), ``optuna_trial`` (which search trial the run was),
``optimizer.fused`` (how fast AdamW steps: a resume keeps the path its optimizer state
was saved with, so runs from before the fused default resume exactly), ``data.cache_dir``
(where decoded audio is cached: the same samples either way) and ``resume`` itself.
Anything else (learning rate, batch size, model, data, seed, scheduler, ...) is a new
run: ``rerun=<folder> [key=value ...]`` in a new folder.

``python -m chordexp.run`` checks before Hydra starts (``chordexp.run.cli``), so a
refused resume changes nothing in the folder; ``chordexp.experiment.task.train`` checks
again once the checkpoint is loaded (a resume started some other way). A checkpoint without a
saved run config (written through the Python API) is not compared: there is nothing to
compare it with. The checkpoint is read with torch: ``chordexp.run.cli`` imports this
module only for a resume.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from chordexp.config import TrainingConfig
from chordexp.errors import UsageError
from chordexp.experiment.schemas import resolved_dict
from chordexp.training.checkpoint import load_checkpoint_file

#: Dotted keys (a key, or everything under it) that may differ on resume.
RESUMABLE_KEYS = (
    "resume",
    "trainer.num_epochs",
    "trainer.device",
    "trainer.num_threads",
    "trainer.log_every",
    "data.num_workers",
    "eval_songs",
    "logger",
    "optuna_trial",
    "optimizer.fused",  # how fast AdamW steps; the checkpoint's optimizer state keeps its path
    "data.cache_dir",
    "data.dataset.cache_dir",
)  # where decoded audio is cached
#: How many differing keys the refusal names before "and N more".
SHOWN = 3
_ABSENT = object()


class ResumeConfigError(UsageError):
    """``resume=`` with a config that differs from its checkpoint's beyond RESUMABLE_KEYS."""


def flatten(config: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and other values are leaves; an
    empty mapping is a leaf of its own (so ``{}`` and an absent key differ)."""
    flat: Dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def resumable(key: str) -> bool:
    return any(key == allowed or key.startswith(allowed + ".") for allowed in RESUMABLE_KEYS)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, bool) != isinstance(b, bool):  # YAML true vs 1 are different settings
        return False
    return a == b


def config_differences(trained: Mapping[str, Any], current: Mapping[str, Any]) -> List[Tuple[str, Any, Any]]:
    """``(key, value in the checkpoint, value now)`` for every dotted key outside
    RESUMABLE_KEYS whose value differs (or is on one side only), in key order."""
    old, new = flatten(trained), flatten(current)
    return [
        (key, old.get(key, _ABSENT), new.get(key, _ABSENT))
        for key in sorted(set(old) | set(new))
        if not resumable(key) and not _same(old.get(key, _ABSENT), new.get(key, _ABSENT))
    ]


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "absent"
    try:
        text = json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def refusal(folder: Path, checkpoint: Path, differences: List[Tuple[str, Any, Any]]) -> str:
    """The one line that refuses the resume of ``folder``."""
    shown = ", ".join(
        f"{key} ({_show(old)} in {checkpoint.name}, now {_show(new)})" for key, old, new in differences[:SHOWN]
    )
    more = f" and {len(differences) - SHOWN} more" if len(differences) > SHOWN else ""
    return (
        f"resume={folder}: the config (its .hydra/config.yaml with this command's overrides) differs from the one "
        f"{checkpoint} was trained with: {shown}{more}; a resume would apply that only in part, so nothing was "
        f"changed there. A resume may change only {', '.join(RESUMABLE_KEYS[1:])}: restore "
        f"{folder / '.hydra' / 'config.yaml'} (or drop those overrides), or train with the new values as a new "
        f"run with rerun={folder} [key=value ...]"
    )


def check_resume_config(
    folder: Path, checkpoint: Path, trained: Optional[Mapping[str, Any]], current: Mapping[str, Any]
) -> None:
    """Raise ResumeConfigError when ``current`` (the resume's resolved config, without
    ``hydra``) differs from ``trained`` (the checkpoint's ``extra.run_config``) outside
    RESUMABLE_KEYS. ``trained`` None (no saved run config): nothing to compare."""
    if not isinstance(trained, Mapping):
        return
    differences = config_differences(trained, current)
    if differences:
        raise ResumeConfigError(refusal(Path(folder), Path(checkpoint), differences))


def _checkpoint_dirs(folder: Path, cfg: Any) -> List[Path]:
    """Where the run's ``last.pt`` may be: the composed ``trainer.checkpoint_dir``, the one
    the run started with (its ``resolved_config.yaml``; an edited checkpoint_dir must not
    hide the checkpoint) and the default; only folders inside the run folder."""
    names = []
    trainer = cfg.get("trainer") if hasattr(cfg, "get") else None
    if trainer is not None and trainer.get("checkpoint_dir"):
        names.append(str(trainer.get("checkpoint_dir")))
    with contextlib.suppress(Exception):  # no record, or not a readable one: the other places
        recorded = yaml.safe_load((folder / "resolved_config.yaml").read_text())
        names.append(str(recorded["trainer"]["checkpoint_dir"]))
    names.append(TrainingConfig.checkpoint_dir)
    inside: List[Path] = []
    root = folder.resolve()
    for name in names:
        path = (folder / name).resolve()
        if path.is_relative_to(root) and path != root and path not in inside:
            inside.append(path)
    return inside


def check_resume_before_start(folder: Path, cfg: Any) -> None:
    """The check of ``python -m chordexp.run resume=<folder>`` before Hydra writes into
    the folder: ``cfg`` is the config Hydra is about to compose (with its ``hydra`` node).
    A checkpoint that is missing or cannot be read is left to the run, which reports it
    (or, with none, starts over) as before."""
    folder = Path(folder)
    last = next((d / "last.pt" for d in _checkpoint_dirs(folder, cfg) if (d / "last.pt").is_file()), None)
    if last is None:
        return
    try:
        current = resolved_dict(cfg)
        state = load_checkpoint_file(last)
    except Exception:  # noqa: BLE001 - the run reports an unreadable checkpoint or config in its own words
        return
    extra = state.get("extra")
    check_resume_config(folder, last, extra.get("run_config") if isinstance(extra, Mapping) else None, current)
