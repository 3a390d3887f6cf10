"""The trainer's side of song validation: calling a ``song_validator`` (e.g.
``chordexp.inference.song_validation.SongValidator``, which scores whole transcribed songs),
checking what it returns, and sharing its values with every DDP rank.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from torch import nn

from chordexp.errors import ConfigValueError
from chordexp.training.distributed import DistContext, broadcast_object
from chordexp.training.metrics import METRIC_KEYS

#: ``song_validator(model) -> {name: value}``: extra validation metrics (e.g. mir_eval scores
#: of whole transcribed songs), recorded in the history as ``val_<name>``.
SongValidator = Callable[[nn.Module], Mapping[str, float]]
#: Song-validator names that would collide with the loader metrics (or, as val_<name>, with val_loss).
RESERVED_SONG_METRICS = frozenset(METRIC_KEYS) | {"loss"}


def song_metrics(validator: SongValidator, model: nn.Module, distributed: Optional[DistContext]) -> Dict[str, float]:
    """Run ``validator`` on ``model``; under DDP rank 0 runs it and every rank gets its
    values (an error there is raised on every rank, none hangs)."""
    if distributed is None:
        return checked_song_metrics(validator(model))
    payload: Tuple[str, Any] = ("ok", None)
    error: Optional[BaseException] = None
    if distributed.is_main:
        try:
            payload = ("ok", checked_song_metrics(validator(model)))
        except Exception as exc:  # noqa: BLE001 - re-raised below, after the other ranks are told
            error, payload = exc, ("error", f"{type(exc).__name__}: {exc}")
    payload = broadcast_object(payload)
    if error is not None:
        raise error
    if payload[0] == "error":
        raise RuntimeError(f"the song validator failed on rank 0: {payload[1]}")
    return dict(payload[1])


def checked_song_metrics(result: Any) -> Dict[str, float]:
    """A validator's ``result`` as ``{name: float}``; ConfigValueError for anything else."""
    if not isinstance(result, Mapping):
        raise ConfigValueError(f"song_validator returned {type(result).__name__}, not a dict of metric name -> number")
    metrics: Dict[str, float] = {}
    for name, value in result.items():
        if not isinstance(name, str) or not name or name in RESERVED_SONG_METRICS:
            raise ConfigValueError(
                f"song_validator metric name {name!r} is not allowed: it must be a non-empty "
                f"string other than {', '.join(sorted(RESERVED_SONG_METRICS))}"
            )
        try:
            metrics[name] = float(value)
        except (TypeError, ValueError, RuntimeError):
            raise ConfigValueError(f"song_validator metric {name}={value!r} is not a number") from None
    return metrics
