"""The command line of ``python -m chordexp.run`` before Hydra parses it: shortcuts
expanded, a run folder that cannot be made refused, and what a torchrun process other
than rank 0 adds to follow rank 0's run. Plain Python, no torch: ``--help`` and
``--cfg`` go through here.
"""

from __future__ import annotations

import os
from typing import List, Sequence

from chordexp.errors import UsageError
from chordexp.experiment.rerun import expand_run_shortcuts
from chordexp.output_dirs import check_output_dirs

#: Hydra flags after which rank 0 alone answers (the other ranks never reach its broadcast).
ANSWER_ONLY_FLAGS = ("--cfg", "--help", "-h", "--hydra-help", "--info")


def no_trackers(arg: str) -> str:
    """``logger=null`` -> ``logger=[]``: no tracker (Hydra takes null only for a group whose default is null)."""
    return "logger=[]" if arg.lower() in ("logger=null", "logger=none") else arg


def hydra_arguments(argv: Sequence[str]) -> List[str]:
    """``argv`` (without the program name) as Hydra gets it: ``rerun=``/``resume=``
    expanded, ``logger=null`` spelt as Hydra takes it. UsageError (one line) for a run
    folder that is not one, or an output folder that cannot be made (not Hydra's traceback)."""
    args = [no_trackers(arg) for arg in expand_run_shortcuts(argv)]
    check_output_dirs(args)
    return args


def under_torchrun() -> bool:
    """One of several processes ``torchrun`` started (``WORLD_SIZE`` > 1), told without torch."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def check_one_run(args: Sequence[str]) -> None:
    """UsageError for a sweep under torchrun: its processes train one run together."""
    if any(arg in ("-m", "--multirun") for arg in args):
        raise UsageError("-m/--multirun sweeps run jobs one by one; start each DDP job with its own torchrun")


def answers_only(args: Sequence[str]) -> bool:
    """``--cfg``, ``--help``, ...: Hydra prints and runs nothing."""
    return any(arg.startswith(ANSWER_ONLY_FLAGS) for arg in args)


def following_rank_zero(folder: str) -> List[str]:
    """The overrides of a rank other than 0: rank 0's run folder, where it writes nothing
    of Hydra's, and its log on stdout."""
    return [f"hydra.run.dir='{folder}'", "hydra.output_subdir=null", "hydra/job_logging=stdout"]
