"""Validation by transcription: whole songs through the decoder, scored with mir_eval.

Frame accuracy on excerpts says little about what a user gets: a transcription is
decoded (Viterbi) over a whole song and scored by ``mir_eval`` with durations pooled.
``SongValidator`` does exactly what ``chordexp.predict`` + ``chordexp.evaluate`` do for
files (the same recogniser, ``chordexp.scoring``), on songs held in memory, so the
history's ``val_majmin`` equals ``chordexp.evaluate``'s figure for the same audio and
references.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from torch import nn

from chordexp.errors import ConfigValueError
from chordexp.inference.recognizer import ChordRecognizer
from chordexp.labfile import Labels
from chordexp.scoring import SONG_METRICS, pool, score_labels, segments_to_labels


class SongValidator:
    """``validator(model) -> {metric: pooled score}`` over ``songs`` (audio at
    ``sample_rate``, reference labels). Decoder settings as ``ChordRecognizer``'s."""

    def __init__(
        self, songs: Sequence[Tuple[np.ndarray, Labels]], sample_rate: int, decoder: Optional[Dict[str, object]] = None
    ) -> None:
        if not songs:
            raise ConfigValueError("SongValidator needs at least one song")
        self.songs = list(songs)
        self.sample_rate = int(sample_rate)
        self.decoder = dict(decoder or {})

    @classmethod
    def from_dataset(
        cls, dataset, count: int, seconds: float, decoder: Optional[Dict[str, object]] = None
    ) -> "SongValidator":
        """``count`` whole songs of ``seconds`` from a song dataset (``dataset.song(i, seconds)``)."""
        songs = []
        for index in range(count):
            song = dataset.song(index, seconds)
            songs.append((song.audio, segments_to_labels(song.labelled())))
        return cls(songs, dataset.sample_rate, decoder)

    def __call__(self, model: nn.Module) -> Dict[str, float]:
        device = str(next(model.parameters()).device)
        recognizer = ChordRecognizer(model, device=device, **self.decoder)  # type: ignore[arg-type]
        scores = {}
        for i, (audio, reference) in enumerate(self.songs):
            estimate = segments_to_labels(recognizer.transcribe(audio, self.sample_rate).segments)
            scores[i] = score_labels(reference, estimate)
        aggregate, _ = pool(scores)
        return {name: float(aggregate[name] or 0.0) for name in SONG_METRICS}
