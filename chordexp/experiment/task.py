"""The training task: a composed config in, a filled run folder and its metrics out.

``train(cfg)`` is plain and testable: give it a composed config whose
``hydra.runtime.output_dir`` names the run folder. The error and exit policy around
it is ``chordexp.experiment.run_outcome``'s.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict

from omegaconf import DictConfig

from chordexp.errors import ConfigValueError
from chordexp.experiment import run_folder
from chordexp.experiment.components import build_components, build_loggers, whole_val_loader
from chordexp.experiment.environment import record_environment
from chordexp.experiment.finetune import check_required as check_finetune_required
from chordexp.experiment.finetune import settings_of
from chordexp.experiment.optuna_trial import trial_callbacks
from chordexp.experiment.preflight import checked_training_config
from chordexp.experiment.resources import rank_device, set_threads
from chordexp.experiment.resume_check import check_resume_config
from chordexp.experiment.run_outcome import run_dir
from chordexp.experiment.run_plots import write_run_plots
from chordexp.experiment.schemas import resolved_dict
from chordexp.inference.recognizer import ChordRecognizer
from chordexp.inference.transcribe import transcribe_files
from chordexp.loggers import finish_loggers
from chordexp.model import count_parameters
from chordexp.scoring import evaluate_dirs, format_table
from chordexp.training import Trainer
from chordexp.training.distributed import current_context
from chordexp.training.stop_signals import stop_on_signals

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> Dict[str, Any]:
    """Train one model as ``cfg`` says, fill the run folder, return metrics.json's content
    (``{}`` on a DDP rank other than 0, which writes nothing)."""
    start = time.perf_counter()
    config = checked_training_config(cfg)  # before anything is built
    check_finetune_required(cfg)
    folder = run_dir()
    config.checkpoint_dir = str(folder / config.checkpoint_dir)  # validated: relative, inside the folder

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
            raise ConfigValueError(
                f"data.batch_size={config.batch_size} is the global batch and must divide by "
                f"the {distributed.world_size} processes of this run"
            )
    components = build_components(cfg, config, distributed)
    decoder = components.pop("decoder", None)
    run_config = resolved_dict(cfg)
    trial = resolved_dict(cfg.get("optuna_trial") or {})  # an Optuna trial reports each epoch; its pruner may stop it
    pruning = trial_callbacks(trial, cfg.optimized_metric, folder) if main_rank else []
    trainer = Trainer(config=config, callbacks=[*loggers, *pruning], distributed=distributed, **components)
    trainer.checkpoint_extra = {"run_config": run_config}  # a copied checkpoint keeps its provenance
    if decoder is not None:  # predict decodes with the settings of the data the model learnt from
        trainer.checkpoint_extra["decoder"] = decoder
    if resume:
        resume_from_last(trainer, Path(config.checkpoint_dir) / "last.pt", folder)
    if main_rank:
        record_environment(
            folder,
            seed=config.seed,
            device=str(trainer.device),
            resume=resume,
            distributed=distributed,
            init_from=settings_of(cfg)["init_from"],
        )
    num_parameters = count_parameters(trainer.model)
    log.info(
        "training %s parameters on %s for %d epochs; run folder %s%s",
        f"{num_parameters:,}",
        trainer.device,
        config.num_epochs,
        folder,
        f"; DDP over {distributed.world_size} processes ({distributed.backend})" if distributed else "",
    )

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
    write_run_plots(
        folder,
        history,
        Path(config.checkpoint_dir) / "best.pt",
        whole_val_loader(components["val_loader"], config.batch_size),
        trainer.device,
    )
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
    log.info(
        "best %s %.4f at epoch %d of %d (%.1f s)",
        metrics["monitor"],
        metrics["best_monitor_value"],
        metrics["best_epoch"],
        metrics["epochs_run"],
        wall_time_s,
    )
    if cfg.eval_songs:
        evaluate_songs(Path(config.checkpoint_dir) / "best.pt", Path(cfg.eval_songs), folder)
    finish_loggers(loggers, folder)  # after metrics.json and the plots: the trackers upload them
    return metrics


def resume_from_last(trainer: Trainer, last: Path, folder: Path) -> None:
    """Continue ``folder``'s run from ``last`` (its ``last.pt``); a run killed before its
    first epoch ended has none and starts over, which is the same thing. A config that
    differs from the checkpoint's beyond ``chordexp.experiment.resume_check.RESUMABLE_KEYS`` is
    refused (``python -m chordexp.run`` refuses it before Hydra starts; this is the check
    for a resume started some other way)."""
    if last.is_file():
        current = trainer.checkpoint_extra.get("run_config")  # this session's; load_checkpoint restores the saved
        trainer.load_checkpoint(last)
        if current is not None:
            check_resume_config(folder, last, trainer.checkpoint_extra.get("run_config"), current)
        log.info("resuming %s after epoch %d", folder, trainer.current_epoch)
    else:
        log.warning("resume: %s does not exist (no epoch had finished); starting from the first epoch", last)


def evaluate_songs(checkpoint: Path, songs: Path, folder: Path) -> Dict[str, Any]:
    """Transcribe ``songs`` with ``checkpoint`` into ``folder/songs/`` and score them with
    mir_eval against the ``.lab`` files beside the audio: ``folder/song_metrics.json``."""
    predictions = folder / "songs"
    recognizer = ChordRecognizer.from_checkpoint(checkpoint)
    transcribe_files(recognizer, songs, predictions, progress=False, echo=log.debug)
    result = evaluate_dirs(predictions, songs)
    run_folder.write_json(folder / "song_metrics.json", result)
    log.info("song-level evaluation of %s:\n%s", songs, format_table(result))
    return result
