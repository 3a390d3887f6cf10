"""Checkpoints: the training state gathered and restored, its file format and its
versions, atomic writes, safe loads, RNG state capture.

A checkpoint is data, not code: a dict of tensors, numbers, strings, lists and dicts
that loads with ``torch.load(path, weights_only=True)``. It is written to a temporary
file in the target folder, fsynced and renamed over the target (``chordexp.atomic``), so a
crash or a full disk never leaves a half-written checkpoint in place of a good one.

Its ``format_version`` is compared on load: a newer one than ``FORMAT_VERSION`` is
refused, an older one is brought to the current format by ``migrate`` (the one place that
knows old formats), so every reader sees the keys of ``CURRENT_KEYS``.
"""

from __future__ import annotations

import dataclasses
import io
import os
import random
import re
import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Tuple, Union, cast

import numpy as np
import torch
from torch import nn

from chordexp.atomic import DiskFullError, atomic_write_bytes  # noqa: F401  (re-exported)
from chordexp.errors import UserError
from chordexp.training.monitor import HISTORY_KEYS
from chordexp.training.schedulers import restore_scheduler

PathLike = Union[str, os.PathLike]

#: 2: every key of ``CURRENT_KEYS``. 1: checkpoints written before the version was compared;
#: keys joined that format over its life, and ``migrate`` fills the ones a file lacks.
FORMAT_VERSION = 2
#: Keys every training checkpoint of any version has: what tells one from other torch files.
REQUIRED_KEYS = (
    "format_version",
    "model",
    "optimizer",
    "scheduler",
    "history",
    "best_val_loss",
    "epoch",
    "epochs_without_improvement",
    "config",
    "rng",
)
#: The keys of the current format, in the order ``training_state`` writes them.
CURRENT_KEYS = (
    "format_version",
    "model",
    "optimizer",
    "optimizer_class",  # the optimizer's class name; None where a version-1 file lacks it
    "scheduler",
    "scaler",  # {} when saved without fp16 (a disabled GradScaler)
    "history",
    "best_val_loss",
    "monitor",
    "monitor_mode",
    "best_monitor_value",
    "best_epoch",
    "epoch",
    "epochs_without_improvement",
    "stopped_early",
    "last_val_metrics",
    "config",
    "rng",
    "loader_rng",  # the train loader's own generators by owner ("sampler", "loader")
    "model_hparams",  # the model's constructor arguments, or None
    "extra",  # the trainer's checkpoint_extra (e.g. the run's config)
)


class CheckpointError(UserError, ValueError):
    """A checkpoint that is missing, unreadable, not ours, or does not fit the model."""


def serialize(state: Mapping[str, Any]) -> bytes:
    """``torch.save`` into bytes, so one epoch's state can be written to several files."""
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    return buffer.getvalue()


def load_checkpoint_file(path: PathLike, map_location: Any = "cpu") -> Dict[str, Any]:
    """Load and sanity-check a training checkpoint with ``weights_only=True``.

    Raises CheckpointError (one line, naming the path) when the file is missing,
    truncated or corrupt, or is not a chordexp training checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        best = path / "checkpoints" / "best.pt"
        hint = f" (the run's model is {best})" if best.is_file() else ""
        raise CheckpointError(f"checkpoint {path}: a folder, not a checkpoint file{hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    foreign = foreign_kind(path)
    if foreign:
        raise CheckpointError(f"checkpoint {path}: {foreign}, not a chordexp training checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/garbage files
        refused = refused_object(exc)
        if refused:
            raise CheckpointError(
                f"checkpoint {path}: refused: it holds Python objects beyond tensors and plain "
                f"containers ({refused}), and unpickling those could run code; nothing of it "
                f"was executed"
            ) from None
        detail = (str(exc).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(
            f"checkpoint {path}: not a readable torch checkpoint, truncated or corrupt ({type(exc).__name__}: {detail})"
        ) from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: not a chordexp training checkpoint (holds a {type(state).__name__})")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path}: not a chordexp training checkpoint (missing {', '.join(missing)})")
    version = state["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(
            f"checkpoint {path}: format_version {version!r} is not one chordexp writes (1 to {FORMAT_VERSION})"
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path}: format_version {version} is newer than this chordexp reads ({FORMAT_VERSION}); "
            f"load it with the chordexp that wrote it, or update chordexp"
        )
    state = migrate(state)
    missing = [key for key in CURRENT_KEYS if key not in state]
    if missing:
        raise CheckpointError(
            f"checkpoint {path}: not a chordexp training checkpoint of format_version {version} "
            f"(missing {', '.join(missing)})"
        )
    return state


def migrate(state: Dict[str, Any]) -> Dict[str, Any]:
    """``state`` of any known format as the current one (``CURRENT_KEYS``).

    Version 1 grew over its life: ``loader_rng`` came with exact resume of the loaders'
    order (before it no generator was saved), ``monitor``, ``monitor_mode`` and
    ``best_monitor_value`` with ``trainer.monitor`` (before it every run followed val_loss,
    minimised: its best value is ``best_val_loss``). Its readers also took the keys it
    always wrote but never required as optional; they get the values those readers used.
    """
    state = dict(state)
    if state["format_version"] == 1:
        defaults = {
            "optimizer_class": None,
            "scaler": {},
            "monitor": "val_loss",
            "monitor_mode": "min",
            "best_monitor_value": state["best_val_loss"],
            "best_epoch": 0,
            "stopped_early": False,
            "last_val_metrics": {},
            "model_hparams": None,
        }
        for key, value in defaults.items():
            state.setdefault(key, value)
        state["loader_rng"] = state.get("loader_rng") or {}
        state["extra"] = state.get("extra") or {}
        state["format_version"] = 2
    return state


def foreign_kind(path: Path) -> str:
    """What a file given as a checkpoint is when it is plainly something else (an ONNX or
    TorchScript export, text), so the message says that instead of warning about code
    in pickles; "" when it may be a checkpoint."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return ""
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return ""
        if any(name.endswith("/constants.pkl") or "/code/" in name for name in names):
            return "a TorchScript model (give it to predict, which runs exported models)"
        return ""
    if head[:1] == b"\x80":  # a pickle (torch's legacy format)
        return ""
    if path.suffix.lower() == ".onnx" or b"onnx" in head[:64].lower() or b"pytorch" in head[:64].lower():
        return "an ONNX model (give it to predict, which runs exported models)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    return "a text file"


def refused_object(error: BaseException) -> str:
    """What ``torch.load(weights_only=True)`` refused to unpickle (``GLOBAL posix.system``),
    or "" when ``error`` is not such a refusal (a truncated or garbage file)."""
    message = str(error)
    if "Weights only load failed" not in message:
        return ""
    found = re.search(r"GLOBAL [\w.]+|[Uu]nsupported operand \S+", message)
    return found.group(0) if found else "a non-tensor object"


def check_model_state(path: PathLike, model: nn.Module, state: Mapping[str, Any]) -> None:
    """Raise CheckpointError unless ``state`` has exactly the model's keys and shapes."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (e.g. {mismatched[0]}, checkpoint vs model)")
    if problems:
        raise CheckpointError(f"checkpoint {path}: does not fit this model: {'; '.join(problems)}")


def capture_rng_state() -> Dict[str, Any]:
    """torch (CPU and CUDA), numpy and python ``random`` states as weights_only data."""
    # the legacy (default) form is a tuple; numpy's stub also allows the dict of legacy=False
    np_state = cast(Tuple[str, np.ndarray, int, int, float], np.random.get_state())
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np_state
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss_next": py_gauss},
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of ``capture_rng_state``; CUDA states are restored where devices exist."""
    torch.set_rng_state(state["torch"].cpu())
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available():
        count = min(len(cuda_states), torch.cuda.device_count())
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states[:count]])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py_state = state["python"]
    random.setstate((py_state["version"], tuple(py_state["internal"]), py_state["gauss_next"]))


def to_plain(value: Any) -> Any:
    """Config values as plain dicts/lists/scalars (weights_only-safe); others as str."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Sequence):
        return [to_plain(v) for v in value]
    return str(value)


# ------------------------------------------------------------------ training state
# ``trainer`` below is a ``chordexp.training.trainer.Trainer``, typed Any because that
# module imports this one.
def write_epoch_checkpoints(directory: Path, data: bytes, epoch: int, improved: bool, save_every: int) -> None:
    """An epoch's checkpoint files: ``best.pt`` on improvement, ``epoch_NNN.pt`` every
    ``save_every`` epochs, ``last.pt`` always and last: it commits the epoch. A run killed
    before it is resumed from the previous epoch and rewrites best.pt / epoch_NNN.pt;
    written first, a kill between the writes would leave a best.pt that never gets its
    improved epoch."""
    if improved:
        atomic_write_bytes(directory / "best.pt", data)
    if save_every > 0 and epoch % save_every == 0:
        atomic_write_bytes(directory / f"epoch_{epoch:03d}.pt", data)
    atomic_write_bytes(directory / "last.pt", data)


def training_state(trainer: Any) -> Dict[str, Any]:
    """Everything needed to continue ``trainer`` exactly, as weights_only-loadable data
    (``CURRENT_KEYS``). ``model_hparams`` is the model's ``hparams`` dict (its constructor
    arguments) when it has one, so predict can rebuild the model from the checkpoint alone."""
    hparams = getattr(trainer.model, "hparams", None)
    state = {
        "format_version": FORMAT_VERSION,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "optimizer_class": type(trainer.optimizer).__name__,
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "history": {key: list(values) for key, values in trainer.history.items()},
        **trainer.monitoring.state_dict(),
        "epoch": trainer.current_epoch,
        "stopped_early": trainer.stopped_early,
        "last_val_metrics": dict(trainer.last_val_metrics),
        "config": to_plain(dataclasses.asdict(trainer.config)),
        "rng": capture_rng_state(),
        "loader_rng": {name: gen.get_state() for name, gen in loader_generators(trainer.train_loader).items()},
        "model_hparams": to_plain(hparams) if isinstance(hparams, Mapping) else None,
        "extra": trainer.checkpoint_extra,
    }
    return {key: state[key] for key in CURRENT_KEYS}


def restore_training_state(trainer: Any, path: PathLike) -> None:
    """Load the checkpoint ``path`` into ``trainer``: model, optimizer, scheduler position,
    scaler, history, monitor, progress and RNG states, so that ``train()`` continues exactly
    where the saved run stopped. Raises CheckpointError naming ``path``."""
    state = load_checkpoint_file(path)
    check_model_state(path, trainer.model, state["model"])
    check_same_training(path, state, trainer)
    try:
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        restore_scheduler(trainer.scheduler, state["scheduler"])
        if state["scaler"]:
            trainer.scaler.load_state_dict(state["scaler"])
        history = state["history"]
        trainer.history = {key: [float(v) for v in history.get(key, [])] for key in HISTORY_KEYS}
        trainer.history.update(
            (key, [float(v) for v in values]) for key, values in history.items() if key not in HISTORY_KEYS
        )  # song metrics (val_<name>)
        trainer.monitoring.load_state_dict(state)
        trainer.current_epoch = int(state["epoch"])
        trainer.stopped_early = bool(state["stopped_early"])
        trainer.last_val_metrics = dict(state["last_val_metrics"])
        trainer.checkpoint_extra = dict(state["extra"])
        restore_rng_state(state["rng"])
        generators = loader_generators(trainer.train_loader)
        for name, generator_state in state["loader_rng"].items():
            if name in generators:
                generators[name].set_state(generator_state)
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"checkpoint {path}: cannot restore the training state ({reason})") from exc


def check_same_training(path: PathLike, state: Mapping[str, Any], trainer: Any) -> None:
    """Optimizer and scheduler state only mean something to the same kinds; best.pt,
    best_epoch and the patience count so far were chosen by the saved run's monitor, and
    continuing them under another one would mix two criteria."""
    current = (type(trainer.optimizer).__name__, trainer.config.scheduler)
    saved_config = state["config"] if isinstance(state["config"], Mapping) else {}
    saved = (state["optimizer_class"] or current[0], saved_config.get("scheduler", current[1]))
    if saved != current:
        raise CheckpointError(
            f"checkpoint {path}: saved with optimizer {saved[0]} and scheduler {saved[1]!r}, "
            f"this trainer uses {current[0]} and {current[1]!r}; resume with the same ones"
        )
    monitor = trainer.monitoring
    if (state["monitor"], state["monitor_mode"]) != (monitor.name, monitor.mode):
        raise CheckpointError(
            f"checkpoint {path}: saved monitoring {state['monitor']} ({state['monitor_mode']}), this trainer "
            f"monitors {monitor.name} ({monitor.mode}); resume with the same monitor"
        )


def loader_generators(loader: Any) -> Dict[str, torch.Generator]:
    """The train loader's own random generators (shuffle order, worker seeds): saved and
    restored with the checkpoint so a resumed run draws the epochs' orders the
    uninterrupted run would have drawn."""
    owners: Dict[str, Any] = {"sampler": getattr(loader, "sampler", None), "loader": loader}
    return {
        name: owner.generator
        for name, owner in owners.items()
        if isinstance(getattr(owner, "generator", None), torch.Generator)
    }
