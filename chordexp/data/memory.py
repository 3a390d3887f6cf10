"""Render a dataset once, keep it in memory, serve it for every epoch.

Rendering a clip costs about as much CPU as a training step on it; on a 2-core machine
that halves training speed when it is repeated every epoch. ``InMemoryDataset`` renders
every item once (in parallel worker processes), stores the audio as float16 (2 bytes a
sample: 1 s at 44.1 kHz is 88 kB) and serves the same items afterwards. Items are the
wrapped dataset's own, so results do not depend on whether the cache is on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Sized, Tuple, cast

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from chordexp.data.loaders import worker_context

log = logging.getLogger(__name__)


class Progress:
    """Progress of a step that takes more than a few seconds: a bar on a terminal, else a
    log line every ``every`` seconds (a run's log must not stay silent for minutes)."""

    def __init__(self, what: str, total: int, unit: str, every: float = 10.0) -> None:
        self.what, self.total, self.unit, self.every = what, total, unit, every
        self.started = self.last = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            self.bar = tqdm(total=total, desc=what, unit=f" {unit}", leave=False)
        self.done = 0

    def update(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(done - self.done)
        now = time.perf_counter()
        if self.bar is None and now - self.last >= self.every and done < self.total:
            rate = done / max(now - self.started, 1e-9)
            left = (self.total - done) / max(rate, 1e-9)
            log.info(
                "%s: %d of %d %s (%.0f s so far, about %.0f s to go)",
                self.what,
                done,
                self.total,
                self.unit,
                now - self.started,
                left,
            )
            self.last = now
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


#: Signals that stop a run (a cluster's pre-emption, Ctrl-C).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def signals_between_batches() -> Iterator[List[int]]:
    """Within the block, a stop signal is noted (the list holds its number) instead of
    acted on, and delivered to the handler it replaced when the block ends: the loop
    checks the list after each batch and stops. A handler that raises in the middle of a
    DataLoader's queue operations can leave a queue lock held, and the loader's shutdown
    then waits on it for ever (a run that SIGTERM cannot end). A second signal exits at
    once; a forked worker takes the default action. Off the main thread: nothing changes."""
    pending: List[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return
    owner = os.getpid()

    def note(signum: int, frame: Any) -> None:
        if os.getpid() != owner:  # a forked DataLoader worker
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        elif pending:  # the user insists
            os._exit(128 + signum)
        else:
            pending.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in STOP_SIGNALS if signal.getsignal(sig) != signal.SIG_IGN}
    try:
        yield pending
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if pending:  # the loader is shut down by now: act on the signal as the old handler would
        handler = previous[signal.Signals(pending[0])]
        if callable(handler):
            handler(pending[0], None)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), pending[0])
        raise SystemExit(128 + pending[0])  # a handler that returned: the rendering is not whole


class InMemoryDataset(Dataset):
    """All items of ``dataset`` rendered up front; audio ``(N, num_samples)`` float16,
    targets ``(N, *item_shape)`` in their own dtype (clip labels ``()``, frame labels and
    masks ``(T,)``). Every item must have the same shapes (as batching needs anyway)."""

    def __init__(self, dataset: Dataset, num_workers: int = 0, batch_size: int = 64) -> None:
        started = time.perf_counter()
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            multiprocessing_context=worker_context() if num_workers > 0 else None,
        )
        self.audio = torch.empty(0, dtype=torch.float16)
        self.targets: Dict[str, torch.Tensor] = {}
        progress = Progress("rendering", len(cast(Sized, dataset)), "clips")
        with signals_between_batches() as stop:
            batches = iter(loader)
            self._fill(batches, len(cast(Sized, dataset)), progress, stop)
            del batches  # its workers shut down here, before a noted signal is acted on
        progress.close()
        log.info(
            "rendered %d clips into memory (%.0f MB) in %.1f s",
            len(self.audio),
            self.audio.numel() * 2 / 1e6,
            time.perf_counter() - started,
        )

    def _fill(self, batches: Iterator[Any], size: int, progress: Progress, stop: List[int]) -> None:
        """Copy ``batches`` of a ``size``-item dataset in; return early when a stop signal
        arrived (``stop``)."""
        filled = 0
        for audio, targets in batches:
            if filled == 0:  # allocate once: no second copy of the whole set in memory
                self.audio = torch.empty((size, *audio.shape[1:]), dtype=torch.float16)
                # per-item targets of any shape: scalars, or (T,) frame labels and bool masks
                self.targets = {
                    key: torch.empty((size, *value.shape[1:]), dtype=value.dtype) for key, value in targets.items()
                }
            self.audio[filled : filled + len(audio)] = audio
            for key, value in targets.items():
                self.targets[key][filled : filled + len(audio)] = value
            filled += len(audio)
            progress.update(filled)
            if stop:
                return

    def __len__(self) -> int:
        return len(self.audio)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        return self.audio[index].float(), {key: value[index] for key, value in self.targets.items()}
