"""Validation by transcription: whole songs through the decoder, scored with mir_eval.

Frame accuracy on excerpts says little about what a user gets: a transcription is
decoded (Viterbi) over a whole song and scored by ``mir_eval`` with durations pooled.
``SongValidator`` does exactly what ``chordexp.predict`` + ``chordexp.evaluate`` do
for files, on songs held in memory, so the history's ``val_majmin`` equals
``chordexp.evaluate``'s figure for the same audio and references.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:  # torch loads only where a model is validated (report imports the names)
    from torch import nn

#: What validation reports (the metrics users quote), as history keys ``val_<name>``.
SONG_METRICS: Tuple[str, ...] = ("root", "majmin", "majmin_inv", "sevenths", "sevenths_inv", "mirex", "seg")

Labels = Tuple[np.ndarray, List[str]]  # (intervals (n, 2), Harte labels)


def segments_to_labels(segments: Sequence[Tuple[float, float, str]]) -> Labels:
    intervals = np.array([[start, end] for start, end, _ in segments], dtype=np.float64).reshape(-1, 2)
    return intervals, [label for _, _, label in segments]


class SongValidator:
    """``validator(model) -> {metric: pooled score}`` over ``songs`` (audio at
    ``sample_rate``, reference labels). Decoder settings as ``ChordRecognizer``'s."""

    def __init__(self, songs: Sequence[Tuple[np.ndarray, Labels]], sample_rate: int,
                 decoder: Optional[Dict[str, object]] = None) -> None:
        if not songs:
            raise ValueError("SongValidator needs at least one song")
        self.songs = list(songs)
        self.sample_rate = int(sample_rate)
        self.decoder = dict(decoder or {})

    @classmethod
    def from_dataset(cls, dataset, count: int, seconds: float,
                     decoder: Optional[Dict[str, object]] = None) -> "SongValidator":
        """``count`` whole songs of ``seconds`` from a song dataset (``dataset.song(i, seconds)``)."""
        songs = []
        for index in range(count):
            song = dataset.song(index, seconds)
            songs.append((song.audio, segments_to_labels(song.labelled())))
        return cls(songs, dataset.sample_rate, decoder)

    def __call__(self, model: "nn.Module") -> Dict[str, float]:
        from chordexp.evaluate import pool, score_labels
        from chordexp.predict import ChordRecognizer

        device = str(next(model.parameters()).device)
        recognizer = ChordRecognizer(model, device=device, **self.decoder)  # type: ignore[arg-type]
        scores = {}
        for i, (audio, reference) in enumerate(self.songs):
            estimate = segments_to_labels(recognizer.transcribe(audio, self.sample_rate).segments)
            scores[i] = score_labels(reference, estimate)
        aggregate, _ = pool(scores)
        return {name: float(aggregate[name] or 0.0) for name in SONG_METRICS}
