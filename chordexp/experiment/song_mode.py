"""Song mode's pieces of a run: the frame-grid check, validation by transcription and
the decoder settings saved with the model.

Kept out of ``task.py`` so the run's task stays orchestration; everything here is plain
Python over a composed config.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

import numpy as np

from chordexp.data.frames import FrameGrid
from chordexp.decode import estimate_decoder_priors
from chordexp.errors import ConfigValueError
from chordexp.inference.song_validation import SongValidator

log = logging.getLogger(__name__)


def check_frame_grid(dataset: Any, cfg: Any) -> None:
    """The dataset labels the frames the model will output: same hop, same rate."""
    grid = getattr(dataset, "grid", None)
    if grid is None:
        raise ConfigValueError(
            f"data.sequence=true needs a dataset with frame targets (a song dataset); "
            f"{type(dataset).__name__} gives one label per clip"
        )
    model = cfg.model
    expected = FrameGrid.for_model(
        int(model.sample_rate),
        fmin=float(model.fmin),
        n_octaves=int(model.n_octaves),
        bins_per_octave=int(model.bins_per_octave),
    )
    if (grid.sample_rate, grid.hop_length) != (expected.sample_rate, expected.hop_length):
        raise ConfigValueError(
            f"model frames (rate {expected.sample_rate} Hz, hop {expected.hop_length}) differ from "
            f"the dataset's labels (rate {grid.sample_rate} Hz, hop {grid.hop_length}); "
            f"keep model.sample_rate=${{data.sample_rate}} and the default front end"
        )


def build_song_validator(val_set: Any, cfg: Any) -> Optional[Any]:
    """``data.val_songs`` whole songs of the validation split, or None when 0."""
    count = int(cfg.data.get("val_songs", 0) or 0)
    if count <= 0:
        return None
    if not hasattr(val_set, "song"):
        raise ConfigValueError(
            f"data.val_songs={count} needs a dataset that renders whole songs; "
            f"{type(val_set).__name__} does not (set data.val_songs=0)"
        )
    songs = getattr(val_set, "songs", None)  # a folder of real songs: as many as the split holds
    count = min(count, len(songs)) if songs is not None else count
    seconds = float(cfg.data.get("val_song_seconds", 45.0))
    validator = SongValidator.from_dataset(val_set, count, seconds)
    log.info("validation also transcribes %d whole songs of %.0f s (mir_eval, durations pooled)", count, seconds)
    return validator


def decoder_settings(train_set: Any, cfg: Any) -> Dict[str, Any]:
    """The decoder the model is validated and shipped with: ``self_transition`` from the
    training labels (unless ``decoder.self_transition`` is set), the chord-type prior,
    ``decoder.prior_weight``, ``decoder.estimate_tuning`` and ``decoder.transpositions``."""
    labels = _frame_labels(train_set)
    priors = estimate_decoder_priors(labels["chord_type"], labels["root"], labels["bass_note"], labels["mask"])
    chosen = cfg.get("decoder") or {}
    if chosen.get("self_transition") is not None:
        priors["self_transition"] = float(chosen["self_transition"])
    priors["prior_weight"] = float(chosen.get("prior_weight", 0.0) or 0.0)
    priors["estimate_tuning"] = bool(chosen.get("estimate_tuning", False))
    priors["transpositions"] = int(chosen.get("transpositions", 0) or 0)
    log.info(
        "decoder: self_transition %.4f (%s), prior_weight %.2f",
        priors["self_transition"],
        "set" if chosen.get("self_transition") is not None else "from the training labels",
        priors["prior_weight"],
    )
    return priors


def _frame_labels(train_set: Any, limit: int = 512) -> Dict[str, np.ndarray]:
    """``(N, T)`` frame labels of the training items: the in-memory cache's, else up to
    ``limit`` items read from the dataset."""
    targets = getattr(train_set, "targets", None)
    if isinstance(targets, dict) and "mask" in targets:
        return {key: value.numpy() for key, value in targets.items()}
    items = [train_set[i][1] for i in range(min(len(train_set), limit))]
    return {key: np.stack([item[key].numpy() for item in items]) for key in ("chord_type", "root", "bass_note", "mask")}
