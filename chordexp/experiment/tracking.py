"""TensorBoard event files for a training run, written from the Trainer's callback hooks.

``TensorBoardCallback(log_dir, hparams)`` writes two TensorBoard runs under ``log_dir``
(the run folder passes ``<run folder>/tensorboard``):

- ``epoch/``: one point per epoch, x = epoch number: ``train/<loss>``, ``val/<loss>``,
  ``val/<task>_acc``, ``learning_rate``, ``epoch_seconds``; when training ends, the
  config as hparams, with ``hparam/final_*`` and ``hparam/best_*`` as their metrics.
- ``step/``: one point per trainer log point (``log_every``), x = global batch count:
  ``step/<loss>`` and ``step/learning_rate``.

Why two folders: a resumed run must hide what the interrupted run wrote after the
checkpoint it resumes from. TensorBoard does that with a purge marker
(``SummaryWriter(purge_step=S)``: earlier events of the same folder at steps >= S are
dropped when read), and a marker applies to every tag of its folder. Epochs and
batches count on different axes, so each axis gets its own folder and marker:
``epoch/`` purges from epoch ``current_epoch + 1``, ``step/`` from batch
``current_epoch * steps_per_epoch + 1``.

tensorboard is imported when the callback is built, never when this module is imported,
so the command line stays fast.
"""

from __future__ import annotations

import json
import math
import numbers
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Union

from chordexp.training.callbacks import Callback
from chordexp.training.checkpoint import to_plain

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from chordexp.training.trainer import Trainer

HParamValue = Union[bool, int, float, str]

#: History keys reported as ``hparam/final_<key>``; the validation ones also as ``hparam/best_<key>``.
FINAL_KEYS = ("train_loss", "val_loss", "val_chord_type_acc", "val_root_acc", "val_bass_note_acc")
BEST_KEYS = FINAL_KEYS[1:]


def epoch_tag(key: str) -> str:
    """Trainer epoch metric -> tag: ``train_total_loss`` -> ``train/total_loss``,
    ``val_root_acc`` -> ``val/root_acc``; ``learning_rate``, ``epoch_seconds`` stay."""
    for split in ("train", "val"):
        if key.startswith(split + "_"):
            return f"{split}/{key[len(split) + 1 :]}"
    return key


def hparam_value(value: Any) -> HParamValue:
    """A value TensorBoard's hparams accept: bools, numbers and strings stay; None,
    lists and anything else become text (None would otherwise be dropped silently)."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if value is None:
        return "null"
    plain = to_plain(value)
    return json.dumps(plain) if isinstance(plain, (list, dict)) else str(plain)


def flatten_hparams(config: Mapping[str, Any], prefix: str = "") -> Dict[str, HParamValue]:
    """Nested config -> ``{"optimizer.lr": 0.001, "optimizer.betas": "[0.9, 0.999]", ...}``.

    An empty mapping stays one entry (``"{}"``) so that the key is still listed.
    """
    flat: Dict[str, HParamValue] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and len(value) > 0:
            flat.update(flatten_hparams(value, name + "."))
        else:
            flat[name] = hparam_value(value)
    return flat


def summary_metrics(trainer: "Trainer") -> Dict[str, float]:
    """``hparam/final_*``, ``hparam/best_*`` (at ``best_epoch``), ``hparam/best_epoch`` and
    ``hparam/epochs_run`` from the trainer's history: the names of metrics.json, with a
    prefix so they do not clash with the epoch scalars. Empty when no epoch finished."""
    history = trainer.history
    epochs = len(history.get("val_loss", []))
    if epochs == 0:
        return {}
    metrics = {f"hparam/final_{key}": float(history[key][-1]) for key in FINAL_KEYS}
    best = trainer.best_epoch
    if 1 <= best <= epochs:
        metrics.update((f"hparam/best_{key}", float(history[key][best - 1])) for key in BEST_KEYS)
    metrics["hparam/best_epoch"] = float(best)
    metrics["hparam/epochs_run"] = float(epochs)
    return metrics


def wait_past_event_files(folder: Path, max_wait: float = 2.0) -> None:
    """Wait until a new event file in ``folder`` will be read after the existing ones.

    TensorBoard reads a folder's event files in name order, and a name starts with the
    second it was created in (then host, pid and a counter, which do not sort reliably).
    A purge marker read before the events it should drop drops nothing, so a writer
    reopened within the same second (a quick resume, a second ``train()``) first waits
    for the next second. Clock jumps longer than ``max_wait`` are not waited for.
    """
    seconds = [
        int(part)
        for part in (p.name.split(".")[3] for p in Path(folder).glob("events.out.tfevents.*"))
        if part.isdigit()
    ]
    if seconds:
        delay = max(seconds) + 1 - time.time()
        if 0 < delay <= max_wait:
            time.sleep(delay)


class TensorBoardCallback(Callback):
    """Writes a run's scalars and hparams as TensorBoard event files (layout: module doc).

    Writers open at ``on_train_start`` (or the first ``on_step`` when ``train_epoch`` is
    called on its own), flush after every epoch so a killed run keeps its events, and
    close at ``on_train_end``; a later ``train()`` opens them again.
    """

    def __init__(self, log_dir: Path, hparams: Mapping[str, Any]) -> None:
        import torch.utils.tensorboard as torch_tensorboard  # needs tensorboard: fails here, not mid-run

        self._writer_class = torch_tensorboard.SummaryWriter
        self.log_dir = Path(log_dir)
        self.hparams = flatten_hparams(hparams)
        self._epoch_writer: Optional["SummaryWriter"] = None
        self._step_writer: Optional["SummaryWriter"] = None

    # ------------------------------------------------------------------ hooks
    def on_train_start(self, trainer: "Trainer") -> None:
        self.close()
        self._open(trainer)

    def on_step(self, trainer: "Trainer", step: int, metrics: Mapping[str, float]) -> None:
        self._open(trainer)
        assert self._step_writer is not None
        for key, value in metrics.items():
            self._step_writer.add_scalar(f"step/{key}", float(value), step)

    def on_epoch_end(self, trainer: "Trainer", epoch: int, metrics: Mapping[str, float]) -> None:
        self._open(trainer)
        assert self._epoch_writer is not None
        for key, value in metrics.items():
            self._epoch_writer.add_scalar(epoch_tag(key), float(value), epoch)
        self.flush()

    def on_train_end(self, trainer: "Trainer") -> None:
        if self._epoch_writer is not None:
            self._write_hparams(trainer)
        self.close()

    # ---------------------------------------------------------------- writers
    def flush(self) -> None:
        for writer in (self._epoch_writer, self._step_writer):
            if writer is not None:
                writer.flush()

    def close(self) -> None:
        for writer in (self._epoch_writer, self._step_writer):
            if writer is not None:
                writer.close()
        self._epoch_writer = self._step_writer = None

    def _open(self, trainer: "Trainer") -> None:
        """Open both writers, each with a purge marker just past what ``trainer`` has done,
        so events an interrupted run wrote beyond the resumed checkpoint are dropped."""
        if self._epoch_writer is not None:
            return
        done = trainer.current_epoch
        for folder in (self.log_dir / "epoch", self.log_dir / "step"):
            wait_past_event_files(folder)
        self._epoch_writer = self._writer_class(str(self.log_dir / "epoch"), purge_step=done + 1)
        self._step_writer = self._writer_class(
            str(self.log_dir / "step"), purge_step=done * trainer.steps_per_epoch + 1
        )

    def _write_hparams(self, trainer: "Trainer") -> None:
        """The config and summary metrics for TensorBoard's HParams tab, in ``epoch/`` at
        the last epoch (a later resume that purges that epoch replaces them)."""
        from torch.utils.tensorboard import summary  # tensorboard: imported with the callback, not this module

        metrics = {key: value for key, value in summary_metrics(trainer).items() if not math.isnan(value)}
        step = trainer.current_epoch
        writer = self._epoch_writer
        assert writer is not None and writer.file_writer is not None  # on_train_end checks; open writers have one
        for event in summary.hparams(dict(self.hparams), metrics):
            writer.file_writer.add_summary(event, step)
        for key, value in metrics.items():
            writer.add_scalar(key, value, step)
        writer.flush()
