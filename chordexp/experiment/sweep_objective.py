"""``optimized_metric``: the metrics.json value a sweeper optimises, checked before a run
starts and read when it ends."""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

from chordexp.errors import ConfigValueError, UserError
from chordexp.experiment.run_folder import METRIC_KEYS, TEXT_METRIC_KEYS, is_optimizable_metric


class DivergedRunError(UserError, ValueError):
    """The metric a sweeper optimises is not finite: the run diverged (its message says so)."""


def check_optimized_metric(key: Optional[str]) -> None:
    """ConfigValueError for an ``optimized_metric`` that no metrics.json holds as a number."""
    if key is not None and not is_optimizable_metric(key):
        names = [name for name in METRIC_KEYS if name not in TEXT_METRIC_KEYS]
        raise ConfigValueError(
            f"optimized_metric={key!r} is not a numeric metrics.json key; one of: "
            f"{', '.join(names)}, or best_val_<name>/final_val_<name> of a song metric"
        )


def objective(metrics: Dict[str, Any], key: Optional[str]) -> Optional[float]:
    """The value a sweeper optimises; a non-finite one raises, so a diverged run fails.

    Raising fails the job: an Optuna search tells its trial FAIL and goes on
    (``hparams_search=optuna``, docs/search.md), a grid sweep reports it after the other
    jobs, and a single run exits non-zero with this message instead of looking finished.
    """
    if key is None:
        return None
    if key not in metrics:  # a best_val_<name> the run's song validator did not give
        raise ConfigValueError(
            f"optimized_metric {key} is not in this run's metrics.json; its keys: {', '.join(metrics)}"
        )
    value = float(metrics[key])
    if not math.isfinite(value):
        raise DivergedRunError(f"optimized_metric {key} is {value}: the run diverged (see metrics.json)")
    return value
