"""The config ``@hydra.main`` is about to compose, composed first, before Hydra starts.

``python -m chordexp.run`` must know its run folder, and refuse a bad config in one line,
before Hydra writes anything. :func:`compose_as_hydra_main` composes the config the way
``chordexp.run.main`` will (same search path, ``--config-path``/``--config-name``/
``--config-dir``, primary config and overrides; no task code runs), with its ``hydra``
node; :func:`hydra_folder` resolves ``hydra.run.dir`` or ``hydra.sweep.dir`` as Hydra will.
A config that does not compose raises :class:`CompositionError`: Hydra's message in one
line (the options of a group without the ``base_*`` schemas), exit status 2 like any bad
input; with ``HYDRA_FULL_ERROR=1`` Hydra reports it itself.

Why not Hydra's public callbacks (``hydra.experimental.callback.Callback``; Hydra 1.3,
``hydra/_internal/hydra.py``, ``callbacks.py``, ``core/utils.py``)? They cannot do this job:

- A callback exists only once Hydra has composed: ``Hydra.run`` composes, then builds
  ``Callbacks(cfg)`` from the composed config's ``hydra.callbacks`` (``multirun`` the
  same). A config that does not compose never reaches one, and Hydra reports it in many
  lines with exit status 1 (``run_and_report``: ``sys.exit(1)``), not in one line with 2.
- ``Callbacks._notify`` catches every ``Exception`` a callback raises and only warns
  (``warnings.warn(f"Callback ... raised ...")``): a refusal raised in ``on_run_start`` or
  ``on_multirun_start`` would let Hydra write ``.hydra/`` into a folder that holds a run.
- A callback runs only where the composed config lists it under ``hydra.callbacks``: a
  ``--config-dir``/``--config-name`` primary config without it, or an override of
  ``hydra.callbacks``, would turn the refusal off without a word.
- ``on_job_start`` is too late: ``run_job`` makes the folder, opens ``run.log`` and writes
  ``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` before it calls it.

Under ``torchrun`` (every rank runs ``chordexp.run.cli``) rank 0 alone composes here and
claims the folder, before the process group's first broadcast; the other ranks follow
the folder it announces from its task (``chordexp.experiment.launch.following_rank_zero``).
A callback would change none of that, and has the limits above on every rank. Hydra's
public Compose API (``hydra.compose``) is no way out either: it always composes in
``RunMode.RUN``, which refuses a sweep's ``key=a,b`` ("Ambiguous value"), and it parses
no command line (``-m``, ``--config-dir``). Hence the ``hydra._internal`` imports below,
held to one Hydra line by ``hydra-core>=1.3.2,<1.4``.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any, List, Optional, Tuple

from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_automatic_config_search_path, get_args_parser
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from chordexp.errors import UsageError
from chordexp.experiment.conf_dir import CONF_DIR
from chordexp.experiment.schemas import register_configs

#: Hydra's calling file for ``chordexp.run.main``: its search path is built from it.
RUN_PY = str(Path(__file__).resolve().parent.parent / "run.py")


class CompositionError(UsageError):
    """The config does not compose (Hydra's own error, in one line); exit status 2, as
    any bad input."""


def compose_as_hydra_main(args: List[str]) -> Optional[Tuple[DictConfig, bool]]:
    """``(cfg, multirun)`` as ``@hydra.main`` will compose it for ``args`` (without the
    program name); None when the arguments do not parse (Hydra prints its usage), when
    a Hydra app is already running in this process (a test), or the config fails in a
    way that is not a composition error. A composition error (an unknown option or key,
    a value of the wrong type, a bad override) raises CompositionError, one line."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            parsed = get_args_parser().parse_args(args)
    except SystemExit:
        return None
    config_path = parsed.config_path if parsed.config_path is not None else CONF_DIR
    config_name = parsed.config_name if parsed.config_name is not None else "config"
    if GlobalHydra.instance().is_initialized():
        return None  # inside another Hydra app (a test): leave it alone
    overrides = list(parsed.overrides)
    register_configs()  # the schemas the config's defaults name (python -m chordexp.run has stored them already)
    try:
        search_path = create_automatic_config_search_path(RUN_PY, None, config_path)
        if parsed.config_dir is not None:
            search_path.prepend(
                provider="command-line",
                path=f"file://{os.path.abspath(parsed.config_dir)}",
                anchor=SearchPathQuery(provider="schema"),
            )
        app = Hydra.create_main_hydra2(task_name="run", config_search_path=search_path)
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            cfg = app.compose_config(
                config_name=config_name,
                overrides=overrides,
                run_mode=RunMode.MULTIRUN,
                with_log_configuration=False,
                validate_sweep_overrides=False,
            )
            multirun = bool(parsed.multirun) or cfg.hydra.mode == RunMode.MULTIRUN
            if not multirun and _has_sweep_override(overrides):  # Hydra refuses a sweep in a single run
                app.compose_config(
                    config_name=config_name, overrides=overrides, run_mode=RunMode.RUN, with_log_configuration=False
                )
    except Exception as error:  # noqa: BLE001
        line = composition_error_line(error)
        if line is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            return None  # Hydra reports it when it composes, as it always has
        raise CompositionError(line) from None
    finally:
        GlobalHydra.instance().clear()
    return cfg, multirun


def hydra_folder(cfg: Any, key: str) -> Tuple[str, Optional[Path]]:
    """``(raw value, absolute folder)`` of ``key`` (``hydra.run.dir``, ``hydra.sweep.dir``)
    in ``cfg``, resolved as Hydra will; the folder is None when it resolves to nothing
    or fails to resolve (Hydra reports that itself)."""
    parent, _, name = key.rpartition(".")
    node = OmegaConf.select(cfg, parent)
    raw = str(node._get_node(name)._value()) if node is not None and name in node else ""
    HydraConfig.instance().set_config(cfg)
    try:
        value = OmegaConf.select(cfg, key)
    except Exception:  # noqa: BLE001 - an interpolation that fails: Hydra reports it
        return raw, None
    finally:
        HydraConfig.instance().cfg = None
    if value is None or str(value) == "":
        return raw, None
    return raw, Path(os.path.abspath(str(value)))


#: Lines of Hydra's composition messages that add nothing to the first.
_NOISE = (
    "full_key:",
    "reference_type=",
    "object_type=",
    "See https://hydra.cc",
    "Config search path",
    "provider=",
    "Available options",
    "Set the environment variable HYDRA_FULL_ERROR",
)


def composition_error_line(error: BaseException) -> Optional[str]:
    """Hydra's composition error as one line: what is wrong and, for an unknown option,
    the real options of the group (the ``base_*`` schemas left out); None for other errors."""
    if not isinstance(error, (HydraException, OmegaConfBaseException)):
        return None

    def lines(text: object) -> List[str]:  # an exception or its message
        return [
            line.strip()
            for line in str(text).splitlines()
            if line.strip() and not line.strip().startswith(_NOISE) and not line.startswith("\t")
        ]

    if isinstance(error, MissingConfigException):
        first = lines(error)[0] if lines(error) else str(error)
        first = first.split(": ", 1)[1] if first.startswith("In '") and ": " in first else first
        options = [name for name in (error.options or []) if not name.startswith("base_")]
        return f"{first}; choose one of: {', '.join(options)}" if options else first
    if isinstance(error, OverrideParseException):
        return f"override {error.override!r}: {'; '.join(lines(error.message))}"
    parts = lines(error)
    cause = error.__cause__
    if cause is not None and lines(cause):
        head = (parts[0].rstrip(".") + ": ") if parts else ""
        return head + "; ".join([lines(cause)[0], *parts[1:]])
    return "; ".join(parts) or type(error).__name__


def _has_sweep_override(overrides: List[str]) -> bool:
    try:
        return any(o.is_sweep_override() for o in OverridesParser.create().parse_overrides(overrides))
    except Exception:  # noqa: BLE001 - a bad override: the composition has said so already
        return False
