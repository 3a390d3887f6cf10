"""``logger=csv``: ``<run folder>/metrics.csv``, one row per epoch, a column per metric.

The whole file is rewritten (atomically) after every epoch: it is small, a killed run
keeps every finished epoch, and a resume drops rows after the epoch it resumes from
before appending, so no epoch appears twice. A metric that appears later (or only in
some epochs) gets its column; earlier rows leave it empty.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping

from chordexp.atomic import atomic_write_text
from chordexp.loggers.base import RunLogger, inside

if TYPE_CHECKING:
    from chordexp.training.trainer import Trainer


class CSVLogger(RunLogger):
    """One row per epoch in ``<run_folder>/<filename>``."""

    def __init__(self, run_folder: Path, run_config: Mapping[str, Any], filename: str = "metrics.csv") -> None:
        self.path = inside(run_folder, filename, "logger.csv.filename")
        self.rows: List[Dict[str, str]] = []
        self.columns: List[str] = ["epoch"]

    def on_train_start(self, trainer: "Trainer") -> None:
        """Keep the rows of epochs the trainer has done (a resume), drop later ones."""
        self.rows, self.columns = [], ["epoch"]
        if self.path.is_file():
            with open(self.path, newline="") as handle:
                reader = csv.DictReader(handle)
                self.columns = list(reader.fieldnames or ["epoch"])
                self.rows = [row for row in reader if int(row["epoch"]) <= trainer.current_epoch]

    def on_epoch_end(self, trainer: "Trainer", epoch: int, metrics: Mapping[str, float]) -> None:
        self.rows = [row for row in self.rows if int(row["epoch"]) < epoch]
        self.rows.append({"epoch": str(epoch), **{key: repr(float(value)) for key, value in metrics.items()}})
        self.columns += [key for key in metrics if key not in self.columns]
        self._write()

    def _write(self) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self.columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, text.getvalue())
