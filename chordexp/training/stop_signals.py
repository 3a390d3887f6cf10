"""SIGTERM and SIGINT (a cluster's pre-emption, Ctrl-C) as a request to stop training.

The first signal asks the trainer to stop at its next safe point (after the current
batch; the partial epoch is dropped and ``last.pt`` keeps the last completed epoch),
so the run ends with intact checkpoints and history and can be resumed. A second
signal exits at once with status 128 + the signal's number: the user insists, and the
checkpoints on disk are whole anyway because every write is atomic.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from typing import Iterator, Tuple

from chordexp.training.trainer import Trainer

logger = logging.getLogger(__name__)

STOP_SIGNALS: Tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals(trainer: Trainer, signals: Tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Within the block, the first of ``signals`` calls ``trainer.request_stop(name)``; a
    second one exits the process at once. Handlers are restored after the block. Off the
    main thread (where Python cannot take signals) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if trainer.stop_reason is not None:
            logger.error("second signal (%s): exiting at once", name)
            logging.shutdown()
            os._exit(128 + signum)
        logger.warning("%s received: stopping after the current batch (send it again to exit at once)", name)
        trainer.request_stop(name)

    previous = {sig: signal.signal(sig, handle) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
