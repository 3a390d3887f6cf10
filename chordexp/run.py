"""Train a chord model from the command line: ``python -m chordexp.run [overrides]``.

``main`` lets Hydra compose ``conf/config.yaml`` with the overrides, then ``run_task``
runs the task ``train(cfg) -> metrics`` and returns ``optimized_metric`` for sweepers
(``-m``). ``train`` is plain and testable: give it a composed config whose
``hydra.runtime.output_dir`` names the run folder.

Only Hydra, OmegaConf and ``chordexp.config`` are imported here at module level, so
``--help`` and ``--cfg job`` answer at once; torch and the components load in ``train``.
"""
from __future__ import annotations

import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Type, cast

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from chordexp.config import TrainingConfig, register_configs, resolved_dict, to_training_config
from chordexp.errors import ConfigValueError, debug_requested, is_user_error, one_line

log = logging.getLogger("chordexp.run")  # not "__main__" under python -m

#: The configs as an absolute path: ``chordexp/conf`` in an installed wheel (setup.py
#: ships the repository's conf/ there), else ``../conf`` next to the package (a source
#: tree, an editable install). Absolute, because Hydra resolves a relative config_path
#: against the package (``pkg://``) when main is imported (console scripts,
#: ``from chordexp.run import main``).
_PACKAGE = Path(__file__).resolve().parent
CONF_DIR = str(_PACKAGE / "conf" if (_PACKAGE / "conf" / "config.yaml").is_file() else _PACKAGE.parent / "conf")

register_configs()  # the schemas must be in the ConfigStore before main composes
from hydra_plugins.chordexp_optuna_sweeper import make_discoverable  # noqa: E402  (hparams_search=optuna)

make_discoverable()  # before Hydra scans its plugins: an editable install hides ours from the scan


def run_dir() -> Path:
    """The run folder Hydra chose (``hydra.run.dir``, or a sweep's job folder)."""
    return Path(HydraConfig.get().runtime.output_dir)


def train(cfg: DictConfig) -> Dict[str, Any]:
    """Train one model as ``cfg`` says, fill the run folder, return metrics.json's content."""
    start = time.perf_counter()
    config = to_training_config(cfg)  # validates values before anything is built
    check_optimized_metric(cfg.optimized_metric)
    from chordexp.experiment.finetune import check_required as check_finetune_required

    check_finetune_required(cfg)
    folder = run_dir()
    config.checkpoint_dir = str(folder / config.checkpoint_dir)  # validated: relative, inside the folder

    from chordexp.experiment import run_folder
    from chordexp.experiment.finetune import settings_of
    from chordexp.experiment.run_plots import write_run_plots
    from chordexp.loggers import finish_loggers
    from chordexp.model import count_parameters
    from chordexp.training import Trainer
    from chordexp.training.distributed import current_context
    from chordexp.training.stop_signals import stop_on_signals

    distributed = current_context()
    main_rank = distributed is None or distributed.is_main
    if not main_rank:  # rank 0 logs for the run; the others say only what goes wrong
        logging.getLogger().setLevel(logging.WARNING)
    resume = bool(cfg.get("resume"))
    loggers = build_loggers(cfg, folder) if main_rank else []  # a tracker's missing library fails before any write
    if main_rank and not resume:
        run_folder.write_resolved_config(cfg, folder / "resolved_config.yaml")
    set_threads(cfg.trainer.num_threads)
    if distributed is not None:
        config.device = rank_device(config.device, distributed.local_rank)
        if config.batch_size % distributed.world_size:
            raise ConfigValueError(f"data.batch_size={config.batch_size} is the global batch and must divide by "
                                   f"the {distributed.world_size} processes of this run")
    components = build_components(cfg, config, distributed)
    decoder = components.pop("decoder", None)
    run_config = resolved_dict(cfg)
    from chordexp.experiment.optuna_trial import (
        trial_callbacks,  # an Optuna trial reports each epoch; its pruner may stop it
    )

    trial = resolved_dict(cfg.get("optuna_trial") or {})
    pruning = trial_callbacks(trial, cfg.optimized_metric, folder) if main_rank else []
    trainer = Trainer(config=config, callbacks=[*loggers, *pruning], distributed=distributed, **components)
    trainer.checkpoint_extra = {"run_config": run_config}  # a copied checkpoint keeps its provenance
    if decoder is not None:  # predict decodes with the settings of the data the model learnt from
        trainer.checkpoint_extra["decoder"] = decoder
    if resume:
        resume_from_last(trainer, Path(config.checkpoint_dir) / "last.pt", folder)
    if main_rank:
        record_environment(folder, seed=config.seed, device=str(trainer.device), resume=resume,
                           distributed=distributed, init_from=settings_of(cfg)["init_from"])
    num_parameters = count_parameters(trainer.model)
    log.info("training %s parameters on %s for %d epochs; run folder %s%s",
             f"{num_parameters:,}", trainer.device, config.num_epochs, folder,
             f"; DDP over {distributed.world_size} processes ({distributed.backend})" if distributed else "")

    try:
        with stop_on_signals(trainer):
            history = trainer.train()
    except BaseException:
        finish_loggers(loggers, folder, failed=True)  # the trackers' runs end as failed, with what the run has
        raise
    finally:  # a failed or stopped run keeps the epochs it finished
        trainer.export_history(folder / "history.json")
    if not main_rank:
        return {}
    write_run_plots(folder, history, Path(config.checkpoint_dir) / "best.pt",
                    whole_val_loader(components["val_loader"], config.batch_size), trainer.device)
    wall_time_s = time.perf_counter() - start
    metrics = run_folder.run_metrics(
        history,
        best_epoch=trainer.best_epoch,
        best_val_loss=trainer.best_val_loss,
        stopped_early=trainer.stopped_early,
        wall_time_s=wall_time_s,
        num_parameters=num_parameters,
        monitor=trainer.monitor,
    )
    run_folder.write_json(folder / "metrics.json", metrics)
    log.info("best %s %.4f at epoch %d of %d (%.1f s)", metrics["monitor"], metrics["best_monitor_value"],
             metrics["best_epoch"], metrics["epochs_run"], wall_time_s)
    if cfg.eval_songs:
        evaluate_songs(Path(config.checkpoint_dir) / "best.pt", Path(cfg.eval_songs), folder)
    finish_loggers(loggers, folder)  # after metrics.json and the plots: the trackers upload them
    return metrics


def no_trackers(arg: str) -> str:
    """``logger=null`` -> ``logger=[]``: no tracker (Hydra takes null only for a group whose default is null)."""
    return "logger=[]" if arg.lower() in ("logger=null", "logger=none") else arg


def build_loggers(cfg: DictConfig, folder: Path) -> list:
    """The experiment trackers of ``cfg.logger`` (name -> ``_target_`` node) as Trainer
    callbacks, each given the run folder and the config (without ``logger``) to log.

    Built as partials and called here, so a tracker's own error (its library missing)
    reaches the user as that one line, not wrapped in Hydra's InstantiationException.
    """
    from hydra.utils import instantiate

    from chordexp.experiment.targets import check_targets

    check_targets(cfg)
    params = {key: value for key, value in resolved_dict(cfg).items() if key != "logger"}
    nodes = cfg.get("logger")
    if nodes is None:  # a config saved before the logger group (rerun=/resume= of an older run): as then
        nodes = {"tensorboard": {"_target_": "chordexp.loggers.TensorBoardLogger", "log_dir": "tensorboard"}}
    return [instantiate(nodes[name], _partial_=True, _convert_="all")(run_folder=folder, run_config=params)
            for name in nodes if nodes[name] is not None]


def whole_val_loader(val_loader: Any, batch_size: int) -> Any:
    """The validation loader over every item (under DDP, rank 0's loader holds a shard)."""
    from torch.utils.data import DataLoader, SequentialSampler

    if isinstance(val_loader.sampler, SequentialSampler):
        return val_loader
    return DataLoader(val_loader.dataset, batch_size=batch_size)


def resume_from_last(trainer: Any, last: Path, folder: Path) -> None:
    """Continue ``folder``'s run from ``last`` (its ``last.pt``); a run killed before its
    first epoch ended has none and starts over, which is the same thing. A config that
    differs from the checkpoint's beyond ``chordexp.experiment.resume_check.RESUMABLE_KEYS`` is
    refused (``python -m chordexp.run`` refuses it before Hydra starts; this is the check
    for a resume started some other way)."""
    if last.is_file():
        from chordexp.experiment.resume_check import check_resume_config

        current = trainer.checkpoint_extra.get("run_config")  # this session's; load_checkpoint restores the saved
        trainer.load_checkpoint(last)
        if current is not None:
            check_resume_config(folder, last, trainer.checkpoint_extra.get("run_config"), current)
        log.info("resuming %s after epoch %d", folder, trainer.current_epoch)
    else:
        log.warning("resume: %s does not exist (no epoch had finished); starting from the first epoch", last)


def rank_device(device: str, local_rank: int) -> str:
    """Under DDP each process of a node takes its own GPU (``cuda:LOCAL_RANK``)."""
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return device


def record_environment(folder: Path, *, seed: int, device: str, resume: bool,
                       distributed: Any = None, init_from: Optional[str] = None) -> Dict[str, Any]:
    """Write ``environment.json`` (and ``git_diff.patch`` for uncommitted code), warning
    about every difference from the environment of the run this one redoes or resumes.
    A resumed run keeps its original record and appends one per resume."""
    from chordexp.experiment import run_folder
    from chordexp.experiment.rerun import saved_run_folder

    record = run_folder.environment_record(seed=seed, device=device)
    record["distributed"] = (None if distributed is None else
                             {"world_size": distributed.world_size, "backend": distributed.backend})
    if init_from:  # finetune.init_from: the weights this run started from
        record["init_from"] = str(Path(init_from).expanduser().resolve())
    source = folder if resume else saved_run_folder(primary_config_dir())
    recorded = run_folder.read_json(source / "environment.json") if source else None
    if recorded is not None:
        for line in run_folder.environment_differences(recorded, record):
            log.warning("environment differs from %s: %s", source, line)
    if resume and recorded is not None:
        resumes = list(recorded.get("resumes", []))
        diff = run_folder.save_git_diff(record, folder / f"git_diff.resume_{len(resumes) + 1}.patch")
        resumes.append(dict(record, git_diff=diff.name if diff else None))
        run_folder.write_json(folder / "environment.json", dict(recorded, resumes=resumes))
    else:
        diff = run_folder.save_git_diff(record, folder / "git_diff.patch")
        record["git_diff"] = diff.name if diff else None
        if source is not None and not resume:
            record["rerun_of"] = str(source)
        run_folder.write_json(folder / "environment.json", record)
    return record


def primary_config_dir() -> Optional[str]:
    """Where Hydra found the primary config (``conf/``, or a run's ``.hydra`` for a rerun)."""
    # HydraConfig.get() is a DictConfig at run time (typed as the HydraConf dataclass): its nodes have .get
    for source in cast(List[DictConfig], HydraConfig.get().runtime.config_sources):
        if source.get("provider") == "main":
            return str(source.get("path"))
    return None


def build_components(cfg: DictConfig, config: TrainingConfig, distributed: Any = None) -> Dict[str, Any]:
    """The Trainer's arguments, built from the ``_target_`` nodes of ``cfg``.

    The optimizer node is a partial (``optimizer_factory(params)``). ``_convert_="all"``
    hands plain lists and dicts to the components, so no OmegaConf object ends up in a
    checkpoint.
    """
    from hydra.utils import instantiate

    from chordexp.data import build_loaders
    from chordexp.experiment.targets import check_targets

    check_targets(cfg)  # only documented components, unless allow_any_target=true
    seed_everything(config.seed)
    train_set, val_set = build_datasets(cfg)
    sequence = bool(cfg.data.get("sequence", False))
    song_validator = decoder = None
    if sequence:
        from chordexp.experiment.song_mode import build_song_validator, check_frame_grid

        check_frame_grid(train_set, cfg)
        song_validator = build_song_validator(val_set, cfg)
    num_workers = config.num_workers
    if cfg.data.cache:
        train_set, val_set = cache_in_memory(train_set, val_set, num_workers)
        num_workers = 0
    if sequence:
        from chordexp.experiment.song_mode import decoder_settings

        decoder = decoder_settings(train_set, cfg)
        if song_validator is not None:
            song_validator.decoder = dict(decoder)
    train_loader, val_loader = build_loaders(
        train_set, val_set, batch_size=config.batch_size, num_workers=num_workers, seed=config.seed,
        distributed=distributed, pin_memory=pin_memory_for(config.device),
    )
    seed_everything(config.seed)  # model init does not depend on what the datasets drew
    from chordexp.experiment.finetune import apply_finetune, settings_of

    model = instantiate(cfg.model, _convert_="all")
    resuming = bool(cfg.get("resume")) and (Path(config.checkpoint_dir) / "last.pt").is_file()
    optimizer_factory = apply_finetune(model, instantiate(cfg.optimizer, _convert_="all"), settings_of(cfg),
                                       config.learning_rate, load=not resuming)  # a resume loads its last.pt
    return {
        "model": model,
        "train_loader": train_loader,
        "val_loader": val_loader,
        "criterion": instantiate(cfg.loss, _convert_="all"),
        "optimizer_factory": optimizer_factory,
        **({"song_validator": song_validator} if song_validator is not None else {}),
        **({"decoder": decoder} if decoder is not None else {}),
    }


def pin_memory_for(device: str) -> bool:
    """Page-locked batches (with the trainer's non_blocking copies) when training on CUDA."""
    import torch

    return torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda:")


def cache_in_memory(train_set: Any, val_set: Any, num_workers: int) -> Tuple[Any, Any]:
    """Both datasets rendered once into memory, in ``num_workers`` processes (0: one per
    core of this job's share)."""
    from chordexp.data import InMemoryDataset

    workers = num_workers or cpu_budget()
    return InMemoryDataset(train_set, num_workers=workers), InMemoryDataset(val_set, num_workers=workers)


def build_datasets(cfg: DictConfig) -> Tuple[Any, Any]:
    """Train and val datasets from ``cfg.data``: same generator, own split and size,
    the run's seed; ``options`` (generator options) are spread into the keywords."""
    from hydra.utils import instantiate

    dataset = resolved_dict(cfg.data.dataset)
    dataset.update(dataset.pop("options", None) or {})
    return tuple(
        instantiate(dataset, size=size, split=split, seed=cfg.seed)
        for split, size in (("train", cfg.data.train_size), ("val", cfg.data.val_size))
    )


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def parallel_jobs() -> int:
    """How many jobs of this sweep run at once on this machine (joblib launcher), else 1."""
    launcher = HydraConfig.get().launcher
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    n_jobs = int(launcher.get("n_jobs") or -1)
    cpus = available_cpus()
    return cpus if n_jobs < 0 else max(1, min(n_jobs, cpus))


def cpu_budget() -> int:
    """Cores this job may use: all of them, or its share when sweep jobs or the
    processes of a DDP run (``LOCAL_WORLD_SIZE``) share the machine."""
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, available_cpus() // (parallel_jobs() * max(1, processes)))


def available_cpus() -> int:
    """Cores this process may run on (its affinity: a SLURM or container allocation),
    not all the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def set_threads(num_threads: int) -> None:
    """``torch.set_num_threads``: as asked (> 0), else the job's share of the cores, so
    parallel sweep jobs do not fight over them."""
    import torch

    torch.set_num_threads(num_threads if num_threads > 0 else cpu_budget())
    log.info("torch threads: %d", torch.get_num_threads())


def evaluate_songs(checkpoint: Path, songs: Path, folder: Path) -> Dict[str, Any]:
    """Transcribe ``songs`` with ``checkpoint`` into ``folder/songs/`` and score them with
    mir_eval against the ``.lab`` files beside the audio: ``folder/song_metrics.json``."""
    from chordexp.evaluate import evaluate_dirs, format_table
    from chordexp.experiment import run_folder
    from chordexp.predict import ChordRecognizer, transcribe_files

    predictions = folder / "songs"
    recognizer = ChordRecognizer.from_checkpoint(checkpoint)
    transcribe_files(recognizer, songs, predictions, progress=False, echo=log.debug)
    result = evaluate_dirs(predictions, songs)
    run_folder.write_json(folder / "song_metrics.json", result)
    log.info("song-level evaluation of %s:\n%s", songs, format_table(result))
    return result


def check_optimized_metric(key: Optional[str]) -> None:
    from chordexp.experiment.run_folder import METRIC_KEYS, TEXT_METRIC_KEYS, is_optimizable_metric

    if key is not None and not is_optimizable_metric(key):
        names = [name for name in METRIC_KEYS if name not in TEXT_METRIC_KEYS]
        raise ConfigValueError(f"optimized_metric={key!r} is not a numeric metrics.json key; one of: "
                               f"{', '.join(names)}, or best_val_<name>/final_val_<name> of a song metric")


def objective(metrics: Dict[str, Any], key: Optional[str]) -> Optional[float]:
    """The value a sweeper optimises; a non-finite one raises, so a diverged run fails.

    Raising fails the job: an Optuna search tells its trial FAIL and goes on
    (``hparams_search=optuna``, docs/search.md), a grid sweep reports it after the other
    jobs, and a single run exits non-zero with this message instead of looking finished.
    """
    if key is None:
        return None
    if key not in metrics:  # a best_val_<name> the run's song validator did not give
        raise ValueError(f"optimized_metric {key} is not in this run's metrics.json; its keys: {', '.join(metrics)}")
    value = float(metrics[key])
    if not math.isfinite(value):
        raise ValueError(f"optimized_metric {key} is {value}: the run diverged (see metrics.json)")
    return value


def run_task(cfg: DictConfig) -> Optional[float]:
    """``train(cfg)``, then its ``optimized_metric``; whatever happens, log the failure,
    say where the run folder is and close the log files.

    A bad config value, and every other error of the input or the environment (a missing
    or corrupt file, an unknown or absent device, a checkpoint that does not fit, a full
    disk: ``chordexp.errors.is_user_error``), is one line: in a single run it exits with
    status 2 (bad input, as every entry point) without a traceback; in a sweep it fails that job (Hydra reports it after the
    other jobs). So is a non-finite loss (``NonFiniteLossError: ... at epoch E, batch B``).
    Other errors are bugs and log their traceback; so does every error with
    ``CHORDEXP_DEBUG=1``. run_task imports no torch of its own (TrainingInterrupted is
    looked up only once the trainer is loaded).
    """
    folder = run_dir()
    announce_run_folder(folder)
    try:
        metrics = train(cfg)
        return objective(metrics, cfg.optimized_metric) if metrics else None  # {}: a DDP rank other than 0
    except ConfigValueError as err:
        log.error("invalid config: %s", err)
        if HydraConfig.get().mode == RunMode.RUN:
            raise SystemExit(2) from None
        raise
    except training_interrupted() as err:
        from chordexp.training.stop_signals import exit_status

        log.error("stopped: %s; continue with: python -m chordexp.run resume=%s", err, folder)
        if HydraConfig.get().mode == RunMode.RUN:
            raise SystemExit(exit_status(err.reason)) from None
        raise
    except KeyboardInterrupt:
        log.error("interrupted; continue with: python -m chordexp.run resume=%s", folder)
        raise
    except Exception as err:
        report_failure(err)
        if HydraConfig.get().mode == RunMode.RUN and is_user_error(err) and not debug_requested():
            raise SystemExit(2) from None  # bad input or environment: 2, as every entry point
        raise
    finally:
        log.info("run folder: %s", folder)
        close_log_files()


class _NeverRaised(Exception):
    """Stands in for TrainingInterrupted before the trainer module is loaded."""


def training_interrupted() -> Type[Any]:
    """``TrainingInterrupted`` if the trainer was imported (only then can it have been
    raised), without importing torch for a run that failed before training."""
    import sys

    module = sys.modules.get("chordexp.training.trainer")
    return getattr(module, "TrainingInterrupted", _NeverRaised)


def report_failure(err: BaseException) -> None:
    """Log a failed run: one line (``run failed: <what>``) for an error of the input or the
    environment, the traceback for anything else or when ``CHORDEXP_DEBUG`` asks for it."""
    if is_user_error(err) and not debug_requested():
        log.error("run failed: %s", one_line(err))
    else:
        log.exception("run failed: %s", one_line(err))


def announce_run_folder(folder: Path) -> None:
    """Under DDP rank 0 tells the other ranks (waiting in ``cli``) its run folder."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from chordexp.training.distributed import current_context

        context = current_context()
        if context is not None and context.is_main:
            broadcast_object(str(folder))


def close_log_files() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
        if isinstance(handler, logging.FileHandler):
            handler.close()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> Optional[float]:
    return run_task(cfg)


def join_distributed_run(args: list) -> Any:
    """Under ``torchrun``: join the process group (the DistContext), else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:  # not torchrun: no torch import here
        return None
    from chordexp.errors import UsageError
    from chordexp.training.distributed import init_from_env

    if any(arg in ("-m", "--multirun") for arg in args):
        raise UsageError("-m/--multirun sweeps run jobs one by one; start each DDP job with its own torchrun")
    return init_from_env()


def broadcast_object(value: Any) -> Any:
    from chordexp.training.distributed import broadcast_object as broadcast

    return broadcast(value)


def shutdown_distributed() -> None:
    if "torch.distributed" in __import__("sys").modules:
        from chordexp.training.distributed import shutdown

        shutdown()


def cli() -> None:
    """``python -m chordexp.run``: ``rerun=``/``resume=`` expanded, then Hydra's main."""
    import sys

    from chordexp.errors import UsageError
    from chordexp.experiment.rerun import expand_run_shortcuts
    from chordexp.experiment.run_lock import claim_run_folder
    from chordexp.output_dirs import check_output_dirs

    claim = None
    try:
        sys.argv[1:] = [no_trackers(arg) for arg in expand_run_shortcuts(sys.argv[1:])]
        check_output_dirs(sys.argv[1:])  # a run folder that cannot be made: one line, not Hydra's traceback
        distributed = join_distributed_run(sys.argv[1:])
        if distributed is None or distributed.is_main:  # a folder holding a run, or in use: refused, then locked
            claim = claim_run_folder(sys.argv[1:])
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if distributed is not None and not distributed.is_main:
        if any(arg.startswith(("--cfg", "--help", "-h", "--hydra-help", "--info")) for arg in sys.argv[1:]):
            return  # rank 0 answers; it never reaches the broadcast the others would wait for
        folder = broadcast_object(None)  # rank 0's run folder, sent from run_task
        sys.argv += [f"hydra.run.dir='{folder}'", "hydra.output_subdir=null", "hydra/job_logging=stdout"]
    if claim is not None:
        sys.argv[1:] = claim.argv  # the folder checked and locked is the one Hydra writes
    try:
        main()
    finally:
        if claim is not None:
            claim.release()
        shutdown_distributed()


if __name__ == "__main__":
    cli()
