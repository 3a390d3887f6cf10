"""A collection of annotated songs: which audio goes with which annotation, and which split.

One place for what both folder datasets (``data=folder``, ``data=folder_songs``) and
``chordexp.check_data`` need to know about a collection on disk:

- Discovery: audio files under ``root`` (recursively, hidden files skipped). A song's
  id is its audio path relative to ``root`` (``album/song.wav``). Its annotation is
  ``<base>.lab`` or else ``<base>.jams``, where ``<base>`` is the audio path without its
  suffix, beside the audio (``annotations=None``) or at the same relative path under
  ``annotations`` (the parallel tree of the public datasets: ``audio/<album>/<song>.wav``
  with ``annotations/<album>/<song>.lab``).
- Reading: ``.lab`` through ``chordexp.labfile.load_lab``; JAMS through the ``jams``
  library, the first annotation of namespace ``chord`` or ``chord_harte``. Every problem
  is a :class:`SongError`, one line naming the file (and line, or JAMS observation).
- Splits: a pure function of the song (or its group) id, the seed and the options, so
  adding a song never moves another: a hash split (``val_fraction``), k folds
  (``num_folds``/``fold``: the held-out fold is ``val``), or an explicit split file.
  ``group_depth=N`` keeps songs sharing their first ``N`` folders (an artist, an album)
  in one split.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from chordexp.audio_names import is_audio_file, walk_files
from chordexp.errors import ConfigValueError, UserError
from chordexp.labfile import LabFileError, check_intervals, check_labels, load_lab

ANNOTATION_SUFFIXES: Tuple[str, ...] = (".lab", ".jams")  # looked for in this order
JAMS_NAMESPACES: Tuple[str, ...] = ("chord", "chord_harte")
OVERLAP_TOLERANCE_S = 1e-3  # rounding in published .lab files
SPLITS: Tuple[str, ...] = ("train", "val")
EXCLUDED = "excluded"  # a song a split file does not list


#: Labels may run this far past the end of the audio (then clipped); further, the song
#: is refused by training and counted an error by check_data (one rule for both).
LABEL_OVERRUN_S = 1.0


def label_overrun(
    annotation: Path, rows: Sequence[int], intervals: np.ndarray, audio: Path, duration: float
) -> Optional[str]:
    """What is wrong when the labels of ``annotation`` run past ``audio``'s ``duration``
    by more than ``LABEL_OVERRUN_S``; None when they do not."""
    if len(intervals) == 0:
        return None
    last = int(np.argmax(intervals[:, 1]))
    if intervals[last, 1] <= duration + LABEL_OVERRUN_S:
        return None
    return (
        f"{annotation}:{rows[last]}: labels run to {_seconds(intervals[last, 1])} s but {audio.name} "
        f"lasts {duration:.2f} s (wrong annotation, or truncated audio?)"
    )


def _seconds(value: float) -> str:
    return f"{value:.2f}" if abs(value) < 1e7 else f"{value:.3g}"  # not a 309-digit number for 1e308


class SongError(UserError, ValueError):
    """One song that cannot be used; the message is one line naming the file."""


class CollectionError(UserError, ValueError):
    """The collection as a whole cannot be used (no audio, no usable song in a split, a bad
    split file); the message is one line naming the folder or the file and line."""


@dataclass(frozen=True)
class Entry:
    """One audio file of the collection and where its annotation is (None: none found)."""

    song_id: str  # audio path relative to the collection root, posix
    audio: Path
    annotation: Optional[Path]
    expected: Path  # the annotation's path without a suffix (for messages)

    def missing_message(self) -> str:
        names = " or ".join(self.expected.name + s for s in ANNOTATION_SUFFIXES)
        where = "beside it" if self.expected.parent == self.audio.parent else f"in {self.expected.parent}"
        return f"{self.audio}: no .lab or .jams annotation {where} (expected {names})"


# ---------------------------------------------------------------------- discovery
def find_audio(root: Path) -> List[Path]:
    """Audio files under ``root``, recursively, sorted; hidden files and folders skipped."""
    return sorted(
        p
        for p in walk_files(root)
        if is_audio_file(p) and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def annotation_root(annotations: Optional[str | Path]) -> Optional[Path]:
    """``annotations`` as an existing folder, or None (beside the audio); ValueError naming it."""
    if annotations is None or str(annotations) in ("", "None", "null"):
        return None
    path = Path(annotations).expanduser()
    if not path.is_dir():
        raise ConfigValueError(f"annotation folder {path}: no such directory (data.dataset.annotations)")
    return path.resolve()


def discover(root: Path, annotations: Optional[Path] = None) -> List[Entry]:
    """Every audio file under ``root`` with its annotation (module docstring), sorted by id."""
    entries = []
    for audio in find_audio(root):
        relative = audio.relative_to(root)
        base = (annotations / relative if annotations is not None else audio).with_suffix("")
        found = next(
            (base.with_name(base.name + s) for s in ANNOTATION_SUFFIXES if base.with_name(base.name + s).is_file()),
            None,
        )
        entries.append(Entry(relative.as_posix(), audio, found, base))
    return entries


# ---------------------------------------------------------------------- reading
def read_annotation(path: Path) -> Tuple[np.ndarray, List[str], List[int]]:
    """``.lab`` or ``.jams`` -> ``(intervals (n, 2) s, labels, rows)``; ``rows`` are line
    numbers (``.lab``) or observation numbers (JAMS), 1-based. SongError naming
    ``file:row`` for anything unreadable and for overlapping intervals."""
    intervals, labels, rows = load_intervals(path)
    problems = overlaps(path, intervals, rows)
    if problems:
        raise SongError(problems[0])
    return intervals, labels, rows


def load_intervals(path: Path) -> Tuple[np.ndarray, List[str], List[int]]:
    """Like :func:`read_annotation` without the overlap check (``chordexp.check_data``
    reports every overlap)."""
    return read_jams(path) if path.suffix.lower() == ".jams" else read_lab(path)


def overlaps(path: Path, intervals: np.ndarray, rows: Sequence[int]) -> List[str]:
    """One line per interval that starts before the previous one ends (beyond rounding)."""
    return [
        f"{path}:{rows[i]}: starts at {intervals[i, 0]:g} s, before the previous interval ends "
        f"({intervals[i - 1, 1]:g} s); intervals must not overlap"
        for i in range(1, len(intervals))
        if intervals[i, 0] < intervals[i - 1, 1] - OVERLAP_TOLERANCE_S
    ]


def read_lab(path: Path) -> Tuple[np.ndarray, List[str], List[int]]:
    """``.lab`` -> ``(intervals, labels, line numbers)`` via ``chordexp.labfile.load_lab``."""
    try:
        intervals, labels = load_lab(path)
    except LabFileError as error:
        raise SongError(str(error)) from None
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [i + 1 for i, line in enumerate(lines) if line.strip() and not line.startswith("#")]
    return intervals, labels, rows


def read_jams(path: Path) -> Tuple[np.ndarray, List[str], List[int]]:
    """The first ``chord`` / ``chord_harte`` annotation of a JAMS file, checked like a ``.lab``."""
    jams = _import_jams(path)
    try:
        jam = jams.load(str(path), validate=False)
    except Exception as error:  # jams raises plain Exceptions, JSON and schema errors
        detail = " ".join(str(error).split())[:160]
        raise SongError(f"{path}: not a readable JAMS file ({type(error).__name__}: {detail})") from None
    found = [a for a in jam.annotations if a.namespace in JAMS_NAMESPACES]
    if not found:
        held = sorted({a.namespace for a in jam.annotations}) or ["none"]
        raise SongError(
            f"{path}: no annotation of namespace {' or '.join(JAMS_NAMESPACES)} (it holds: {', '.join(held)})"
        )
    intervals, values = found[0].to_interval_values()
    intervals = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    labels = [str(v) for v in values]
    if not labels:
        raise SongError(f"{path}: its {found[0].namespace} annotation holds no observations")
    rows = list(range(1, len(labels) + 1))
    try:
        check_intervals(path, intervals, rows)
        check_labels(path, labels, rows)
    except LabFileError as error:
        raise SongError(str(error)) from None
    return intervals, labels, rows


def _import_jams(path: Path):
    try:
        import jams
    except ImportError:
        raise SongError(
            f"{path}: reading JAMS files needs the jams package: pip install 'chordexp[jams]' (or pip install jams)"
        ) from None
    return jams


# ---------------------------------------------------------------------- splits
def split_hash(seed: int, key: str) -> float:
    """A stable pseudo-random number in [0, 1) for a song or group (same on every machine)."""
    digest = hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def group_key(song_id: str, group_depth: int) -> str:
    """The first ``group_depth`` folders of ``song_id`` (the song itself when 0 or when it
    lies less deep): songs with one key always share a split."""
    parts = song_id.split("/")
    if group_depth <= 0 or len(parts) <= group_depth:
        return song_id
    return "/".join(parts[:group_depth]) + "/"


def fold_of(key: str, seed: int, num_folds: int) -> int:
    """The fold (0..num_folds-1) a song or group's hash falls in: a pure function of its
    key and the seed (``assign_folds`` moves a few keys when a fold would be empty)."""
    return min(int(split_hash(seed, key) * num_folds), num_folds - 1)


def assign_folds(keys: Sequence[str], seed: int, num_folds: int) -> Dict[str, int]:
    """key -> fold. Each key takes the fold its hash falls in (``fold_of``), so adding a
    song moves no other song; but hashes spread unevenly over a few keys (5 folds of 10
    songs left one empty), so while there are at least as many keys as folds, an empty
    fold takes, from a fold holding more than one key, the key whose hash lies nearest
    to it. The result depends only on the set of keys and the seed."""
    unique = sorted(set(keys))
    u = {key: split_hash(seed, key) for key in unique}
    folds = {key: fold_of(key, seed, num_folds) for key in unique}
    if len(unique) < num_folds:
        return folds
    for target in range(num_folds):
        counts = Counter(folds.values())
        if counts[target]:
            continue
        low, high = target / num_folds, (target + 1) / num_folds
        donors = [key for key in unique if counts[folds[key]] > 1]
        nearest = min(donors, key=lambda key: (max(low - u[key], u[key] - high, 0.0), key))
        folds[nearest] = target
    return folds


def assign_splits(
    song_ids: Sequence[str],
    seed: int,
    val_fraction: float = 0.1,
    *,
    num_folds: int = 0,
    fold: int = 0,
    group_depth: int = 0,
    split_file: Optional[Path] = None,
    annotated: Optional[Sequence[str]] = None,
) -> Dict[str, str]:
    """song id -> ``"train"``, ``"val"`` (or ``"excluded"`` by a split file).

    - ``split_file``: the file decides (:func:`read_split_file`).
    - ``num_folds >= 2``: songs (groups) of fold ``fold`` are val, the rest train;
      ValueError when that fold or the rest is empty.
    - otherwise val when the hash of the song (group) falls below ``val_fraction``; when one
      split would be empty, the ``annotated`` song's group nearest the threshold moves over.
    """
    if split_file is not None:
        return read_split_file(split_file, song_ids)
    keys = {song: group_key(song, group_depth) for song in song_ids}
    if num_folds >= 2:
        folds = assign_folds(list(keys.values()), seed, num_folds)
        split = {song: ("val" if folds[keys[song]] == fold else "train") for song in song_ids}
        for side in SPLITS:
            if song_ids and side not in split.values():
                raise ConfigValueError(
                    f"fold {fold} of {num_folds} leaves the {side} split empty "
                    f"({len(set(keys.values()))} songs or groups in all): use fewer folds (data.num_folds)"
                )
        return split
    u = {song: split_hash(seed, keys[song]) for song in song_ids}
    split = {song: ("val" if u[song] < val_fraction else "train") for song in song_ids}
    candidates = [s for s in (annotated if annotated is not None else song_ids) if s in u] or list(song_ids)
    if len({keys[s] for s in candidates}) >= 2:
        for side, pick in (("val", min), ("train", max)):
            if not any(split[s] == side for s in candidates):
                moved = keys[pick(candidates, key=u.__getitem__)]
                split.update({s: side for s in song_ids if keys[s] == moved})
    return split


def read_split_file(path: Path, song_ids: Sequence[str]) -> Dict[str, str]:
    """A split file: one ``SPLIT SONG_ID`` per line (``train`` or ``val``, then the song's
    path relative to the root, with or without its audio suffix); ``#`` comments and blank
    lines ignored. Songs it does not list are ``"excluded"``. ValueError (``file:line``)
    for an unknown split, a song listed twice or a song that is not in the collection."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CollectionError(f"split file {path}: no such file (data.dataset.split_file)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CollectionError(f"split file {path}: cannot read it ({error})") from None
    by_name: Dict[str, str] = {song: song for song in song_ids}
    stems: Dict[str, List[str]] = {}
    song: Optional[str]
    for song in song_ids:
        stems.setdefault(song.rsplit(".", 1)[0], []).append(song)
    split = dict.fromkeys(song_ids, EXCLUDED)
    seen: Dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        side, name = (line.split(None, 1) + [""])[:2]
        name = name.strip()
        if side not in SPLITS or not name:
            raise CollectionError(f"{path}:{number}: want 'train SONG_ID' or 'val SONG_ID', got {line!r}")
        song = by_name.get(name) or (stems[name][0] if len(stems.get(name, ())) == 1 else None)
        if song is None:
            what = (
                "names several audio files"
                if len(stems.get(name, ())) > 1
                else "is not an audio file of the collection"
            )
            raise CollectionError(
                f"{path}:{number}: {name!r} {what} (song ids are paths relative to data.dataset.root)"
            )
        if song in seen:
            raise CollectionError(f"{path}:{number}: {name!r} is listed already on line {seen[song]}")
        seen[song] = number
        split[song] = side
    return split


def check_split_options(num_folds: int, fold: int, group_depth: int, split_file: object = None) -> Optional[str]:
    """None, or what is wrong with the split options (for the dataset's argument check)."""
    if split_file not in (None, "") and num_folds:
        return f"split_file and num_folds={num_folds} both choose the split: give one of them"
    if not isinstance(num_folds, int) or isinstance(num_folds, bool) or num_folds < 0 or num_folds == 1:
        return f"num_folds must be 0 (a val_fraction split) or an integer >= 2, got {num_folds!r}"
    if not isinstance(fold, int) or isinstance(fold, bool) or not 0 <= fold < max(num_folds, 1):
        return f"fold must be an integer in 0..{max(num_folds, 1) - 1} (num_folds={num_folds}), got {fold!r}"
    if not isinstance(group_depth, int) or isinstance(group_depth, bool) or group_depth < 0:
        return f"group_depth must be an integer >= 0, got {group_depth!r}"
    return None
