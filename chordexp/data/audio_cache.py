"""Decoded, resampled audio written once to disk and memory-mapped afterwards.

A collection of real songs is tens of hours: decoding it into memory in every process
(44.1 kHz float32 is 10.6 MB a minute) and again on every run does not scale. The cache
keeps one ``.npy`` per (file, sample rate) in a folder; later runs, DataLoader workers and
every DDP rank of a node map that file read-only, so the pages are the page cache's,
shared between processes and dropped under memory pressure instead of swapped.

Keys and invalidation: an entry's name hashes the audio file's resolved path and the
sample rate (its owner), then the file's size and modification time (ns) (its version),
so an edited or replaced file, or another rate, is a new entry; writing a new version
removes the stale versions of the same file and rate.
Writes go to a temporary file in the cache folder, are fsynced and renamed over the
entry: a killed writer leaves a ``.tmp`` (removed by the next writer of that entry),
never a half-written ``.npy``. An entry whose size does not match its header (a disk
that lied, a truncated copy) is decoded again. A folder that cannot hold the cache is
refused up front (``check_folder``, naming ``data.cache_dir``); a write that fails later
(a full disk, a quota) costs speed, not the run: that song's decoded audio is kept in
memory, with one warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from chordexp.audio import load_audio
from chordexp.errors import ConfigValueError

log = logging.getLogger(__name__)

#: bump when the stored array changes meaning (dtype, layout, resampler)
FORMAT = 1
SUFFIX = ".npy"


def default_cache_dir() -> Path:
    """``$CHORDEXP_CACHE``, else ``$XDG_CACHE_HOME/chordexp/audio``, else
    ``~/.cache/chordexp/audio``: outside any repository, shared by every run of the user."""
    explicit = os.environ.get("CHORDEXP_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "chordexp" / "audio"


class AudioCache:
    """``load(path, sample_rate)``: the audio as a read-only memory-mapped float32 array,
    decoded and resampled by ``decode(path, sample_rate)`` on the first call only."""

    def __init__(self, folder: str | Path, decode: Optional[Callable[[Path, int], np.ndarray]] = None) -> None:
        self.folder = Path(folder).expanduser()
        self.decode: Callable[[Path, int], np.ndarray] = load_audio if decode is None else decode
        self.write_failed = False  # a write failed once (warned): later songs stay in memory too

    def check_folder(self, key: str = "data.cache_dir") -> None:
        """ConfigValueError (one line, naming ``key``) when the cache folder cannot be made
        or written: a file in its place, no permission, a read-only file system."""
        problem = None
        if self.folder.exists() and not self.folder.is_dir():
            problem = "is a file, not a folder"
        else:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                tempfile.TemporaryFile(dir=self.folder).close()  # a file can be made there, and is gone
            except OSError as error:
                problem = f"cannot be written ({error.strerror or type(error).__name__})"
        if problem:
            raise ConfigValueError(
                f"{key}={self.folder}: the audio cache folder {problem}; give another folder, "
                f"or {key}=null to keep the decoded songs in memory"
            )

    def entry(self, path: str | Path, sample_rate: int) -> Path:
        """Where ``path`` at ``sample_rate`` is (or will be) cached: ``OWNER-VERSION.npy``,
        OWNER naming the file and rate, VERSION its size and modification time."""
        path = Path(path).resolve()
        stat = path.stat()
        owner = hashlib.sha1(f"{path}\0{int(sample_rate)}\0{FORMAT}".encode()).hexdigest()[:16]
        version = hashlib.sha1(f"{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        return self.folder / f"{owner}-{version}{SUFFIX}"

    def load(self, path: str | Path, sample_rate: int) -> np.ndarray:
        entry = self.entry(path, sample_rate)
        mapped = _map(entry)
        if mapped is not None:
            return mapped
        audio = np.ascontiguousarray(self.decode(Path(path), int(sample_rate)), dtype=np.float32)
        if self.write_failed:
            return audio
        try:
            self._write(entry, audio)
        except OSError as error:  # a full disk, a quota, a folder gone read-only: keep the decoded audio
            self.write_failed = True
            log.warning(
                "audio cache %s (data.cache_dir): cannot write %s (%s); the songs not cached yet are kept "
                "decoded in memory",
                self.folder,
                entry.name,
                error.strerror or type(error).__name__,
            )
            return audio
        mapped = _map(entry)
        if mapped is None:  # the folder does not keep what is written (full disk, ...): serve from memory
            log.warning("audio cache: could not read back %s; using the decoded audio", entry)
            return audio
        return mapped

    def mapped(self, path: str | Path, sample_rate: int) -> "MappedAudio | np.ndarray":
        """The cached audio as a :class:`MappedAudio` (decoded first when not cached): what a
        dataset keeps per song, so neither its memory nor its pickled copy in a DataLoader
        worker grows with the collection."""
        audio = self.load(path, sample_rate)
        if not isinstance(audio, np.memmap) or audio.filename is None:
            return audio
        entry, length = Path(audio.filename), int(audio.shape[0])
        del audio
        return MappedAudio(entry, length)

    def _write(self, entry: Path, audio: np.ndarray) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{entry.stem}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, audio, allow_pickle=False)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, entry)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._remove_stale(entry)

    def _remove_stale(self, entry: Path) -> None:
        """Earlier versions of the same file at the same rate (edited or replaced since),
        and temporary files a killed writer of this entry left."""
        owner = entry.name.split("-", 1)[0]
        for other in self.folder.glob(f"{owner}-*{SUFFIX}"):
            if other != entry:
                with contextlib.suppress(OSError):
                    other.unlink()
        for leftover in self.folder.glob(f".{entry.stem}.*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()

    def size_bytes(self) -> int:
        """What the cache folder holds (entries only)."""
        return sum(p.stat().st_size for p in self.folder.glob(f"*{SUFFIX}")) if self.folder.is_dir() else 0


def _map(entry: Path) -> Optional[np.ndarray]:
    """The entry mapped read-only, or None when it is missing or not whole."""
    try:
        mapped = np.load(entry, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        return None
    except (ValueError, OSError, EOFError) as error:  # truncated or not an array: decode again
        log.warning("audio cache: %s is not a whole entry (%s); decoding again", entry.name, error)
        return None
    if mapped.dtype != np.float32 or mapped.ndim != 1:
        log.warning(
            "audio cache: %s holds %s %s, not mono float32; decoding again", entry.name, mapped.dtype, mapped.shape
        )
        return None
    return mapped


class MappedAudio:
    """A cached song's samples, mapped only while a slice is read: ``audio[a:b]`` opens
    the entry read-only, copies the slice out and closes it, so the process's resident
    memory holds the windows it reads, not the songs (the page cache, shared by every
    process of the machine, holds the rest). Pickles as its path: a DataLoader worker
    maps the same file instead of receiving a copy."""

    dtype = np.dtype(np.float32)
    ndim = 1

    def __init__(self, entry: Path, length: int) -> None:
        self.entry, self.shape = Path(entry), (int(length),)

    @property
    def nbytes(self) -> int:
        return 0  # nothing of it is held in this process's memory

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        mapped = np.load(self.entry, mmap_mode="r", allow_pickle=False)
        try:
            return np.array(mapped[key], dtype=np.float32)
        finally:
            mapped._mmap.close()  # release the mapping now, not at gc

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def peak(self, chunk: int = 1 << 20) -> float:
        """max |sample|, read in chunks (no copy of the whole song)."""
        return max((float(np.max(np.abs(self[i : i + chunk]))) for i in range(0, len(self), chunk)), default=0.0)

    def __repr__(self) -> str:
        return f"MappedAudio({self.entry.name}, {self.shape[0]} samples)"
