"""``FolderChordDataset``: training windows cut from a folder of annotated songs.

``root`` holds audio files (any format ``chordexp.audio`` reads, searched recursively,
hidden files ignored), each with an annotation of the same stem (``.lab``: ``start end
label`` lines, Harte labels; or JAMS) beside it or at the same relative path under
``annotations`` (``chordexp.data.collection``: discovery, reading and splits).

- Split: a song is in val when a hash of ``(seed, its path relative to root)`` falls
  below ``val_fraction``, so the split is stable and disjoint; if that leaves either
  split empty, the annotated song with the lowest (highest) hash moves over.
  ``num_folds=K`` / ``fold=i``: fold ``i`` of K (by the same hash) is val instead;
  ``split_file``: a list decides; ``group_depth=N``: songs sharing their first N folders
  (artist, album) stay in one split.
- Validation and cache: each dataset object reads its own split's songs once, at
  construction: the ``.lab`` (``chordexp.labfile.load_lab`` plus overlap and length
  checks) and the audio, decoded, mixed to mono and resampled to ``sample_rate``, kept as
  float32 (4 bytes x sample_rate per second of audio: 10.6 MB per minute at 44.1 kHz),
  or, with ``cache_dir``, written once to an on-disk cache and memory-mapped per read
  (``chordexp.data.audio_cache``: later runs, workers and DDP ranks decode nothing).
  A bad song is one ``logging.warning`` naming its file and skipped
  (``on_error="skip"``) or a ValueError with the same line (``"raise"``), so nothing
  fails mid-epoch. Labels go onto the vocabulary by ``chordexp.data.labels.map_label``.
- Item ``i``: a pure function of ``(seed, split, i)``. Train draws a pitch shift ``k``
  uniform in ``-pitch_shift..pitch_shift`` semitones (val: 0) and reads
  ``clip_seconds * 2**(k/12)`` seconds, resampled with soxr to ``clip_seconds`` (a speed
  change: the pitch moves ``k`` semitones); root and bass move by ``k``. The window start
  is uniform over every start, in every song of the split, at which one chord (or N)
  covers at least ``min_label_fraction`` of the window (songs are thus weighted by
  their usable duration); the label is the chord covering most of the window.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union, cast

import numpy as np
import torch
from torch.utils.data import Dataset

from chordexp.audio import SAMPLE_RATE_RULE, AudioError, load_audio, resample, sample_rate_ok
from chordexp.audio_names import AUDIO_SUFFIXES
from chordexp.chords import NO_CHORD, NUM_PITCH_CLASSES
from chordexp.data import collection
from chordexp.data.audio_cache import AudioCache, MappedAudio, default_cache_dir
from chordexp.data.collection import OVERLAP_TOLERANCE_S, CollectionError, Entry, SongError, label_overrun
from chordexp.data.dataset_contract import FOLDER_TAG, Item, as_targets, check_common, check_index, is_int, item_rng
from chordexp.data.item_errors import item_error
from chordexp.data.labels import UNKNOWN_CHORD_MODES, LabelCounts, Triple, classify_label
from chordexp.errors import ConfigValueError

log = logging.getLogger("chordexp.data.folder")

FOLDER_SPLITS: Tuple[str, ...] = ("train", "val")
ON_ERROR_MODES = ("skip", "raise")
SILENCE_PEAK = 1e-4  # -80 dBFS: quieter than this everywhere is a silent file


@dataclass(frozen=True)
class Song:
    """One validated, decoded song of the split."""

    audio_path: Path
    audio: Union[np.ndarray, MappedAudio]  # float32 (num_samples,) at the dataset's sample_rate
    duration: float  # seconds
    segments: np.ndarray  # (m, 2) float64 start/end seconds, usable labels only, sorted
    labels: np.ndarray  # (m, 3) int64 (root, chord_type, bass_note) of each segment


@dataclass(frozen=True)
class Window:
    """What item ``i`` is: a song, a start (seconds of the song), a shift, the label."""

    song: int
    start: float
    shift: int  # semitones
    label: Triple  # (root, chord_type, bass_note) after the shift


class FolderChordDataset(Dataset):
    """``size`` windows of ``clip_seconds`` per epoch from the songs under ``root``.

    Item: ``(audio, targets)`` exactly as ``SyntheticChordDataset``: audio float32
    ``(num_samples,)``, targets 0-dim long tensors ``chord_type``, ``root``,
    ``bass_note`` (N: all 0). See the module docstring for split, windows and checks.
    """

    def __init__(
        self,
        size: int,
        split: str = "train",
        seed: int = 0,
        root: str | Path = "???",
        sample_rate: int = 44100,
        clip_seconds: float = 1.0,
        val_fraction: float = 0.1,
        on_error: str = "skip",
        unknown_chords: str = "map",
        pitch_shift: int = 6,
        min_label_fraction: float = 0.5,
        annotations: str | Path | None = None,
        num_folds: int = 0,
        fold: int = 0,
        split_file: str | Path | None = None,
        group_depth: int = 0,
        cache_dir: str | Path | None = None,
    ) -> None:
        check_common(size, seed)
        _check_args(
            split, sample_rate, clip_seconds, val_fraction, on_error, unknown_chords, pitch_shift, min_label_fraction
        )
        problem = collection.check_split_options(num_folds, fold, group_depth, split_file)
        if problem:
            raise ConfigValueError(f"{type(self).__name__}: {problem}")
        self.size, self.split, self.seed = int(size), split, int(seed)
        self.root = _check_root(root)
        self.annotations = collection.annotation_root(annotations)
        self.split_options: Dict[str, Any] = {
            "num_folds": int(num_folds),
            "fold": int(fold),
            "group_depth": int(group_depth),
            "split_file": None if split_file in (None, "") else Path(split_file).expanduser(),
        }
        self.sample_rate = int(sample_rate)
        self.num_samples = int(round(clip_seconds * sample_rate))
        self.on_error, self.unknown_chords = on_error, unknown_chords
        self.min_label_fraction = float(min_label_fraction)
        self.shifts = tuple(range(-pitch_shift, pitch_shift + 1)) if split == "train" else (0,)
        self._split_id = FOLDER_SPLITS.index(split)
        self.counts = LabelCounts()
        self.audio_cache = audio_cache_at(cache_dir)
        self.songs: List[Song] = self._load_split(val_fraction)
        self._starts = {
            k: [
                valid_starts(s.segments, s.duration, self._read_length(k) / self.sample_rate, self.min_label_fraction)
                for s in self.songs
            ]
            for k in self.shifts
        }
        self._song_weights = {
            k: np.cumsum([spans[:, 1].sum() - spans[:, 0].sum() for spans in starts])
            for k, starts in self._starts.items()
        }
        self._log_summary()

    # ------------------------------------------------------------------ items
    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Item:
        window = self.window(index)
        try:
            return self._read_window(window)
        except Exception as error:  # name the item and its song: the DataLoader would not
            raise item_error(self, index, error, source=str(self.songs[window.song].audio_path)) from error

    def _read_window(self, window: Window) -> Item:
        song = self.songs[window.song]
        n_read = self._read_length(window.shift)
        first = max(0, min(int(round(window.start * self.sample_rate)), song.audio.shape[0] - n_read))
        audio = song.audio[first : first + n_read]
        if n_read != self.num_samples:  # speed change by 2**(k/12): pitch up k semitones
            audio = fit_length(resample(audio, n_read, self.num_samples), self.num_samples)
        else:
            audio = audio.copy()
        root, chord_type, bass = window.label
        return torch.from_numpy(audio), as_targets(chord_type, root, bass)

    def window(self, index: int) -> Window:
        """Item ``index``'s song, start, shift and label, without reading audio (cheap)."""
        rng = item_rng(self.seed, FOLDER_TAG, self._split_id, check_index(index, self.size))
        shift = int(rng.integers(-max(self.shifts), max(self.shifts) + 1))
        weights = self._song_weights[shift]
        song = int(np.searchsorted(weights, rng.random() * weights[-1], side="right"))
        song = min(song, len(self.songs) - 1)
        start = sample_union(self._starts[shift][song], rng.random())
        length = self._read_length(shift) / self.sample_rate
        root, chord_type, bass = self._label_at(self.songs[song], start, length)
        if chord_type != NO_CHORD:
            root, bass = (root + shift) % NUM_PITCH_CLASSES, (bass + shift) % NUM_PITCH_CLASSES
        return Window(song, start, shift, (root, chord_type, bass))

    def targets(self, index: int) -> Mapping[str, Union[int, List[int]]]:
        """Item ``index``'s labels without reading its audio (ints here; per-frame lists
        in ``FolderSongDataset``)."""
        root, chord_type, bass = self.window(index).label
        return {"chord_type": chord_type, "root": root, "bass_note": bass}

    @property
    def song_paths(self) -> List[str]:
        """The split's songs, as paths relative to ``root``."""
        return [s.audio_path.relative_to(self.root).as_posix() for s in self.songs]

    def _read_length(self, shift: int) -> int:
        """Samples read for a window shifted by ``shift`` semitones."""
        return int(round(self.num_samples * 2.0 ** (shift / 12)))

    @staticmethod
    def _label_at(song: Song, start: float, length: float) -> Triple:
        overlap = np.minimum(song.segments[:, 1], start + length) - np.maximum(song.segments[:, 0], start)
        return cast(Triple, tuple(int(v) for v in song.labels[int(np.argmax(overlap))]))  # a row of 3

    # ------------------------------------------------------------------ construction
    def _load_split(self, val_fraction: float) -> List[Song]:
        entries = collection.discover(self.root, self.annotations)
        if not entries:
            raise CollectionError(f"data folder {self.root} holds no audio files ({' '.join(AUDIO_SUFFIXES)})")
        split = collection.assign_splits(
            [e.song_id for e in entries],
            self.seed,
            val_fraction,
            annotated=[e.song_id for e in entries if e.annotation is not None],
            **self.split_options,
        )
        mine = [e for e in entries if split[e.song_id] == self.split]
        longest = self._read_length(max(self.shifts)) / self.sample_rate
        log.info(
            "reading the %d songs of the %s split under %s (%d audio files in all)",
            len(mine),
            self.split,
            self.root,
            len(entries),
        )
        songs = []
        for entry in mine:
            try:
                songs.append(self._load_song(entry, longest))
            except SongError as error:
                if self.on_error == "raise":
                    raise error from None
                log.warning("skipping %s", error)
        if not songs:
            raise CollectionError(
                f"data folder {self.root}: no usable songs in the {self.split} split "
                f"({len(mine)} of {len(entries)} audio files are {self.split}; see the warnings above)"
            )
        return songs

    def _load_song(self, entry: Entry, longest: float) -> Song:
        path, lab = entry.audio, entry.annotation
        if lab is None:
            raise SongError(entry.missing_message())
        intervals, labels, rows = collection.read_annotation(lab)
        audio: Union[np.ndarray, MappedAudio]
        try:
            if self.audio_cache is None:
                audio = load_audio(path, self.sample_rate)
            else:
                audio = self.audio_cache.mapped(path, self.sample_rate)
        except AudioError as error:
            raise SongError(str(error)) from None
        peak = audio.peak() if isinstance(audio, MappedAudio) else float(np.max(np.abs(audio)))
        if peak < SILENCE_PEAK:
            raise SongError(f"{path}: the audio is silent (peak below {20 * math.log10(SILENCE_PEAK):.0f} dBFS)")
        duration = audio.shape[0] / self.sample_rate
        overrun = label_overrun(lab, rows, intervals, path, duration)
        if overrun:
            raise SongError(overrun)
        counts = LabelCounts()
        segments, triples = self._map_labels(np.minimum(intervals, duration), labels, counts)
        self._check_usable(path, segments, duration, longest)
        self.counts.merge(counts)  # tallies of the songs used only
        return Song(path, audio, duration, segments, triples)

    def _check_usable(self, path: Path, segments: np.ndarray, duration: float, longest: float) -> None:
        """SongError unless some window can be labelled (clip mode: one chord covers enough of it)."""
        if not valid_starts(segments, duration, longest, self.min_label_fraction).size:
            raise SongError(
                f"{path}: no {longest:.2f}-s window in which one usable chord covers "
                f">= {self.min_label_fraction:g} of it (song too short, or labels all X?)"
            )

    def _map_labels(
        self, intervals: np.ndarray, labels: Sequence[str], counts: LabelCounts
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Usable segments ``(m, 2)`` and their triples ``(m, 3)``; equal neighbours merged."""
        segments: List[List[float]] = []
        triples: List[Triple] = []
        for (start, end), label in zip(intervals, labels):
            triple, outcome = classify_label(label, self.unknown_chords)
            counts.add(label, outcome, max(0.0, end - start), triple)
            if triple is None or end <= start:
                continue
            if triples and triples[-1] == triple and start - segments[-1][1] <= OVERLAP_TOLERANCE_S:
                segments[-1][1] = end
            else:
                segments.append([start, end])
                triples.append(triple)
        return (
            np.asarray(segments, dtype=np.float64).reshape(-1, 2),
            np.asarray(triples, dtype=np.int64).reshape(-1, 3),
        )

    def _log_summary(self) -> None:
        seconds = sum(s.audio.shape[0] for s in self.songs) / self.sample_rate
        megabytes = sum(s.audio.nbytes for s in self.songs) / 1e6
        held = (
            f"mapped from the audio cache {self.audio_cache.folder}"
            if self.audio_cache is not None
            else f"{megabytes:.1f} MB float32 in memory"
        )
        log.info(
            "%s split of %s: %d songs, %.1f s of audio at %d Hz (%s); labels: %s",
            self.split,
            self.root,
            len(self.songs),
            seconds,
            self.sample_rate,
            held,
            self.counts.summary(),
        )

    def __repr__(self) -> str:
        return (
            f"FolderChordDataset(size={self.size}, split={self.split!r}, seed={self.seed}, root='{self.root}', "
            f"songs={len(self.songs)}, sample_rate={self.sample_rate}, num_samples={self.num_samples}, "
            f"pitch_shift={max(self.shifts)})"
        )


# ---------------------------------------------------------------------- helpers
def audio_cache_at(cache_dir: str | Path | None) -> Optional[AudioCache]:
    """``None`` (or ``''``/``'none'``): songs decoded into memory; ``'auto'``: the user's
    cache folder (``chordexp.data.audio_cache.default_cache_dir``), or memory with a warning
    where it cannot be written; else that folder, refused in one line if it cannot be."""
    if cache_dir is None or str(cache_dir).strip().lower() in ("", "none", "null", "off"):
        return None
    if str(cache_dir).strip().lower() != "auto":
        cache = AudioCache(cache_dir)
        cache.check_folder()  # a folder the user named must work
        return cache
    cache = AudioCache(default_cache_dir())
    try:
        cache.check_folder()
    except ConfigValueError as error:  # the default place is not writable here: memory, as cache_dir=null
        log.warning("%s; the songs are kept decoded in memory", str(error).split(";")[0])
        return None
    return cache


def assign_splits(paths: Sequence[Path], root: Path, seed: int, val_fraction: float) -> Dict[Path, str]:
    """path -> ``"train"`` or ``"val"`` by the hash split of ``chordexp.data.collection``
    (annotations beside the audio)."""
    entries = {p: p.relative_to(root).as_posix() for p in paths}
    annotated = [entries[p] for p in paths if p.with_suffix(".lab").is_file()]
    split = collection.assign_splits(list(entries.values()), seed, val_fraction, annotated=annotated)
    return {p: split[song] for p, song in entries.items()}


def valid_starts(segments: np.ndarray, duration: float, length: float, fraction: float) -> np.ndarray:
    """Disjoint sorted ``(n, 2)`` ranges of window starts (s) at which one segment covers at
    least ``fraction`` of a ``length``-s window lying inside ``[0, duration]``.

    Segment ``[a, b]`` covers ``>= fraction * length`` of ``[t, t + length]`` exactly for
    ``t`` in ``[a - (1 - fraction) * length, b - fraction * length]``.
    """
    lo = np.maximum(segments[:, 0] - (1.0 - fraction) * length, 0.0)
    hi = np.minimum(segments[:, 1] - fraction * length, duration - length)
    keep = hi > lo
    ranges = np.stack([lo[keep], hi[keep]], axis=1)
    ranges = ranges[np.argsort(ranges[:, 0], kind="stable")]
    merged: List[List[float]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([float(start), float(end)])
    return np.asarray(merged, dtype=np.float64).reshape(-1, 2)


def sample_union(ranges: np.ndarray, u: float) -> float:
    """The point at fraction ``u`` of the total length of disjoint sorted ``ranges``."""
    lengths = ranges[:, 1] - ranges[:, 0]
    cumulative = np.cumsum(lengths)
    target = u * cumulative[-1]
    i = min(int(np.searchsorted(cumulative, target, side="right")), len(ranges) - 1)
    return float(ranges[i, 1] - (cumulative[i] - target))


def fit_length(audio: np.ndarray, num_samples: int) -> np.ndarray:
    """Trim or zero-pad to exactly ``num_samples`` (resampling can be one sample off)."""
    if audio.shape[0] >= num_samples:
        return np.ascontiguousarray(audio[:num_samples], dtype=np.float32)
    return np.pad(audio, (0, num_samples - audio.shape[0])).astype(np.float32, copy=False)


def _check_root(root: str | Path) -> Path:
    if root is None or str(root) == "???":
        raise ConfigValueError(
            "data folder not set: pass data.dataset.root=/path/to/songs (FolderChordDataset(root=...))"
        )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ConfigValueError(f"data folder {path}: no such directory (data.dataset.root)")
    return path.resolve()


def _check_args(
    split: str,
    sample_rate: int,
    clip_seconds: float,
    val_fraction: float,
    on_error: str,
    unknown_chords: str,
    pitch_shift: int,
    min_label_fraction: float,
) -> None:
    def number(value: object) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    checks = [
        ("split", split, split in FOLDER_SPLITS, f"must be one of {FOLDER_SPLITS}"),
        (
            "sample_rate",
            sample_rate,
            sample_rate_ok(sample_rate),
            f"must be {SAMPLE_RATE_RULE}",
        ),
        ("clip_seconds", clip_seconds, number(clip_seconds) and 0.1 <= clip_seconds <= 60.0, "must be in 0.1..60 s"),
        ("val_fraction", val_fraction, number(val_fraction) and 0.0 < val_fraction < 1.0, "must be in (0, 1)"),
        ("on_error", on_error, on_error in ON_ERROR_MODES, f"must be one of {ON_ERROR_MODES}"),
        (
            "unknown_chords",
            unknown_chords,
            unknown_chords in UNKNOWN_CHORD_MODES,
            f"must be one of {UNKNOWN_CHORD_MODES}",
        ),
        (
            "pitch_shift",
            pitch_shift,
            is_int(pitch_shift) and 0 <= pitch_shift <= 12,
            "must be an integer in 0..12 semitones",
        ),
        (
            "min_label_fraction",
            min_label_fraction,
            number(min_label_fraction) and 0.0 < min_label_fraction <= 1.0,
            "must be in (0, 1]",
        ),
    ]
    for name, value, ok, requirement in checks:
        if not ok:
            raise ConfigValueError(f"FolderChordDataset: {name} {requirement}, got {value!r}")
