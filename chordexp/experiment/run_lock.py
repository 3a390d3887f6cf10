"""A run folder belongs to one run: never silently reused, never shared by two live runs.

``python -m chordexp.run`` claims its folder before Hydra starts (:func:`plan_run_folder`,
then :meth:`RunFolderPlan.claim`, called from ``chordexp.run.cli``). Hydra writes
``.hydra/`` (and opens ``run.log``) in the run folder *before* the task function runs,
so a check inside the task would come after the damage. The claim therefore composes the config the way ``@hydra.main`` is about to
(same search path, primary config and overrides; no task code runs) and resolves the
folder Hydra will use (``hydra.run.dir``, or ``hydra.sweep.dir`` for a multirun,
``hydra.mode`` included). When the value holds an interpolation (the default
``outputs/${now:...}``), the resolved folder is handed to Hydra as an override, so
the folder checked and locked is exactly the one Hydra writes to, even when the clock
ticks over between the two compositions (the command recorded in ``environment.json``
stays the one typed: :func:`typed_argv`). A config that does not compose is reported
here, as Hydra's message in one line (``CompositionError``, exit status 1; the options of
a group without the ``base_*`` schemas); with ``HYDRA_FULL_ERROR=1`` Hydra reports it.

Then:

- **A folder that already holds a run** (``.hydra/config.yaml``, ``metrics.json``,
  ``history.json``, ``environment.json``, ``resolved_config.yaml`` or a non-empty
  checkpoint folder) is refused for a new run, in one line naming it and the ways out:
  ``resume=<folder>``, ``rerun=<folder>`` or a new folder. Nothing in it is touched.
  ``resume=`` is the one way to write into it again. An empty folder, or one holding
  other files, is fine. A sweep (``-m``, ``hydra.mode=MULTIRUN``) is refused when its
  sweep folder already holds a sweep (``multirun.yaml``) or any run folder: its job
  folders (``0``, ``1``, ... or ``hydra.sweep.subdir``) would land on them.
- **A lock file**, ``<folder>/.chordexp.lock`` (a sweep: in its sweep folder; JSON: pid, host, the
  process's start time, since when), is created atomically (written in full to a
  temporary file, then hard-linked to its name, which fails if it exists;
  ``O_CREAT|O_EXCL`` where links are not supported) before Hydra writes anything, and
  removed when the run ends, whatever the end (an error, SIGTERM, SIGINT). A second
  run, or a resume, of a locked folder is refused in one line and changes nothing; so
  is a run into a folder inside a locked sweep folder. A stale lock, left by a process
  that was killed (``kill -9``, a power cut), does not block: when its pid is not
  running on this host (or is now another process), it is removed with a warning.
  A lock from another host cannot be checked and blocks until removed by hand.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_automatic_config_search_path, get_args_parser
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from hydra.types import RunMode
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from chordexp.errors import UsageError
from chordexp.experiment.conf_dir import CONF_DIR
from chordexp.experiment.schemas import register_configs
from chordexp.output_dirs import NO_FOLDER_FLAGS, RUN_RECORD_FILES, RUN_RECORD_FOLDERS

LOCK_NAME = ".chordexp.lock"
#: Files whose presence means a folder holds a run (besides a non-empty checkpoint folder).
RUN_RECORDS = (".hydra/config.yaml", "metrics.json", "history.json", "environment.json", "resolved_config.yaml")
#: ``hydra.job.*`` values that differ between the jobs of one sweep: a job folder
#: (``hydra.sweep.subdir``) must use one of them.
JOB_UNIQUE = ("num", "id", "override_dirname")

#: Files whose presence means a folder holds a sweep.
SWEEP_RECORDS = ("multirun.yaml", "optimization_results.yaml")
DEFAULT_CHECKPOINT_DIR = "checkpoints"

_TYPED_ARGV: Optional[List[str]] = None


class RunFolderError(UsageError):
    """A run folder that may not be written: it holds a run, or a live run holds it."""


# --------------------------------------------------------------------------- what a folder holds


def run_records(folder: Path, checkpoint_dir: str = DEFAULT_CHECKPOINT_DIR) -> List[str]:
    """The records of a run in ``folder`` (``[]``: none, the folder may take a new run)."""
    found = [name for name in RUN_RECORDS if (folder / name).is_file()]
    checkpoints = folder / checkpoint_dir
    with contextlib.suppress(OSError):
        if checkpoints.is_dir() and any(checkpoints.iterdir()):
            found.append(f"{checkpoint_dir}/")
    return found


def files_a_run_writes(folder: Path, cfg: Any) -> List[str]:
    """The files and record folders in ``folder`` that a new run would write over: its
    records (``RUN_RECORD_FILES``), a non-empty ``plots/`` or ``tensorboard/``, the CSV
    tracker's file. A folder of other files may take a run; these may not be lost."""
    names = list(RUN_RECORD_FILES)
    csv_name = OmegaConf.select(cfg, "logger.csv.filename", default=None) if cfg is not None else None
    if csv_name:
        names.append(str(csv_name))
    found = [name for name in names if (folder / name).is_file()]
    for sub in (name for name in RUN_RECORD_FOLDERS if name != ".hydra"):  # .hydra: run_records' business
        with contextlib.suppress(OSError):
            if (folder / sub).is_dir() and any((folder / sub).iterdir()):
                found.append(f"{sub}/")
    return found


def runs_under(folder: Path, checkpoint_dir: str = DEFAULT_CHECKPOINT_DIR, limit: int = 3) -> List[str]:
    """Up to ``limit`` descriptions of sweeps or runs at or under ``folder`` (a run's own
    subfolders are not searched)."""
    found: List[str] = []
    for root, dirs, _ in os.walk(folder):
        here = Path(root)
        records = [name for name in SWEEP_RECORDS if (here / name).is_file()] + run_records(here, checkpoint_dir)
        if records:
            found.append(f"{here} ({', '.join(records)})")
            if len(found) >= limit:
                break
        if run_records(here, checkpoint_dir):
            dirs[:] = []
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return found


# --------------------------------------------------------------------------- the lock


@dataclass
class LockOwner:
    pid: int
    host: str
    process_start: Optional[str] = None  # /proc/<pid>/stat start time (ticks since boot)
    since: Optional[str] = None

    def describe(self) -> str:
        when = f" since {self.since}" if self.since else ""
        return f"pid {self.pid} on {self.host}{when}"


def process_start(pid: int) -> Optional[str]:
    """The start time of process ``pid`` (Linux ``/proc``), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def process_alive(owner: LockOwner) -> bool:
    """Whether ``owner``'s process still runs (on this host; a zombie counts as dead)."""
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except OSError as error:
        if not isinstance(error, PermissionError):  # PermissionError: someone else's process, it exists
            return True
    with contextlib.suppress(OSError):  # no /proc (not Linux): a zombie cannot be told apart
        stat = Path(f"/proc/{owner.pid}/stat").read_text()
        if stat[stat.rfind(")") + 2 :].split()[0] == "Z":
            return False
    now = process_start(owner.pid)
    return not (owner.process_start and now and now != owner.process_start)  # the pid was reused


def read_owner(path: Path) -> Optional[LockOwner]:
    """The owner a lock file names; None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
        return LockOwner(int(data["pid"]), str(data["host"]), data.get("process_start"), data.get("since"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_stale(owner: LockOwner) -> bool:
    """A lock whose process is gone: its host is this one and its pid is not running."""
    return owner.host == socket.gethostname() and not process_alive(owner)


class RunLock:
    """``<folder>/.chordexp.lock``: :meth:`acquire` or RunFolderError; :meth:`release`."""

    def __init__(self, folder: Path, key: str = "run folder") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.key = key
        self.owner: Optional[LockOwner] = None

    def acquire(self) -> None:
        for _ in range(5):
            if self._create():
                return
            owner = read_owner(self.path)
            if owner is None:
                if not self.path.exists():
                    continue  # released meanwhile: try again
                raise RunFolderError(
                    f"{self.key}={self.folder} is locked by {self.path}, which cannot be read; if no "
                    f"run is using the folder, remove that file"
                )
            if not is_stale(owner):
                raise self.in_use(owner)
            self._remove_stale(owner)
        raise RunFolderError(
            f"{self.key}={self.folder}: could not take the lock {self.path}; another run keeps taking it"
        )

    def check_not_in_use(self) -> None:
        """RunFolderError when a live run holds the lock (before anything else is looked at)."""
        owner = read_owner(self.path)
        if owner is not None and not is_stale(owner):
            raise self.in_use(owner)

    def in_use(self, owner: LockOwner) -> RunFolderError:
        return RunFolderError(
            f"{self.key}={self.folder} is in use by a running run ({owner.describe()}; lock {self.path}): two runs "
            f"in one folder would mix their files; wait for it to end or stop it, then resume={self.folder}, or "
            f"use a new folder"
        )

    def release(self) -> None:
        """Remove the lock if this process holds it (a forked child never removes it)."""
        owner, self.owner = self.owner, None
        if owner is None or owner.pid != os.getpid():
            return
        current = read_owner(self.path)
        if current is not None and (current.pid, current.host, current.since) == (owner.pid, owner.host, owner.since):
            with contextlib.suppress(OSError):
                self.path.unlink()

    def _create(self) -> bool:
        pid = os.getpid()
        owner = LockOwner(pid, socket.gethostname(), process_start(pid), time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        text = (
            json.dumps(
                {
                    "pid": owner.pid,
                    "host": owner.host,
                    "process_start": owner.process_start,
                    "since": owner.since,
                    "argv": sys.argv,
                }
            )
            + "\n"
        )
        tmp = self.folder / f"{LOCK_NAME}.{pid}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, text.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, self.path)  # atomic, whole content, fails if the lock exists
            except FileExistsError:
                return False
            except OSError as error:
                if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                    raise
                try:  # no hard links here: exclusive create, then write
                    fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    return False
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        self.owner = owner
        return True

    def _remove_stale(self, owner: LockOwner) -> None:
        """Take the stale lock away by renaming it (atomic), so that two runs removing the
        same stale lock at once cannot remove a fresh one; a fresh one is put back."""
        aside = self.folder / f"{LOCK_NAME}.stale.{os.getpid()}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        taken = read_owner(aside)
        if taken is not None and (taken.pid, taken.host, taken.since) == (owner.pid, owner.host, owner.since):
            print(
                f"warning: removed the stale lock {self.path} of a run that is gone ({owner.describe()})",
                file=sys.stderr,
            )
        else:  # a fresh lock was taken meanwhile: it is not ours to remove
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
        with contextlib.suppress(OSError):
            aside.unlink()


def parent_locks(folder: Path, key: str = "hydra.run.dir") -> None:
    """RunFolderError when a folder above ``folder`` is locked by a live run (a sweep
    whose jobs write there); stale locks above are left alone."""
    for parent in folder.parents:
        owner = read_owner(parent / LOCK_NAME)
        if owner is not None and not is_stale(owner):
            raise RunFolderError(
                f"{key}={folder} is inside {parent}, which is in use by a running sweep or "
                f"run ({owner.describe()}); use a folder outside it"
            )


# --------------------------------------------------------------------------- the claim


@dataclass
class RunFolderClaim:
    """The folder a ``python -m chordexp.run`` will write, locked; ``argv`` is what Hydra
    gets (the typed arguments, plus the resolved folder where it was interpolated)."""

    folder: Path
    key: str
    lock: RunLock
    argv: List[str]
    created: bool = False
    _previous_sigterm: Any = field(default=None, repr=False)

    def release(self) -> None:
        """Remove the lock (and the folder, if this claim made it and it stayed empty)."""
        if self._previous_sigterm is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None
        self.lock.release()
        if self.created:
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only when empty

    def __enter__(self) -> "RunFolderClaim":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def exit_on_sigterm(self) -> None:
        """Until the trainer installs its own handler (and after it restores this one),
        SIGTERM ends the run with status 143 through the ``finally`` blocks, so the lock
        goes with it. A forked child (a DataLoader worker) gets the default action."""
        owner = os.getpid()

        def handle(signum: int, frame: Any) -> None:
            if os.getpid() != owner:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
                return
            raise SystemExit(128 + signum)

        with contextlib.suppress(ValueError):  # not the main thread
            if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                self._previous_sigterm = signal.signal(signal.SIGTERM, handle)


def typed_argv() -> List[str]:
    """``sys.argv`` as it was before :meth:`RunFolderPlan.claim` added the resolved folder
    for Hydra (the command to record), else ``sys.argv``."""
    return list(_TYPED_ARGV) if _TYPED_ARGV is not None else list(sys.argv)


@dataclass
class RunFolderPlan:
    """The folder ``python -m chordexp.run ARGV`` will write, checked (it holds no run,
    unless resumed, and no live run holds it) but not yet taken: :meth:`claim` takes it.
    ``cfg`` is the config Hydra is about to compose (with its ``hydra`` node)."""

    folder: Path
    key: str
    args: List[str]
    raw: str  # the configured value of ``key``: an interpolation is pinned for Hydra
    cfg: Any
    multirun: bool
    checkpoint_dir: str

    @property
    def resume(self) -> bool:
        return not self.multirun and bool(self.cfg.get("resume"))

    def check(self) -> None:
        """RunFolderError when the folder holds a run (a sweep's: any run or sweep under it)."""
        folder, key = self.folder, self.key
        if self.multirun:
            sweep = OmegaConf.to_container(self.cfg.hydra.sweep, resolve=False)  # the unresolved interpolation
            subdir = str(sweep.get("subdir", "") if isinstance(sweep, dict) else "")
            if not any(f"${{hydra.job.{name}}}" in subdir for name in JOB_UNIQUE):
                raise RunFolderError(
                    f"hydra.sweep.subdir={subdir}: every job of the sweep would write into the same folder and "
                    f"replace the last one's run; include ${{hydra.job.num}} (the default is ${{hydra.job.num}})"
                )
            held = runs_under(folder, self.checkpoint_dir) if folder.is_dir() else []
            if held:
                raise RunFolderError(
                    f"{key}={folder} already holds a sweep or runs ({'; '.join(held)}); a new sweep would write its "
                    f"job folders over them, so nothing was changed there: give the sweep a new folder "
                    f"({key}=...), or continue one run with resume=<its folder>"
                )
            return
        records = run_records(folder, self.checkpoint_dir) if folder.is_dir() and not self.resume else []
        if records:
            raise RunFolderError(
                f"{key}={folder} already holds a run ({', '.join(records)}); nothing was changed there: continue "
                f"it with resume={folder}, redo it in a new folder with rerun={folder}, or give a new folder "
                f"({key}=...)"
            )
        mine = files_a_run_writes(folder, self.cfg) if folder.is_dir() and not self.resume else []
        if mine:
            raise RunFolderError(
                f"{key}={folder} holds files a run writes ({', '.join(mine)}), which it would replace; nothing was "
                f"changed there: move them, or give a new folder ({key}=...)"
            )

    def claim(self) -> RunFolderClaim:
        """Make the folder and lock it (RunFolderError when a folder above is locked, or
        it cannot be made); checked again under the lock."""
        global _TYPED_ARGV
        folder, key = self.folder, self.key
        parent_locks(folder, key)
        created = not folder.exists()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunFolderError(f"{key}={folder}: cannot create the run folder ({error.strerror})") from None
        claim = RunFolderClaim(folder, key, RunLock(folder, key), self.args, created)
        try:
            claim.lock.acquire()
            self.check()  # again, under the lock: a run that ended meanwhile has left its records
            if "${" in self.raw:
                claim.argv = _pin(self.args, key, folder)
                _TYPED_ARGV = list(sys.argv)
        except BaseException:
            claim.release()
            raise
        claim.exit_on_sigterm()
        return claim


def plan_run_folder(argv: Sequence[str]) -> Optional[RunFolderPlan]:
    """Check the folder ``python -m chordexp.run ARGV`` will write (``argv`` without the
    program name, shortcuts already expanded); :meth:`RunFolderPlan.claim` locks it.

    Returns None when nothing will be written (``--help``, ``--cfg``) or the arguments
    do not parse (Hydra then says so itself); raises CompositionError (one line) for a
    config that does not compose, RunFolderError (one line) for a folder that holds a
    run (unless resumed) or is in use. A resume's config is compared with its
    checkpoint's by the caller (``chordexp.experiment.resume_check``: it reads the
    checkpoint with torch, which a plain run need not load this early).
    """
    args = list(argv)
    if any(arg.partition("=")[0] in NO_FOLDER_FLAGS for arg in args):
        return None
    composed = _compose(args)
    if composed is None:
        return None
    cfg, multirun = composed
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    raw, folder = _folder_of(cfg, key)
    if folder is None:
        return None
    checkpoint_dir = str(cfg.get("trainer", {}).get("checkpoint_dir") or DEFAULT_CHECKPOINT_DIR)
    plan = RunFolderPlan(folder, key, args, raw, cfg, multirun, checkpoint_dir)
    RunLock(folder, key).check_not_in_use()
    plan.check()
    return plan


def _compose(args: List[str]):
    """``(cfg, multirun)`` as ``@hydra.main`` will compose it for ``args``; None when the
    arguments do not parse (Hydra prints its usage) or the config fails in a way that is
    not a composition error. A composition error (an unknown option or key, a value of
    the wrong type, a bad override) raises CompositionError, one line."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            parsed = get_args_parser().parse_args(args)
    except SystemExit:
        return None
    config_path = parsed.config_path if parsed.config_path is not None else CONF_DIR
    config_name = parsed.config_name if parsed.config_name is not None else "config"
    run_py = str(Path(__file__).resolve().parent.parent / "run.py")  # Hydra's calling file: chordexp/run.py
    if GlobalHydra.instance().is_initialized():
        return None  # inside another Hydra app (a test): leave it alone
    overrides = list(parsed.overrides)
    register_configs()  # the schemas the config's defaults name (python -m chordexp.run has stored them already)
    try:
        search_path = create_automatic_config_search_path(run_py, None, config_path)
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


class CompositionError(UsageError):
    """The config does not compose (Hydra's own error, in one line); exit status 2, as
    any bad input."""


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


def _folder_of(cfg: Any, key: str):
    """``(raw value, absolute folder)`` of ``key`` in ``cfg``, resolved as Hydra will."""
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


def _pin(args: List[str], key: str, folder: Path) -> List[str]:
    """``args`` with ``key`` set to ``folder`` (quoted) for Hydra, replacing a given value."""
    text = str(folder)
    quote = "'" if "'" not in text else '"'
    if quote in text:
        raise RunFolderError(f"{key}={text}: a folder path holding both quote characters is not supported")
    override = f"{key}={quote}{text}{quote}"
    kept = [arg for arg in args if arg.lstrip("+").partition("=")[0] != key]
    return kept + [override]
