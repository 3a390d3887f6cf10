"""``FolderSongDataset``: song mode on your own annotated songs.

The songs, split, checks and label mapping are ``FolderChordDataset``'s (a folder of
audio files with a ``.lab`` or JAMS annotation beside each or in a parallel tree; folds,
split files, grouping). An item is an excerpt of ``clip_seconds`` with
a label per model frame read from the annotation: frame ``k`` takes the chord sounding
at its centre. Frames past the end of a short song, and frames in stretches whose
labels were skipped (``X``, or unknown types with ``unknown_chords=skip``), are masked
out rather than called ``N``. Train excerpts are pitch-shifted by ``-pitch_shift..
pitch_shift`` semitones (a speed change: the frame times scale with it, root and bass
move with the pitch); each item is a pure function of ``(seed, split, index)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch

from chordexp.audio import resample
from chordexp.chords import NO_CHORD, NUM_PITCH_CLASSES
from chordexp.data.dataset_contract import FOLDER_TAG, check_index, item_rng
from chordexp.data.folder import FolderChordDataset, SongError, fit_length
from chordexp.data.frames import MASK_KEY, FrameGrid, frame_targets
from chordexp.data.item_errors import item_error
from chordexp.data.songs import EXCERPT_SECONDS, RenderedSong

_SEQUENCE_TAG = 0x53455153  # "SEQS": excerpt streams apart from the clip windows'


class FolderSongDataset(FolderChordDataset):
    """``size`` excerpts of ``clip_seconds`` per epoch, with frame targets (song mode)."""

    sequence = True

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("clip_seconds", EXCERPT_SECONDS)
        super().__init__(*args, **kwargs)
        self.grid = FrameGrid.for_model(self.sample_rate)
        self._durations = np.cumsum([song.duration for song in self.songs])

    def _check_usable(self, path: Path, segments: np.ndarray, duration: float, longest: float) -> None:
        if not len(segments):
            raise SongError(f"{path}: no usable chord label (all X, or unknown types skipped)")

    def excerpt(self, index: int) -> Tuple[int, float, int]:
        """Item ``index``'s song, start (seconds of the song) and shift, without reading audio."""
        rng = item_rng(self.seed, FOLDER_TAG, _SEQUENCE_TAG, self._split_id, check_index(index, self.size))
        shift = int(rng.integers(-max(self.shifts), max(self.shifts) + 1))
        song = min(
            int(np.searchsorted(self._durations, rng.random() * self._durations[-1], side="right")), len(self.songs) - 1
        )
        length = self._read_length(shift) / self.sample_rate
        start = float(rng.uniform(0.0, max(self.songs[song].duration - length, 0.0)))
        return song, start, shift

    def __getitem__(self, index: int):
        song_index, start, shift = self.excerpt(index)
        try:
            return self._read_excerpt(song_index, start, shift)
        except Exception as error:
            raise item_error(self, index, error, source=str(self.songs[song_index].audio_path)) from error

    def _read_excerpt(self, song_index: int, start: float, shift: int):
        song = self.songs[song_index]
        n_read = self._read_length(shift)
        first = int(round(start * self.sample_rate))
        audio = song.audio[first : first + n_read]
        real = len(audio)  # a song shorter than the excerpt: the rest is padding
        audio = np.pad(audio, (0, n_read - real)) if real < n_read else audio.copy()
        if n_read != self.num_samples:  # speed change by 2**(k/12): pitch up k semitones
            audio = fit_length(resample(audio, n_read, self.num_samples), self.num_samples)
        speed = n_read / self.num_samples
        times = start + self.grid.times(self.grid.num_frames(self.num_samples)) * speed
        labels = song.labels.copy()  # (root, chord_type, bass)
        chord = labels[:, 1] != NO_CHORD
        labels[chord, 0] = (labels[chord, 0] + shift) % NUM_PITCH_CLASSES
        labels[chord, 2] = (labels[chord, 2] + shift) % NUM_PITCH_CLASSES
        triples = [(int(c), int(r), int(b)) for r, c, b in labels]
        targets = frame_targets(
            song.segments[:, 0], song.segments[:, 1], triples, times, valid_until=start + real / self.sample_rate
        )
        covered = np.zeros(len(times), dtype=bool)  # frames in skipped stretches are not N: mask them
        for seg_start, seg_end in song.segments:
            covered |= (times >= seg_start) & (times < seg_end)
        targets[MASK_KEY] &= torch.from_numpy(covered)
        return torch.from_numpy(audio), targets

    def targets(self, index: int) -> Dict[str, List[int]]:
        song_index, start, shift = self.excerpt(index)
        return {k: v.tolist() for k, v in self._read_excerpt(song_index, start, shift)[1].items()}

    def song(self, index: int, seconds: float = 0.0) -> RenderedSong:
        """Validation song ``index`` whole (``seconds`` is ignored: real songs are whole)."""
        song = self.songs[index % len(self.songs)]
        segments = [
            (float(a), float(b), (int(c), int(r), int(bs))) for (a, b), (r, c, bs) in zip(song.segments, song.labels)
        ]
        return RenderedSong(np.asarray(song.audio, dtype=np.float32), segments, 0.0)

    def __repr__(self) -> str:
        return super().__repr__().replace("FolderChordDataset", "FolderSongDataset", 1)
