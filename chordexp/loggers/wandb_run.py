"""``logger=wandb``: one Weights & Biases run per run folder, offline by default.

Offline, wandb writes ``<run folder>/wandb/offline-run-<time>-<id>/run-<id>.wandb`` (one
folder per session: a resume adds one); ``wandb sync <run folder>/wandb/offline-run-*``
uploads them later as one run. Logged: the config, every epoch's metrics at
``step=epoch`` (with an ``epoch`` key), and when the run ends metrics.json's numbers as
the run summary and the run folder's artefacts as run files.

The run id is kept in ``<run folder>/wandb_run.json`` with the last epoch logged: a
resumed run continues the same run (``resume="allow"``) and logs only later epochs,
so no step appears twice.
"""

from __future__ import annotations

import secrets
import shutil
import string
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Literal, Mapping, Optional, Sequence, cast

from chordexp.errors import ConfigValueError
from chordexp.loggers.base import RunLogger, artifact_paths, numeric_summary, read_state, require, write_state

if TYPE_CHECKING:
    from chordexp.training.trainer import Trainer

STATE_FILE = "wandb_run.json"
MODES = ("offline", "online", "disabled")
Mode = Literal["offline", "online", "disabled"]  # the MODES, as a type


def new_run_id() -> str:
    """Eight lowercase letters and digits, as wandb's own ids."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


class WandbLogger(RunLogger):
    def __init__(
        self,
        run_folder: Path,
        run_config: Mapping[str, Any],
        mode: str = "offline",  # offline (files in <run folder>/wandb; `wandb sync` uploads them) | online | disabled
        project: str = "chordexp",
        entity: Optional[str] = None,
        name: Optional[str] = None,  # None: the run folder's name
        tags: Sequence[str] = (),
        log_artifacts: bool = True,  # config, metrics.json, history.json and plots saved with the run when it ends
    ) -> None:
        if mode not in MODES:
            raise ConfigValueError(f"logger.wandb.mode={mode!r} must be one of {', '.join(MODES)}")
        require("wandb", "wandb", "wandb")
        self.run_folder = Path(run_folder)
        self.mode, self.project, self.entity = mode, project, entity
        self.name = name or self.run_folder.name
        self.tags = list(tags or [])
        self.log_artifacts = log_artifacts
        self.config = dict(run_config)
        self.run: Any = None
        self.state: Dict[str, Any] = {}

    # ------------------------------------------------------------------ hooks
    def on_train_start(self, trainer: "Trainer") -> None:
        if self.run is None:
            self._open()

    def on_epoch_end(self, trainer: "Trainer", epoch: int, metrics: Mapping[str, float]) -> None:
        if self.run is None:
            self._open()
        if epoch <= self.state["last_epoch"]:
            return
        self.run.log({"epoch": epoch, **{key: float(value) for key, value in metrics.items()}}, step=epoch)
        self.state["last_epoch"] = epoch
        write_state(self.run_folder / STATE_FILE, self.state)

    def finish(self, run_folder: Path, failed: bool = False) -> None:
        if self.run is None:
            return
        self.run.summary.update(numeric_summary(run_folder))
        if self.log_artifacts and self.mode != "disabled":  # the run's files/ go up with it (at the end, or wandb sync)
            for path in artifact_paths(run_folder):
                target = Path(self.run.dir) / path.relative_to(run_folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
        import wandb

        self.run.finish(exit_code=1 if failed else 0)
        wandb.teardown()  # waits until the run files are complete (finish alone may return before)
        self.run = None

    # -------------------------------------------------------------------- run
    def _open(self) -> None:
        """Continue the run of ``wandb_run.json`` (a resume), else start one and record it."""
        import wandb

        state_path = self.run_folder / STATE_FILE
        self.state = read_state(state_path) or {"id": new_run_id(), "last_epoch": 0}
        try:
            self.run = wandb.init(
                mode=cast(Mode, self.mode),
                dir=str(self.run_folder),
                project=self.project,
                entity=self.entity,
                name=self.name,
                tags=self.tags,
                id=self.state["id"],
                resume="allow",
                config=self.config,
                settings=wandb.Settings(console="off", x_disable_stats=True, silent=True),
            )
        except wandb.Error as err:  # not logged in (online), a bad entity: the run cannot start
            raise ConfigValueError(f"logger.wandb: {err}") from err
        write_state(state_path, self.state)
