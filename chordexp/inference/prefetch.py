"""Decode, resample (and analyse) audio files in worker processes, results in order.

``python -m chordexp.predict`` on a folder reads, resamples and runs the model on each
file; ``decoded_files`` hands that to a ``DataLoader``'s worker processes (one torch
thread each: on a small model, one file per core goes faster than one file over all
cores), which work ahead while the caller decodes chords and writes, and gives the
results back in the files' order, so what is written does not depend on the number of
workers. A file that cannot be read comes back as its ``AudioError`` (the caller
reports it and goes on), not as an exception in a worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple, Union, cast

import numpy as np
from torch.utils.data import DataLoader, Dataset

from chordexp.audio import AudioError, load_audio
from chordexp.data.loaders import single_thread_worker, worker_context

#: (path, (samples, what ``analyse`` made of them or None) or the file's AudioError)
Decoded = Tuple[Path, Union[Tuple[np.ndarray, Any], AudioError]]


MAX_WORKERS = 8  # each worker holds a copy of the model and a decoded song: ~200 MB


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_workers(files: int) -> int:
    """Worker processes for ``files`` files: none for one file (starting a worker costs
    more than it saves) or on two cores or fewer (the bench: a folder went at 692x real
    time with none against 594x with one per core, the workers and the model fighting
    over two cores), else one per core, at most 8, never more than there are files."""
    cores = usable_cores()
    if files <= 1 or cores <= 2:
        return 0
    return max(1, min(MAX_WORKERS, cores, files))


def bounded_workers(asked: int, files: int) -> int:
    """``asked`` workers, but never more than there are files, cores, or ``MAX_WORKERS``
    (``workers=1000`` once forked 312 processes for 3 files); says so when it cuts."""
    bound = max(1, min(MAX_WORKERS, 2 * usable_cores(), files)) if files else 0
    if asked > bound:
        print(
            f"workers={asked}: using {bound} (at most one per file, two per core and {MAX_WORKERS} in all)",
            file=sys.stderr,
        )
        return bound
    return asked


class _Files:
    """Map-style dataset: index -> ``(index, (samples, analysis or None) or AudioError)``."""

    def __init__(self, files: Sequence[Path], sample_rate: int, analyse: Optional[Callable[[np.ndarray], Any]]):
        self.files, self.sample_rate, self.analyse = list(files), sample_rate, analyse

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        try:
            audio = load_audio(self.files[index], self.sample_rate)
            return index, (audio, None if self.analyse is None else self.analyse(audio))
        except AudioError as error:
            return index, error


PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): a signal for this process when its parent dies


def transcription_worker(worker_id: int, parent: int = 0) -> None:
    """``worker_init_fn`` of the transcription workers: one thread each, and (Linux)
    killed with their parent: a ``predict`` stopped by SIGTERM or SIGKILL left its
    workers analysing songs for minutes, 600 MB of orphans."""
    single_thread_worker(worker_id)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if parent and os.getppid() != parent:  # the parent died before the line above ran
            os._exit(1)


def _keep(item):
    return item  # no collation: numpy arrays and errors pass through as they are


def decoded_files(
    files: Sequence[Path],
    sample_rate: int,
    workers: Optional[int] = None,
    analyse: Optional[Callable[[np.ndarray], Any]] = None,
) -> Iterator[Decoded]:
    """``(path, (float32 mono samples at sample_rate, analyse(samples) or None), or the
    AudioError)`` for each file, in order; ``workers`` processes work ahead (None:
    ``default_workers``; 0: here, one file at a time, and ``analyse`` is not called: the
    caller does it, as before)."""
    files = list(files)
    workers = default_workers(len(files)) if workers is None else bounded_workers(workers, len(files))
    dataset = _Files(files, sample_rate, analyse if workers else None)
    if workers == 0:
        for index in range(len(files)):
            yield files[index], dataset[index][1]
        return
    # a DataLoader takes any map-style dataset; _Files does not subclass torch's Dataset
    loader = DataLoader(
        cast("Dataset[Tuple[int, Any]]", dataset),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        collate_fn=_keep,
        prefetch_factor=2,
        worker_init_fn=functools.partial(transcription_worker, parent=os.getpid()),
        multiprocessing_context=worker_context(),
    )
    for index, result in loader:
        yield files[index], result
