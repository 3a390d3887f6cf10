"""Checkpoint files: atomic writes, safe loads, RNG state capture.

A checkpoint is data, not code: a dict of tensors, numbers, strings, lists and dicts
that loads with ``torch.load(path, weights_only=True)``. It is written to a temporary
file in the target folder, fsynced and renamed over the target (``chordexp.atomic``), so a
crash or a full disk never leaves a half-written checkpoint in place of a good one.
"""

from __future__ import annotations

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

PathLike = Union[str, os.PathLike]

FORMAT_VERSION = 1
#: Keys every training checkpoint has (see ``Trainer.save_checkpoint``).
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
