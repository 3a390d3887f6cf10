"""A run folder belongs to one run: never silently reused, never shared by two live runs.

``python -m chordexp.run`` claims its folder before Hydra starts (:func:`plan_run_folder`,
then :meth:`RunFolderPlan.claim`, called from ``chordexp.run.cli``). Hydra writes
``.hydra/`` (and opens ``run.log``) in the run folder *before* the task function runs,
so a check inside the task would come after the damage. The plan therefore takes the
config Hydra is about to compose (``chordexp.experiment.compose_ahead``, which also says
why Hydra's callbacks cannot do this) and the folder Hydra will use (``hydra.run.dir``, or
``hydra.sweep.dir`` for a multirun, ``hydra.mode`` included). When the value holds an
interpolation (the default ``outputs/${now:...}``), the resolved folder is handed to
Hydra as an override, so the folder checked and locked is exactly the one Hydra writes
to, even when the clock ticks over between the two compositions (the command recorded
in ``environment.json`` stays the one typed: :func:`typed_argv`). A config that does not
compose is refused there, in one line (``CompositionError``, exit status 2).

Then:

- **A folder that already holds a run** (``chordexp.experiment.existing_runs``:
  ``.hydra/config.yaml``, ``metrics.json``, ``history.json``, ``environment.json``,
  ``resolved_config.yaml`` or a non-empty checkpoint folder) is refused for a new run,
  in one line naming it and the ways out: ``resume=<folder>``, ``rerun=<folder>`` or a
  new folder. Nothing in it is touched. ``resume=`` is the one way to write into it
  again. An empty folder, or one holding other files, is fine (not files a run writes:
  ``metrics.csv``, ``plots/``, ...). A sweep (``-m``, ``hydra.mode=MULTIRUN``) is refused
  when its sweep folder already holds a sweep (``multirun.yaml``) or any run folder: its
  job folders (``0``, ``1``, ... or ``hydra.sweep.subdir``) would land on them.
- **A lock file**, ``<folder>/.chordexp.lock`` (a sweep: in its sweep folder;
  ``chordexp.lock_file``: atomic, names its live process, a stale one is removed with a
  warning, one from another host blocks until removed by hand), is taken before Hydra
  writes anything and removed when the run ends, whatever the end (an error, SIGTERM,
  SIGINT). A second run, or a resume, of a locked folder is refused in one line and
  changes nothing; so is a run into a folder inside a locked sweep folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence

from omegaconf import OmegaConf

from chordexp.errors import UsageError
from chordexp.experiment.compose_ahead import compose_as_hydra_main, hydra_folder
from chordexp.experiment.existing_runs import DEFAULT_CHECKPOINT_DIR, files_a_run_writes, run_records, runs_under
from chordexp.lock_file import LockFile, LockOwner, live_owner, process_start
from chordexp.output_dirs import NO_FOLDER_FLAGS

__all__ = [
    "LOCK_NAME",
    "RunFolderError",
    "RunLock",
    "parent_locks",
    "RunFolderClaim",
    "RunFolderPlan",
    "plan_run_folder",
    "typed_argv",
    "process_start",  # chordexp.lock_file's: the tests write the lock of a live run with it
]

LOCK_NAME = ".chordexp.lock"
#: ``hydra.job.*`` values that differ between the jobs of one sweep: a job folder
#: (``hydra.sweep.subdir``) must use one of them.
JOB_UNIQUE = ("num", "id", "override_dirname")

_TYPED_ARGV: Optional[List[str]] = None


class RunFolderError(UsageError):
    """A run folder that may not be written: it holds a run, or a live run holds it."""


class RunLock(LockFile):
    """``<folder>/.chordexp.lock``: :meth:`acquire` or RunFolderError; :meth:`release`.
    ``key`` is the setting that named the folder, for the messages."""

    holder = "run"

    def __init__(self, folder: Path, key: str = "run folder") -> None:
        self.folder = Path(folder)
        self.key = key
        super().__init__(self.folder / LOCK_NAME)

    def in_use(self, owner: LockOwner) -> RunFolderError:
        return RunFolderError(
            f"{self.key}={self.folder} is in use by a running run ({owner.describe()}; lock {self.path}): two runs "
            f"in one folder would mix their files; wait for it to end or stop it, then resume={self.folder}, or "
            f"use a new folder"
        )

    def unreadable(self) -> RunFolderError:
        return RunFolderError(
            f"{self.key}={self.folder} is locked by {self.path}, which cannot be read; if no "
            f"run is using the folder, remove that file"
        )

    def contended(self) -> RunFolderError:
        return RunFolderError(
            f"{self.key}={self.folder}: could not take the lock {self.path}; another run keeps taking it"
        )


def parent_locks(folder: Path, key: str = "hydra.run.dir") -> None:
    """RunFolderError when a folder above ``folder`` is locked by a live run (a sweep
    whose jobs write there); stale locks above are left alone."""
    for parent in folder.parents:
        owner = live_owner(parent / LOCK_NAME)
        if owner is not None:
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
    composed = compose_as_hydra_main(args)
    if composed is None:
        return None
    cfg, multirun = composed
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    raw, folder = hydra_folder(cfg, key)
    if folder is None:
        return None
    checkpoint_dir = str(cfg.get("trainer", {}).get("checkpoint_dir") or DEFAULT_CHECKPOINT_DIR)
    plan = RunFolderPlan(folder, key, args, raw, cfg, multirun, checkpoint_dir)
    RunLock(folder, key).check_not_in_use()
    plan.check()
    return plan


def _pin(args: List[str], key: str, folder: Path) -> List[str]:
    """``args`` with ``key`` set to ``folder`` (quoted) for Hydra, replacing a given value."""
    text = str(folder)
    quote = "'" if "'" not in text else '"'
    if quote in text:
        raise RunFolderError(f"{key}={text}: a folder path holding both quote characters is not supported")
    override = f"{key}={quote}{text}{quote}"
    kept = [arg for arg in args if arg.lstrip("+").partition("=")[0] != key]
    return kept + [override]
