"""Train a chord model from the command line: ``python -m chordexp.run [overrides]``.

``cli`` rewrites the arguments and claims the run folder before Hydra starts
(``chordexp.experiment.launch``, ``chordexp.experiment.run_lock``); ``main`` lets Hydra
compose ``conf/config.yaml`` with the overrides, checks the values and runs the training
task under one error policy (``chordexp.experiment.run_outcome.RunEnding``), returning
``optimized_metric`` for sweepers (``-m``). Only Hydra, OmegaConf and light modules load at module level, so ``--help``
and ``--cfg job`` answer at once; torch and the experiment layer load inside ``main``.
"""

from __future__ import annotations

import sys
from typing import Optional

import hydra
from omegaconf import DictConfig

from chordexp.experiment.conf_dir import CONF_DIR
from chordexp.experiment.schemas import register_configs
from hydra_plugins.chordexp_optuna_sweeper import make_discoverable

register_configs()  # the schemas must be in the ConfigStore before main composes
make_discoverable()  # before Hydra scans its plugins (hparams_search=optuna): an editable install hides ours


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> Optional[float]:
    """Hydra's task: the values checked, then the experiment layer imported (once) and the
    run trained, all under one error policy (``RunEnding``); a bad value answers before
    torch loads."""
    from chordexp.experiment.launch import under_torchrun
    from chordexp.experiment.preflight import checked_training_config
    from chordexp.experiment.run_outcome import RunEnding, run_dir

    if under_torchrun():  # rank 0 tells the other ranks, waiting in cli, its run folder
        from chordexp.training.distributed import announce_run_folder

        announce_run_folder(run_dir())
    with RunEnding(cfg) as ending:
        checked_training_config(cfg)
        from chordexp.experiment.task import train

        ending.finish(train(cfg))
    return ending.value


def cli() -> None:
    """``python -m chordexp.run``: the arguments rewritten and the run folder claimed, then
    Hydra's main. torch loads here only where it is needed before Hydra: to join a
    torchrun process group, and to compare a resume's config with its ``last.pt``."""
    from chordexp.errors import UsageError
    from chordexp.experiment import launch
    from chordexp.experiment.run_lock import plan_run_folder

    distributed = claim = None
    try:
        sys.argv[1:] = launch.hydra_arguments(sys.argv[1:])
        if launch.under_torchrun():
            launch.check_one_run(sys.argv[1:])
            from chordexp.training import distributed as process_group

            distributed = process_group.init_from_env()
        if distributed is None or distributed.is_main:  # a folder holding a run, or in use: refused, then locked
            plan = plan_run_folder(sys.argv[1:])
            if plan is not None and not plan.multirun:  # a bad value is refused before any folder exists
                from chordexp.errors import ConfigValueError
                from chordexp.experiment.preflight import checked_training_config

                try:
                    checked_training_config(plan.cfg)  # main checks again (sweep jobs, the Python API)
                except ConfigValueError as error:
                    raise UsageError(f"invalid config: {error}") from None
            if plan is not None and plan.resume:  # a config changed since last.pt would be half applied: refused
                from chordexp.experiment.resume_check import check_resume_before_start

                check_resume_before_start(plan.folder, plan.cfg)
            claim = plan.claim() if plan is not None else None
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if distributed is not None and not distributed.is_main:
        if launch.answers_only(sys.argv[1:]):
            return  # rank 0 answers; it never reaches the broadcast the others would wait for
        sys.argv += launch.following_rank_zero(process_group.broadcast_object(None))  # sent from main
    if claim is not None:
        sys.argv[1:] = claim.argv  # the folder checked and locked is the one Hydra writes
    try:
        main()
    finally:
        if claim is not None:
            claim.release()
        if distributed is not None:
            process_group.shutdown()


if __name__ == "__main__":
    cli()
