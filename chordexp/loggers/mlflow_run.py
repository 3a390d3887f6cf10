"""``logger=mlflow``: one MLflow run per run folder.

By default the tracking store is ``sqlite:///<run folder>/mlflow.db`` with artefacts in
``<run folder>/mlartifacts`` (MLflow 3 refuses its old ``./mlruns`` file store), so a
run folder stays self-contained: ``mlflow ui --backend-store-uri sqlite:///<run
folder>/mlflow.db``. ``tracking_uri`` names a server or a shared database instead.

Logged: the flattened config as params, every epoch's metrics with ``step=epoch``, and
when the run ends metrics.json's numbers (``summary/<key>``) and the run folder's
artefacts (config, metrics, history, plots). The run id is kept in
``<run folder>/mlflow_run.json``: a resumed run reopens that MLflow run and logs only
epochs after the last one it holds, so no step appears twice. Uses the MlflowClient
API (no global active run), so several runs in one process do not mix.
"""

from __future__ import annotations

import socket
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Mapping, Optional
from urllib.parse import urlsplit

from chordexp.errors import ConfigValueError
from chordexp.experiment.tracking import flatten_hparams
from chordexp.loggers.base import RunLogger, artifact_paths, numeric_summary, read_state, require, write_state

if TYPE_CHECKING:
    from chordexp.training.trainer import Trainer

STATE_FILE = "mlflow_run.json"
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
BATCH = 100  # MLflow's limit on params per log_batch call


def default_tracking_uri(run_folder: Path) -> str:
    return f"sqlite:///{(Path(run_folder) / 'mlflow.db').resolve()}"


#: Tracking URI schemes MLflow stores answer to (a ``+driver`` suffix allowed).
SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "file")
CONNECT_TIMEOUT_S = 3.0


def check_tracking_uri(uri: str) -> None:
    """ConfigValueError (one line) for a tracking URI MLflow cannot use, found in seconds:
    an unknown scheme, or a server that does not answer (MLflow's client retried an
    unreachable one for 4.5 minutes before its traceback)."""
    parsed = urlsplit(uri)
    scheme = parsed.scheme.split("+", 1)[0]
    if scheme not in SCHEMES:
        raise ConfigValueError(
            f"logger.mlflow.tracking_uri={uri}: not a tracking URI MLflow can use "
            f"({', '.join(s + '://' for s in SCHEMES)}, or null for a store in the run folder)"
        )
    if scheme in ("http", "https", "postgresql", "mysql", "mssql") and parsed.hostname:
        port = parsed.port or {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mssql": 1433}[scheme]
        try:
            socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as error:
            raise ConfigValueError(
                f"logger.mlflow.tracking_uri={uri}: nothing answers at {parsed.hostname}:{port} "
                f"({error.strerror or type(error).__name__}); start the server, or use logger.mlflow.tracking_uri=null"
            ) from None


class MLflowLogger(RunLogger):
    def __init__(
        self,
        run_folder: Path,
        run_config: Mapping[str, Any],
        tracking_uri: Optional[
            str
        ] = None,  # None: sqlite:///<run folder>/mlflow.db, artefacts in <run folder>/mlartifacts
        experiment_name: str = "chordexp",
        run_name: Optional[str] = None,  # None: the run folder's name
        log_artifacts: bool = True,  # config, metrics.json, history.json and plots when the run ends
    ) -> None:
        if tracking_uri is not None:
            check_tracking_uri(tracking_uri)
        sqlite = (tracking_uri or "sqlite:").startswith("sqlite:")  # also the default store
        for module in ("mlflow", "sqlalchemy", "alembic") if sqlite else ("mlflow",):
            require(module, "mlflow", "mlflow")  # mlflow-skinny's sqlite store needs SQLAlchemy and alembic
        self.run_folder = Path(run_folder)
        self.tracking_uri = tracking_uri or default_tracking_uri(self.run_folder)
        self.local_store = tracking_uri is None
        self.experiment_name = experiment_name
        self.run_name = run_name or self.run_folder.name
        self.log_artifacts = log_artifacts
        self.params = {key: str(value)[:MAX_PARAM_LENGTH] for key, value in flatten_hparams(run_config).items()}
        self.client: Any = None
        self.run_id: Optional[str] = None
        self.last_logged = 0  # the last epoch the MLflow run holds

    # ------------------------------------------------------------------ hooks
    def on_train_start(self, trainer: "Trainer") -> None:
        if self.run_id is None:
            self._open()
        self._log_params()

    def on_epoch_end(self, trainer: "Trainer", epoch: int, metrics: Mapping[str, float]) -> None:
        if self.run_id is None:
            self._open()
        if epoch <= self.last_logged:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id, metrics=[Metric(key, float(value), now, epoch) for key, value in metrics.items()]
        )
        self.last_logged = epoch

    def finish(self, run_folder: Path, failed: bool = False) -> None:
        if self.run_id is None:
            return
        from mlflow.entities import Metric

        summary = numeric_summary(run_folder)
        if summary:
            now = int(time.time() * 1000)
            step = int(summary.get("epochs_run", self.last_logged))
            self.client.log_batch(
                self.run_id, metrics=[Metric(f"summary/{key}", value, now, step) for key, value in summary.items()]
            )
        if self.log_artifacts:
            for path in artifact_paths(run_folder):
                folder = path.parent.relative_to(run_folder).as_posix()
                self.client.log_artifact(self.run_id, str(path), artifact_path=None if folder == "." else folder)
        self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")

    # -------------------------------------------------------------------- run
    def _open(self) -> None:
        """Reopen the run of ``mlflow_run.json`` (a resume), else create one and record it."""
        with warnings.catch_warnings():  # MLflow's store with SQLAlchemy 1.4 (optuna 2's pin) warns once
            warnings.filterwarnings("ignore", message=r".*``noload`` loader strategy is deprecated")
            self._open_run()

    def _open_run(self) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        state_path = self.run_folder / STATE_FILE
        state = read_state(state_path)
        if state is not None and state.get("tracking_uri") == self.tracking_uri:
            self.run_id = state["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            self.last_logged = self._last_step()
            return
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            location = (self.run_folder / "mlartifacts").resolve().as_uri() if self.local_store else None
            experiment_id = self.client.create_experiment(self.experiment_name, artifact_location=location)
        run = self.client.create_run(
            experiment_id,
            run_name=self.run_name,
            tags={"chordexp.experiment.run_folder": str(self.run_folder.resolve())},
        )
        self.run_id = run.info.run_id
        write_state(
            state_path, {"run_id": self.run_id, "experiment_id": experiment_id, "tracking_uri": self.tracking_uri}
        )

    def _last_step(self) -> int:
        """The last epoch the reopened run holds (0: none)."""
        metrics = self.client.get_run(self.run_id).data.metrics
        keys = [key for key in metrics if not key.startswith("summary/")]
        if not keys:
            return 0
        return max(metric.step for metric in self.client.get_metric_history(self.run_id, keys[0]))

    def _log_params(self) -> None:
        """The config as params; a resume logs only the keys the run does not hold yet
        (MLflow refuses to change a param: a resume may change trainer.num_epochs)."""
        from mlflow.entities import Param

        held = self.client.get_run(self.run_id).data.params
        new: List[Param] = [Param(key, value) for key, value in self.params.items() if key not in held]
        for start in range(0, len(new), BATCH):
            self.client.log_batch(self.run_id, params=new[start : start + BATCH])
