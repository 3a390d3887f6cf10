"""Bad input, clear errors: one table of every entry point's answer to bad input.

Each case is an entry point (``run``, ``predict``, ``evaluate``, ``report`` on the
command line; ``api`` in-process), its arguments (over files made by the ``files``
fixture), the exit status it must end with and a regex its one error line must match;
that line names the key or the file. A command line must also print no traceback, and
a run's ``run.log`` must hold the same line.

The command lines run in processes of their own, forked from ``cli_forkserver.py``
(which has torch, Hydra and mir_eval imported already), two at a time: the same code
path as ``python -m chordexp.<tool>`` without paying the imports dozens of times.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import fault_files as ff
import pytest
import torch

TESTS = Path(__file__).resolve().parent
NOT_WRITABLE = "/sys/chordexp-not-writable"  # even root cannot create anything in /sys
CUDA = torch.cuda.is_available()


def _writable_sys() -> Optional[str]:
    """A reason to skip the not-writable cases where /sys is missing or writable."""
    import tempfile

    if not os.path.isdir("/sys"):
        return "no /sys here"
    try:
        os.rmdir(tempfile.mkdtemp(dir="/sys"))
    except OSError:
        return None
    return "folders can be created in /sys here"


SYS_WRITABLE = _writable_sys()


@dataclass(frozen=True)
class Case:
    """One row of the table. ``args`` may hold ``{d}`` (the fixture folder) and ``{run}``
    (this case's run folder); a ``run`` case gets ``experiment=smoke`` and
    ``hydra.run.dir={run}`` unless it names its own. An ``api`` case calls ``call(d)``."""

    id: str
    entry: str
    args: Tuple[str, ...] = ()
    status: int = 2
    pattern: str = ""
    call: Optional[Callable[[Path], Any]] = None
    error: type = ValueError
    env: Tuple[Tuple[str, str], ...] = ()
    skip: Optional[str] = None
    unchanged: Tuple[str, ...] = ()  # files or folders under {d} that must stay byte-identical

    def command_args(self, d: Path) -> List[str]:
        args = [a.format(d=d, run=d / "runs" / self.id) for a in self.args]
        if self.entry == "run" and not any(a.startswith(("resume=", "hydra.run.dir=")) for a in args):
            args = ["experiment=smoke", *args, f"hydra.run.dir={d / 'runs' / self.id}"]
        flags = [a for a in args if a in ("-m", "--multirun")]  # Hydra's flags go before the overrides
        return flags + [a for a in args if a not in flags]


def run(id: str, *args: str, status: int = 2, pattern: str, **kw: Any) -> Case:
    return Case(id, "run", args, status, pattern, **kw)


def tool(
    entry: str,
    id: str,
    *args: str,
    pattern: str,
    status: int = 2,
    skip: Optional[str] = None,
    unchanged: Tuple[str, ...] = (),
) -> Case:
    return Case(id, entry, args, status, pattern, skip=skip, unchanged=unchanged)


def api(id: str, call: Callable[[Path], Any], error: type, pattern: str, **kw: Any) -> Case:
    return Case(id, "api", (), 0, pattern, call, error, **kw)


USER_DATASET = ("allow_any_target=true", "data=dummy")
NO_GPU = "a CUDA device is present" if CUDA else None

RUN_CASES = [
    # Hydra's own composition errors (its first line names the option or key)
    run("unknown-group-option", "optimizer=adamx", pattern=r"Could not find 'optimizer/adamx'"),
    run("misspelt-key", "optimizer.lrr=1", pattern=r"Could not override 'optimizer\.lrr'"),
    run("wrong-type", "trainer.num_epochs=abc", pattern=r"Error merging override trainer\.num_epochs=abc"),
    # values that compose but cannot work
    run("zero-lr", "optimizer.lr=0", pattern=r"invalid config: optimizer\.lr=0\.0 must be > 0"),
    run("negative-lr", "optimizer.lr=-0.001", pattern=r"optimizer\.lr=-0\.001 must be > 0"),
    run("zero-batch-size", "data.batch_size=0", pattern=r"data\.batch_size=0 must be > 0"),
    run("negative-batch-size", "data.batch_size=-8", pattern=r"data\.batch_size=-8 must be > 0"),
    run("zero-epochs", "trainer.num_epochs=0", pattern=r"trainer\.num_epochs=0 must be > 0"),
    run("negative-epochs", "trainer.num_epochs=-2", pattern=r"trainer\.num_epochs=-2 must be > 0"),
    run("negative-warmup", "scheduler.warmup_epochs=-1", pattern=r"scheduler\.warmup_epochs=-1 must be >= 0"),
    run("negative-workers", "data.num_workers=-1", pattern=r"data\.num_workers=-1 must be >= 0"),
    run("unknown-device", "trainer.device=tpu", pattern=r"trainer\.device='tpu' must be one of auto, cpu, cuda"),
    run(
        "cuda-without-gpu",
        "data=dummy",
        "trainer.device=cuda",
        pattern=r"run failed: device='cuda' but CUDA is not available here",
        skip=NO_GPU,
    ),
    run("unknown-optimized-metric", "optimized_metric=val_los", pattern=r"optimized_metric='val_los' is not"),
    # finetune.*: starting from a trained model (issue 17)
    run(
        "finetune-unknown-freeze",
        "finetune.freeze=[backbone]",
        pattern=r"finetune\.freeze: unknown module 'backbone' of ChordRecognitionModel; valid: frontend, input_norm",
    ),
    run(
        "finetune-missing-init-from", "finetune.init_from={d}/nope.pt", pattern=r"checkpoint \S*nope\.pt: no such file"
    ),
    run(
        "finetune-init-from-other-model",
        "finetune.init_from={d}/ckpt.pt",  # smoke's model is wider than ckpt.pt's
        pattern=r"finetune\.init_from=\S*ckpt\.pt: does not fit this model: .*of another shape",
    ),
    # song mode
    run(
        "decoder-stay-one", "decoder.self_transition=1.0", pattern=r"decoder\.self_transition=1\.0 must be in \(0, 1\)"
    ),
    run(
        "decoder-transpositions-negative",
        "decoder.transpositions=-1",
        pattern=r"decoder\.transpositions=-1 must be an integer in 0\.\.3",
    ),
    run(
        "decoder-prior-weight-nan",
        "decoder.prior_weight=nan",
        pattern=r"decoder\.prior_weight=nan must be in \[-2\.0, 1\.0\]",
    ),
    run(
        "song-tuning-out-of-range",
        "experiment=song_smoke",
        "data.dataset.tuning_cents=60",
        pattern=r"tuning_cents \(the most the band is tuned off A440\) must be in 0\.\.50: .* got 60",
    ),
    run(
        "song-excerpt-too-short",
        "experiment=song_smoke",
        "data.clip_seconds=0.5",
        pattern=r"clip_seconds must be in 1\.\.120 s for songs, got 0\.5",
    ),
    run(
        "song-mode-on-clip-data",
        "data=synthetic",
        "data.sequence=true",
        "data.train_size=4",
        "data.val_size=2",
        pattern=r"data\.sequence=true needs a dataset with frame targets",
    ),
    # data
    run("data-folder-not-given", "data=folder", pattern=r"data\.dataset\.root is required"),
    run(
        "missing-data-folder",
        "data=folder",
        "data.dataset.root={d}/nope",
        pattern=r"data folder \S*/nope: no such directory \(data\.dataset\.root\)",
    ),
    run("empty-data-folder", "data=folder", "data.dataset.root={d}/empty", pattern=r"\S*/empty holds no audio files"),
    run(
        "corrupt-audio",
        "data=folder",
        "data.dataset.root={d}/songs_corrupt",
        "data.dataset.on_error=raise",
        pattern=r"songs_corrupt/a\.wav: cannot decode audio",
    ),
    run(
        "unreadable-lab",
        "data=folder",
        "data.dataset.root={d}/songs_badlab",
        "data.dataset.on_error=raise",
        pattern=r"songs_badlab/a\.lab:2: not UTF-8 text",
    ),
    run(
        "label-outside-vocabulary",
        "data=folder",
        "data.dataset.root={d}/songs_label",
        "data.dataset.on_error=raise",
        pattern=r"songs_label/a\.lab:2: 'H:maj' is not a chord label mir_eval can parse",
    ),
    run(
        "every-song-skipped",
        "data=folder",
        "data.dataset.root={d}/songs_corrupt",
        pattern=r"data folder \S*songs_corrupt: no usable songs in the \w+ split",
    ),
    run(
        "fold-without-num-folds",
        "data=folder",
        "data.dataset.root={d}/songs_good",
        "data.fold=3",
        pattern=r"data\.fold=3 must be an integer in 0\.\.0 \(data\.num_folds=0\)",
    ),
    run(
        "one-fold",
        "data=folder",
        "data.dataset.root={d}/songs_good",
        "data.num_folds=1",
        pattern=r"data\.num_folds=1 must be 0 \(a val_fraction split\) or an integer >= 2",
    ),
    run(
        "folds-and-split-file",
        "data=folder_songs",
        "data.dataset.root={d}/songs_good",
        "data.num_folds=3",
        "data.dataset.split_file={d}/split.txt",
        pattern=r"data\.num_folds=3 and data\.dataset\.split_file=\S*split\.txt both choose the split",
    ),
    run(
        "missing-annotation-folder",
        "data=folder",
        "data.dataset.root={d}/songs_good",
        "data.dataset.annotations={d}/nope",
        pattern=r"annotation folder \S*/nope: no such directory \(data\.dataset\.annotations\)",
    ),
    run(
        "bad-on-error-mode",
        "data=folder",
        "data.dataset.root={d}/songs_label",
        "data.dataset.on_error=ignore",
        pattern=r"FolderChordDataset: on_error must be one of \('skip', 'raise'\), got 'ignore'",
    ),
    run(
        "label-index-out-of-range",
        *USER_DATASET,
        "data.dataset._target_=fault_datasets.OutOfRangeLabels",
        pattern=r"target root=12 \(item 0 of the batch\) is outside 0\.\.11",
    ),
    run(
        "dataloader-worker-killed",
        *USER_DATASET,
        "data.num_workers=1",
        "data.dataset._target_=fault_datasets.KilledWorker",
        pattern=r"DataLoader worker \(pid\(s\) \d+\) exited unexpectedly: a DataLoader worker process died",
    ),
    run(
        "item-fails-to-load",
        "allow_any_target=true",
        "data.dataset._target_=fault_datasets.BrokenRender",
        pattern=r"BrokenRender \(train split\) item \d+ failed to load: FloatingPointError: the synthesiser diverged",
    ),
    run(
        "non-finite-loss",
        "optimizer.lr=1e30",
        pattern=r"run failed: NonFiniteLossError: non-finite training loss or gradient at epoch 1, batch \d+; "
        r"no checkpoint was written for this epoch",
    ),
    run(
        "non-finite-loss-fp16",
        "trainer.mixed_precision=fp16",
        "optimizer.lr=1e30",  # not a GradScaler overflow
        pattern=r"run failed: NonFiniteLossError: non-finite training loss or gradient at epoch 1, batch \d+ \(fp16: "
        r"the loss itself, or gradients that overflow with the GradScaler's scale below 1\); no checkpoint",
    ),
    # paths and components
    run(
        "target-not-allowed",
        "model._target_=os.system",
        pattern=r"model\._target_='os\.system' is not one of chordexp's components.*allow_any_target=true",
    ),
    run(
        "checkpoint-dir-absolute",
        "trainer.checkpoint_dir=/tmp/elsewhere",
        pattern=r"trainer\.checkpoint_dir='/tmp/elsewhere' must be a relative path inside the run folder",
    ),
    run(
        "checkpoint-dir-escapes",
        "trainer.checkpoint_dir=../../x",
        pattern=r"trainer\.checkpoint_dir='\.\./\.\./x' must be a relative path inside the run folder",
    ),
    run("eval-songs-missing", "eval_songs={d}/nope", pattern=r"eval_songs='\S*/nope' must be an existing folder"),
    run(
        "run-folder-not-writable",
        f"hydra.run.dir={NOT_WRITABLE}/run",
        status=2,
        pattern=rf"hydra\.run\.dir={NOT_WRITABLE}/run: cannot create the run folder: /sys is not writable",
        skip=SYS_WRITABLE,
    ),
    run(
        "run-folder-under-a-file",
        "hydra.run.dir={d}/afile/run",
        status=2,
        pattern=r"hydra\.run\.dir=\S*/afile/run: cannot create the run folder: \S*/afile is not a folder",
    ),
    # checkpoints and resume
    run(
        "resume-other-model-shape",
        "resume={d}/run_shape",
        pattern=r"checkpoint \S*run_shape/checkpoints/last\.pt: does not fit this model: .*shape mismatches",
    ),
    run(
        "resume-truncated-checkpoint",
        "resume={d}/run_trunc",
        pattern=r"checkpoint \S*run_trunc/checkpoints/last\.pt: not a readable torch checkpoint, truncated or corrupt",
    ),
    run(
        "resume-non-checkpoint",
        "resume={d}/run_tensor",
        pattern=r"checkpoint \S*run_tensor/checkpoints/last\.pt: not a chordexp training checkpoint \(holds a Tensor\)",
    ),
    run("resume-missing-folder", "resume={d}/nope", status=2, pattern=r"resume=\S*/nope: no such folder"),
    run(
        "resume-not-a-run-folder",
        "resume={d}/empty",
        status=2,
        pattern=r"resume=\S*/empty: not a run folder \(no \.hydra/config\.yaml",
    ),
    run(
        "resume-saved-config-not-yaml",
        "resume={d}/run_badyaml",
        status=2,
        unchanged=("run_badyaml",),
        pattern=r"resume=\S*/run_badyaml: \S*/config\.yaml is not valid YAML \(line 2, column \d+: expected",
    ),
    run(
        "resume-saved-config-not-a-mapping",
        "resume={d}/run_notmapping",
        status=2,
        unchanged=("run_notmapping",),
        pattern=r"resume=\S*/run_notmapping: \S*/config\.yaml holds no config \(a YAML mapping of keys\), but list",
    ),
    # a config changed since last.pt would be half applied on resume (the batch size, not the learning rate)
    run(
        "resume-saved-config-edited-lr",
        "resume={d}/run_edited_lr",
        status=2,
        unchanged=("run_edited_lr",),
        pattern=r"^resume=\S*/run_edited_lr: the config \(its \.hydra/config\.yaml with this command's overrides\) "
        r"differs from the one \S*/run_edited_lr/checkpoints/last\.pt was trained with: optimizer\.lr \(0\.5 "
        r"in last\.pt, now 0\.001\); .* restore \S*/run_edited_lr/\.hydra/config\.yaml .* rerun=\S*/run_edited_lr",
    ),
    run(
        "resume-saved-config-edited-batch-size",
        "resume={d}/run_edited_batch",
        status=2,
        unchanged=("run_edited_batch",),
        pattern=r"was trained with: data\.batch_size \(4 in last\.pt, now 8\);",
    ),
    run(
        "resume-with-a-half-applied-override",
        "resume={d}/run_resumable",
        "optimizer.weight_decay=0.5",
        status=2,
        unchanged=("run_resumable",),
        pattern=r"was trained with: optimizer\.weight_decay \([\d.e-]+ in last\.pt, now 0\.5\);",
    ),
    run(
        "resume-saved-config-edited-seed-and-model",
        "resume={d}/run_edited_many",
        status=2,
        unchanged=("run_edited_many",),
        pattern=r"was trained with: model\.d_model \(24 in last\.pt, now \d+\), model\.dropout \(0\.3 in last\.pt, "
        r"now [\d.]+\), optimizer\.lr \(0\.5 in last\.pt, now 0\.001\) and 1 more;",
    ),
    # a folder that holds a run is never reused; a folder in use is never shared (byte-identical after)
    run(
        "new-run-into-a-finished-run",
        "experiment=smoke",
        "hydra.run.dir={d}/run_done",
        status=2,
        unchanged=("run_done",),
        pattern=r"^hydra\.run\.dir=\S*/run_done already holds a run \(\.hydra/config\.yaml, metrics\.json, "
        r"history\.json, environment\.json, checkpoints/\); nothing was changed there: continue it with "
        r"resume=\S*/run_done, "
        r"redo it in a new folder with rerun=\S*/run_done, or give a new folder \(hydra\.run\.dir=\.\.\.\)$",
    ),
    run(
        "rerun-into-its-own-folder",
        "rerun={d}/run_done",
        "hydra.run.dir={d}/run_done",
        status=2,
        unchanged=("run_done",),
        pattern=r"hydra\.run\.dir=\S*/run_done already holds a run",
    ),
    run(
        "new-run-into-a-folder-of-results",
        "experiment=smoke",
        "hydra.run.dir={d}/results_only",
        status=2,
        unchanged=("results_only",),
        pattern=r"results_only already holds a run \(metrics\.json\)",
    ),
    run(
        "new-run-into-a-folder-of-checkpoints",
        "experiment=smoke",
        "hydra.run.dir={d}/ckpt_only",
        status=2,
        unchanged=("ckpt_only",),
        pattern=r"ckpt_only already holds a run \(checkpoints/\)",
    ),
    run(
        "new-run-into-its-own-checkpoint-dir",
        "experiment=smoke",
        "trainer.checkpoint_dir=weights",
        "hydra.run.dir={d}/own_ckpt_dir",
        status=2,
        unchanged=("own_ckpt_dir",),
        pattern=r"own_ckpt_dir already holds a run \(weights/\)",
    ),
    run(
        "new-run-into-a-running-runs-folder",
        "experiment=smoke",
        "hydra.run.dir={d}/run_locked",
        status=2,
        unchanged=("run_locked",),
        pattern=r"hydra\.run\.dir=\S*/run_locked is in use by a running run \(pid \d+ on \S+ since [^;]+; lock "
        r"\S*/run_locked/\.chordexp\.lock\): two runs in one folder would mix their files",
    ),
    run(
        "resume-of-a-running-run",
        "resume={d}/run_busy",
        status=2,
        unchanged=("run_busy",),
        pattern=r"hydra\.run\.dir=\S*/run_busy is in use by a running run \(pid \d+ on ",
    ),
    run(
        "new-run-inside-a-running-sweep",
        "experiment=smoke",
        "hydra.run.dir={d}/sweep_busy/3",
        status=2,
        unchanged=("sweep_busy",),
        pattern=r"hydra\.run\.dir=\S*/sweep_busy/3 is inside \S*/sweep_busy, which is in use by a running sweep",
    ),
    run(
        "run-folder-with-an-unreadable-lock",
        "experiment=smoke",
        "hydra.run.dir={d}/lock_garbage",
        status=2,
        unchanged=("lock_garbage",),
        pattern=r"lock_garbage is locked by \S*/\.chordexp\.lock, which cannot be read",
    ),
    run(
        "run-folder-locked-from-another-host",
        "experiment=smoke",
        "hydra.run.dir={d}/lock_foreign",
        status=2,
        unchanged=("lock_foreign",),
        pattern=r"lock_foreign is in use by a running run \(pid 1 on elsewhere\.example",
    ),
    run(
        "sweep-into-a-folder-of-runs",
        "-m",
        "optimizer=adamw,sgd",
        "hydra.sweep.dir={d}/sweep_done",
        status=2,
        unchanged=("sweep_done",),
        pattern=r"hydra\.sweep\.dir=\S*/sweep_done already holds a sweep or runs \(\S*/sweep_done \(multirun\.yaml\); "
        r"\S*/sweep_done/0 \(\.hydra/config\.yaml",
    ),
    run(
        "search-into-a-folder-of-runs",
        "hparams_search=optuna",
        "hydra.sweep.dir={d}/sweep_done",
        status=2,
        unchanged=("sweep_done",),
        pattern=r"hydra\.sweep\.dir=\S*/sweep_done already holds a sweep or runs",
    ),
    run(
        "sweep-into-a-finished-sweep-record",
        "-m",
        "seed=1,2",
        "hydra.sweep.dir={d}/sweep_record",
        status=2,
        unchanged=("sweep_record",),
        pattern=r"sweep_record already holds a sweep or runs \(\S*sweep_record \(multirun",
    ),
    # composition: one line naming the option or key (no search path, no internal schemas)
    run(
        "unknown-experiment",
        "experiment=nope",
        pattern=r"^Could not find 'experiment/nope'; choose one of: finetune, onecycle_fast, release, small_quick, smoke, song_smoke$",
    ),
    run(
        "unknown-launcher",
        "hydra/launcher=nope",
        pattern=r"^Could not find 'hydra/launcher/nope'; choose one of: basic, joblib",
    ),
    run("append-an-existing-key", "+seed=3", pattern=r"^Could not append to config\. An item is already at 'seed'"),
    run("delete-a-missing-key", "~optimizer.foo", pattern=r"^Could not delete from config\. 'optimizer\.foo' does not"),
    run("override-syntax-error", "seed=(", pattern=r"^override 'seed=\(': "),
    run(
        "sweep-without-multirun",
        "model=small,base",
        pattern=r"^Ambiguous value for argument 'model=small,base'; .*add --multirun",
    ),
    # model, optimizer and trainer values that cannot work; NaN and inf wherever a number is read
    run("model-zero-heads", "model.num_heads=0", pattern=r"invalid config: model\.num_heads=0 must be an integer > 0"),
    run("model-zero-width", "model.d_model=0", pattern=r"invalid config: model\.d_model=0 must be an integer > 0"),
    run("model-zero-channels", "model.channels=0", pattern=r"invalid config: model\.channels=0 must be an integer > 0"),
    run("model-negative-blocks", "model.num_blocks=-1", pattern=r"model\.num_blocks=-1 must be an integer >= 0"),
    run("model-zero-octaves", "model.n_octaves=0", pattern=r"model\.n_octaves=0 must be an integer > 0"),
    run("model-zero-bins", "model.bins_per_octave=0", pattern=r"model\.bins_per_octave=0 must be an integer > 0"),
    run("model-dropout-above-one", "model.dropout=1.5", pattern=r"model\.dropout=1\.5 must be in \[0, 1\)"),
    run("model-dropout-nan", "model.dropout=nan", pattern=r"model\.dropout=nan must be in \[0, 1\)"),
    run("model-fmin-nan", "model.fmin=nan", pattern=r"model\.fmin=nan must be a finite frequency > 0 Hz"),
    run("model-fmin-zero", "model.fmin=0", pattern=r"model\.fmin=0\.0 must be a finite frequency > 0 Hz"),
    run(
        "adam-beta-above-one",
        "optimizer.betas=[1.5,0.999]",
        pattern=r"invalid config: optimizer\.betas=\[1\.5, 0\.999\] must be two numbers in \[0, 1\)",
    ),
    run("adam-one-beta", "optimizer.betas=[0.9]", pattern=r"optimizer\.betas=\[0\.9\] must be two numbers"),
    run("adam-negative-eps", "optimizer.eps=-1", pattern=r"optimizer\.eps=-1\.0 must be a finite number >= 0"),
    run("adam-eps-nan", "optimizer.eps=nan", pattern=r"optimizer\.eps=nan must be a finite number >= 0"),
    run(
        "sgd-negative-momentum",
        "optimizer=sgd",
        "optimizer.momentum=-1",
        pattern=r"optimizer\.momentum=-1\.0 must be a finite number >= 0",
    ),
    run(
        "sgd-nesterov-without-momentum",
        "optimizer=sgd",
        "optimizer.momentum=0",
        pattern=r"optimizer\.momentum=0\.0 must be > 0 with optimizer\.nesterov=true",
    ),
    run(
        "seed-too-large",
        "seed=18446744073709551616",
        pattern=r"invalid config: seed=18446744073709551616 must be an integer in 0\.\.2\*\*63-1",
    ),
    run("lr-inf", "optimizer.lr=inf", pattern=r"invalid config: optimizer\.lr=inf must be a finite number > 0"),
    run("weight-decay-nan", "optimizer.weight_decay=nan", pattern=r"optimizer\.weight_decay=nan must be >= 0"),
    run(
        "gradient-clip-nan",
        "trainer.gradient_clip=nan",
        pattern=r"invalid config: trainer\.gradient_clip=nan must be a finite number \(the largest gradient norm",
    ),
    run(
        "gradient-clip-inf", "trainer.gradient_clip=inf", pattern=r"trainer\.gradient_clip=inf must be a finite number"
    ),
    run("min-delta-nan", "trainer.min_delta=nan", pattern=r"trainer\.min_delta=nan must be a finite number >= 0"),
]

CKPT = "checkpoint={d}/ckpt.pt"
PREDICT_CASES = [
    tool(
        "baseline",
        "baseline-silence-below-zero",
        "input={d}/ok.wav",
        "output={d}/out",
        "silence_db=-35",
        pattern=r"^silence_db=-35\.0 must be a finite number of dB > 0 \(frames that far below the loud ones may be N\)",
    ),
    tool(
        "predict",
        "predict-missing-input",
        CKPT,
        "input={d}/nope.wav",
        "output={d}/out",
        pattern=r"\S*/nope\.wav: no such file or folder",
    ),
    tool(
        "predict",
        "predict-empty-folder",
        CKPT,
        "input={d}/empty",
        "output={d}/out",
        pattern=r"\S*/empty: the folder holds no audio files",
    ),
    tool(
        "predict",
        "predict-non-audio-file",
        CKPT,
        "input={d}/notes.txt",
        "output={d}/out",
        pattern=r"\S*/notes\.txt: cannot decode audio",
    ),
    tool(
        "predict",
        "predict-corrupt-audio",
        CKPT,
        "input={d}/bad.wav",
        "output={d}/out",
        pattern=r"\S*/bad\.wav: cannot decode audio",
    ),
    tool(
        "predict",
        "predict-missing-checkpoint",
        "checkpoint={d}/none.pt",
        "input={d}/ok.wav",
        "output={d}/out",
        pattern=r"checkpoint \S*/none\.pt: no such file",
    ),
    tool(
        "predict",
        "predict-non-checkpoint",
        "checkpoint={d}/tensor.pt",
        "input={d}/ok.wav",
        "output={d}/out",
        pattern=r"checkpoint \S*/tensor\.pt: not a chordexp training checkpoint \(holds a Tensor\)",
    ),
    tool(
        "predict",
        "predict-audio-as-checkpoint",
        "checkpoint={d}/ok.wav",
        "input={d}/ok.wav",
        "output={d}/out",
        pattern=r"checkpoint \S*/ok\.wav: not a readable torch checkpoint",
    ),
    tool(
        "predict",
        "predict-truncated-checkpoint",
        "checkpoint={d}/trunc.pt",
        "input={d}/ok.wav",
        "output={d}/out",
        pattern=r"checkpoint \S*/trunc\.pt: not a readable torch checkpoint, truncated or corrupt",
    ),
    tool(
        "predict",
        "predict-other-model-shape",
        "checkpoint={d}/shape.pt",
        "input={d}/ok.wav",
        "output={d}/out",
        pattern=r"checkpoint \S*/shape\.pt: does not fit this model",
    ),
    tool(
        "predict",
        "predict-unknown-device",
        CKPT,
        "input={d}/ok.wav",
        "output={d}/out",
        "device=tpu",
        pattern=r"unknown device 'tpu'; valid: auto, cpu, cuda, cuda:N, mps",
    ),
    tool(
        "predict",
        "predict-unknown-key",
        CKPT,
        "input={d}/ok.wav",
        "output={d}/out",
        "bogus=1",
        pattern=r"Key 'bogus' not in 'PredictArgs'",
    ),
    tool(
        "predict",
        "predict-wrong-type",
        CKPT,
        "input={d}/ok.wav",
        "output={d}/out",
        "self_transition=abc",
        pattern=r"Value 'abc' of type 'str' could not be converted to Float",
    ),
    tool(
        "predict",
        "predict-value-out-of-range",
        CKPT,
        "input={d}/ok.wav",
        "output={d}/out",
        "self_transition=1.5",
        pattern=r"self_transition=1\.5 must be in \(0, 1\)",
    ),
    tool(
        "predict",
        "predict-missing-output",
        CKPT,
        "input={d}/ok.wav",
        pattern=r"missing required argument\(s\): output=\.\.\.",
    ),
    tool(
        "predict",
        "predict-output-is-a-file",
        CKPT,
        "input={d}/ok.wav",
        "output={d}/afile",
        pattern=r"output=\S*/afile: cannot create the folder",
    ),
    tool(
        "predict",
        "predict-output-not-writable",
        CKPT,
        "input={d}/ok.wav",
        f"output={NOT_WRITABLE}",
        pattern=rf"output={NOT_WRITABLE}: cannot create the folder",
        skip=SYS_WRITABLE,
    ),
]
PREDICT_CASES += [
    # one output per input, and never over a file that is not a transcription of ours
    tool(
        "predict",
        "predict-over-a-reference-lab",
        CKPT,
        "input={d}/annotated",
        "output={d}/annotated",
        unchanged=("annotated",),
        pattern=r"^\S*/annotated/song\.lab exists and is not a chordexp transcription \(a reference \.lab\?\); it is "
        r"never replaced: choose another output= folder \(nothing was written\)$",
    ),
    tool(
        "predict",
        "predict-over-another-file",
        CKPT,
        "input={d}/ok.wav",
        "output={d}/out_taken",
        unchanged=("out_taken",),
        pattern=r"out_taken/ok\.lab exists and is not a chordexp transcription",
    ),
    tool(
        "predict",
        "predict-over-a-folder",
        CKPT,
        "input={d}/ok.wav",
        "output={d}/out_dir_target",
        pattern=r"out_dir_target/ok\.lab exists and is not a chordexp transcription",
    ),
    tool(
        "predict",
        "predict-over-foreign-probabilities",
        CKPT,
        "input={d}/ok.wav",
        "output={d}/out_probs",
        "probabilities=true",
        unchanged=("out_probs",),
        pattern=r"out_probs/ok\.probs\.npz exists and is not a chordexp probabilities file",
    ),
    # numbers that cannot work, and outputs that are not finite
    tool(
        "predict",
        "predict-silence-db-nan",
        CKPT,
        "input={d}/ok.wav",
        "output={d}/out",
        "silence_db=nan",
        pattern=r"^silence_db=nan must be a finite number of dB > 0 .* or null to turn the gate off$",
    ),
    tool(
        "predict",
        "predict-silence-db-negative",
        CKPT,
        "input={d}/ok.wav",
        "output={d}/out",
        "silence_db=-10",
        pattern=r"^silence_db=-10\.0 must be a finite number of dB > 0",
    ),
    tool(
        "predict",
        "predict-silence-db-zero",
        CKPT,
        "input={d}/ok.wav",
        "output={d}/out",
        "silence_db=0",
        pattern=r"^silence_db=0\.0 must be a finite number of dB > 0",
    ),
    tool(
        "predict",
        "predict-silence-db-inf",
        CKPT,
        "input={d}/ok.wav",
        "output={d}/out",
        "silence_db=inf",
        pattern=r"^silence_db=inf must be a finite number of dB > 0",
    ),
    tool(
        "predict",
        "predict-transpositions-too-many",
        CKPT,
        "input={d}/ok.wav",
        "output={d}/out",
        "transpositions=5",
        pattern=r"^transpositions=5 must be an integer in 0\.\.3 \(semitones up and down averaged; 0: off\)",
    ),
    tool(
        "predict",
        "predict-self-transition-nan",
        CKPT,
        "input={d}/ok.wav",
        "output={d}/out",
        "self_transition=nan",
        pattern=r"self_transition=nan must be in \(0, 1\)",
    ),
    tool(
        "predict",
        "predict-prior-weight-nan",
        CKPT,
        "input={d}/ok.wav",
        "output={d}/out",
        "prior_weight=nan",
        pattern=r"^prior_weight=nan must be in \[-2\.0, 1\.0\]",
    ),
    tool(
        "predict",
        "predict-one-sample-file",
        CKPT,
        "input={d}/one.wav",
        "output={d}/out_short",
        pattern=r"^\S*/one\.wav: too short to transcribe \(1 sample\(s\) at 16000 Hz\): a \.lab interval needs at",
    ),
    tool(
        "predict",
        "predict-overflowing-samples",
        CKPT,
        "input={d}/huge.wav",
        "output={d}/out_huge",
        pattern=r"^\S*/huge\.wav: the model's output is not finite \(NaN or inf\): its samples reach 3\.3e\+38",
    ),
    tool(
        "predict",
        "predict-nan-samples",
        CKPT,
        "input={d}/nan_audio.wav",
        "output={d}/out",
        pattern=r"\S*/nan_audio\.wav: the audio contains NaN or infinite samples",
    ),
    tool(
        "predict",
        "predict-nan-weights",
        "checkpoint={d}/nan.pt",
        "input={d}/ok.wav",
        "output={d}/out_nan",
        pattern=r"^checkpoint \S*/nan\.pt: weight \S+ holds NaN or inf values",
    ),
]
if not CUDA:
    PREDICT_CASES.append(
        tool(
            "predict",
            "predict-cuda-without-gpu",
            CKPT,
            "input={d}/ok.wav",
            "output={d}/out",
            "device=cuda",
            pattern=r"device='cuda' but CUDA is not available here",
        )
    )

EVALUATE_CASES = [
    tool(
        "evaluate",
        "evaluate-missing-predictions",
        "predictions={d}/nope",
        "references={d}/refs",
        pattern=r"predictions=\S*/nope: no such folder",
    ),
    tool(
        "evaluate",
        "evaluate-missing-references",
        "predictions={d}/preds_ok",
        "references={d}/nope",
        pattern=r"references=\S*/nope: no such folder",
    ),
    tool(
        "evaluate",
        "evaluate-unreadable-lab",
        "predictions={d}/preds_binary",
        "references={d}/refs",
        pattern=r"preds_binary/a\.lab:1: not UTF-8 text",
    ),
    tool(
        "evaluate",
        "evaluate-unparseable-label",
        "predictions={d}/preds_ok",
        "references={d}/refs_badlabel",
        pattern=r"refs_badlabel/a\.lab:1: 'H:maj' is not a chord label mir_eval can parse",
    ),
    tool(
        "evaluate",
        "evaluate-backwards-interval",
        "predictions={d}/preds_ok",
        "references={d}/refs_backwards",
        pattern=r"refs_backwards/a\.lab:1: end 1\.0 is not after start 2\.0",
    ),
    tool(
        "evaluate",
        "evaluate-nothing-pairs",
        "predictions={d}/preds_other",
        "references={d}/refs",
        pattern=r"no prediction in predictions=\S*preds_other matches a reference \.lab",
    ),
    tool(
        "evaluate",
        "evaluate-misspelt-key",
        "prediction={d}/preds_ok",
        "references={d}/refs",
        pattern=r"Key 'prediction' not in 'EvaluateArgs'",
    ),
    tool(
        "evaluate",
        "evaluate-wrong-type",
        "predictions={d}/preds_ok",
        "references={d}/refs",
        "allow_missing=maybe",
        pattern=r"Value 'maybe' is not a valid bool",
    ),
    tool(
        "evaluate",
        "evaluate-output-not-writable",
        "predictions={d}/preds_ok",
        "references={d}/refs",
        f"output={NOT_WRITABLE}/e.json",
        skip=SYS_WRITABLE,
        pattern=rf"{NOT_WRITABLE}: (Operation not permitted|Permission denied|Read-only file system)",
    ),
    tool(
        "evaluate",
        "evaluate-overlapping-reference",
        "predictions={d}/preds_ok",
        "references={d}/refs_overlap",
        pattern=r"^\S*refs_overlap/a\.lab:2: starts at 1\.0, before the previous interval ends \(2\.0\); intervals "
        r"must not overlap$",
    ),
    # an output never replaces an input, or any other reference, prediction, audio, checkpoint or run record
    tool(
        "evaluate",
        "evaluate-output-is-a-reference",
        "predictions={d}/preds_ok",
        "references={d}/refs",
        "output={d}/refs/a.lab",
        unchanged=("refs",),
        pattern=r"^output=\S*/refs/a\.lab is \S*/refs/a\.lab, an input of this evaluation; it is never replaced",
    ),
    tool(
        "evaluate",
        "evaluate-output-is-a-prediction",
        "predictions={d}/preds_ok",
        "references={d}/refs",
        "output={d}/preds_ok/a.lab",
        unchanged=("preds_ok",),
        pattern=r"^output=\S*/preds_ok/a\.lab is \S*/preds_ok/a\.lab, an input of this evaluation",
    ),
    tool(
        "evaluate",
        "evaluate-output-is-another-lab",
        "predictions={d}/preds_ok",
        "references={d}/refs",
        "output={d}/refs_badlabel/a.lab",
        unchanged=("refs_badlabel",),
        pattern=r"^output=\S*/refs_badlabel/a\.lab is a chord label file \(\.lab\); it is never replaced",
    ),
    tool(
        "evaluate",
        "evaluate-output-is-run-metrics",
        "predictions={d}/preds_ok",
        "references={d}/refs",
        "output={d}/run_done/metrics.json",
        unchanged=("run_done",),
        pattern=r"^output=\S*/run_done/metrics\.json is a record of the run \S*/run_done; it is never replaced",
    ),
    tool(
        "evaluate",
        "evaluate-output-is-a-saved-config",
        "predictions={d}/preds_ok",
        "references={d}/refs",
        "output={d}/run_done/.hydra/config.yaml",
        unchanged=("run_done",),
        pattern=r"config\.yaml is a record of the run \S*/run_done",
    ),
    tool(
        "evaluate",
        "evaluate-output-is-audio",
        "predictions={d}/preds_ok",
        "references={d}/refs",
        "output={d}/ok.wav",
        unchanged=("ok.wav",),
        pattern=r"^output=\S*/ok\.wav is an audio file",
    ),
    tool(
        "evaluate",
        "evaluate-output-is-a-checkpoint",
        "predictions={d}/preds_ok",
        "references={d}/refs",
        "output={d}/ckpt.pt",
        unchanged=("ckpt.pt",),
        pattern=r"^output=\S*/ckpt\.pt is a checkpoint",
    ),
]

RUN_REPORT = "runs={d}/run_report"
REPORT_CASES = [
    tool("report", "report-missing-folder", "runs={d}/nope", pattern=r"runs=\S*/nope: no such folder"),
    tool("report", "report-runs-is-a-file", "runs={d}/afile", pattern=r"runs=\S*/afile is a file"),
    tool("report", "report-no-runs", "runs={d}/empty", pattern=r"runs=\S*/empty holds no run folder"),
    tool(
        "report",
        "report-unknown-sort-column",
        "runs={d}/run_shape",
        "sort=bogus",
        pattern=r"sort=bogus is not a numeric column; valid: best_val_loss",
    ),
    tool("report", "report-misspelt-key", "run={d}/run_shape", pattern=r"Key 'run' not in 'ReportArgs'"),
    tool(
        "report",
        "report-wrong-type",
        "runs={d}/run_shape",
        "descending=maybe",
        pattern=r"Value 'maybe' is not a valid bool",
    ),
    tool(
        "report",
        "report-csv-not-writable",
        "runs={d}/run_shape",
        f"csv={NOT_WRITABLE}/r.csv",
        skip=SYS_WRITABLE,
        pattern=rf"{NOT_WRITABLE}: (Operation not permitted|Permission denied|Read-only file system)",
    ),
    tool(
        "report",
        "report-csv-over-metrics",
        RUN_REPORT,
        "csv={d}/run_report/metrics.json",
        unchanged=("run_report",),
        pattern=r"^csv=\S*/run_report/metrics\.json is \S*/run_report/metrics\.json, an input of this report; it is "
        r"never replaced: choose another file \(nothing was written\)$",
    ),
    tool(
        "report",
        "report-csv-over-history",
        RUN_REPORT,
        "csv={d}/run_report/history.json",
        unchanged=("run_report",),
        pattern=r"^csv=\S*/history\.json is \S*/history\.json, an input of this report",
    ),
    tool(
        "report",
        "report-plot-over-history",
        RUN_REPORT,
        "plot={d}/run_report/history.json",
        unchanged=("run_report",),
        pattern=r"^plot=\S*/history\.json is \S*/history\.json, an input of this report",
    ),
    tool(
        "report",
        "report-plot-over-run-log",
        RUN_REPORT,
        "plot={d}/run_report/run.log",
        unchanged=("run_report",),
        pattern=r"^plot=\S*/run\.log is \S*/run\.log, an input of this report",
    ),
    tool(
        "report",
        "report-csv-over-saved-config",
        RUN_REPORT,
        "csv={d}/run_report/.hydra/config.yaml",
        unchanged=("run_report",),
        pattern=r"^csv=\S*/\.hydra/config\.yaml is \S*, an input of this report",
    ),
    tool(
        "report",
        "report-plot-over-a-checkpoint",
        RUN_REPORT,
        "plot={d}/run_report/checkpoints/last.pt",
        unchanged=("run_report",),
        pattern=r"^plot=\S*/last\.pt is a checkpoint",
    ),
    tool(
        "report",
        "report-csv-over-another-runs-record",
        RUN_REPORT,
        "csv={d}/run_done/environment.json",
        unchanged=("run_done",),
        pattern=r"^csv=\S*/run_done/environment\.json is a record of the run \S*/run_done",
    ),
    tool(
        "report",
        "report-csv-over-a-reference",
        RUN_REPORT,
        "csv={d}/refs/a.lab",
        unchanged=("refs",),
        pattern=r"^csv=\S*/refs/a\.lab is a chord label file \(\.lab\)",
    ),
    tool(
        "report",
        "report-csv-and-plot-the-same-file",
        RUN_REPORT,
        "csv={d}/same.out",
        "plot={d}/same.out",
        pattern=r"^csv=\S*/same\.out and plot=\S*/same\.out name the same file",
    ),
]


# --------------------------------------------------------------------------- Python API


def _trainer(d: Path, *, dataset=None, **config: Any):
    from torch.utils.data import DataLoader

    from chordexp.data import DummyChordDataset
    from chordexp.model import ChordRecognitionModel
    from chordexp.training import Trainer, TrainingConfig

    data = dataset or DummyChordDataset(4, num_samples=ff.SR)
    loader = DataLoader(data, batch_size=2)
    options = dict(num_epochs=1, device="cpu", checkpoint_dir=str(d / "api_ckpt"), save_every=0, log_every=0)
    options.update(config)
    model = ChordRecognitionModel(sample_rate=ff.SR, d_model=64, num_blocks=1, num_heads=4, channels=4)
    return Trainer(model, loader, loader, TrainingConfig(**options))


def _out_of_range_training(d: Path) -> None:
    from chordexp.data import DummyChordDataset

    class Labels(DummyChordDataset):
        def __getitem__(self, index):
            audio, targets = super().__getitem__(index)
            targets["chord_type"] = targets["chord_type"] * 0 + 40
            return audio, targets

    _trainer(d, dataset=Labels(4, num_samples=ff.SR)).train()


def _broken_synthetic_item(d: Path) -> None:
    from chordexp.data import SyntheticChordDataset

    dataset = SyntheticChordDataset(8, sample_rate=ff.SR, realism="plain")
    dataset._synth.render = lambda rng, *labels: 1 / 0
    dataset[3]


def _broken_folder_item(d: Path) -> None:
    from chordexp.data import FolderChordDataset

    dataset = FolderChordDataset(4, root=d / "songs_good", sample_rate=ff.SR, pitch_shift=0)
    object.__setattr__(dataset.songs[0], "audio", None)  # the decoded song is lost
    dataset[0]


def _compose_and_map(*overrides: str):
    """``to_training_config`` of ``conf/config.yaml`` composed with ``overrides``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from chordexp.experiment.schemas import register_configs, to_training_config

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(ff.REPO / "conf")):
            cfg = compose("config", overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()
    return to_training_config(cfg)


def _attr(name: str) -> Any:
    """``_attr('chordexp.audio:read_audio')``: the attribute, its module imported now."""
    import importlib

    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)


API_CASES = [
    api(
        "api-zero-lr-in-config",
        lambda d: _compose_and_map("optimizer.lr=0"),
        _attr("chordexp.config:ConfigValueError"),
        r"^optimizer\.lr=0\.0 must be > 0$",
    ),
    api(
        "api-negative-warmup",
        lambda d: _compose_and_map("trainer.num_epochs=2", "scheduler.warmup_epochs=-2"),
        _attr("chordexp.config:ConfigValueError"),
        r"^scheduler\.warmup_epochs=-2 must be >= 0",
    ),
    api(
        "api-checkpoint-dir-escapes",
        lambda d: _compose_and_map("trainer.checkpoint_dir=/etc"),
        _attr("chordexp.config:ConfigValueError"),
        r"^trainer\.checkpoint_dir='/etc' must be a relative path",
    ),
    api(
        "api-trainer-zero-lr",
        lambda d: _trainer(d, learning_rate=0.0),
        ValueError,
        r"^learning_rate must be > 0, got 0\.0$",
    ),
    api(
        "api-trainer-negative-lr", lambda d: _trainer(d, learning_rate=-1.0), ValueError, r"^learning_rate must be > 0"
    ),
    api(
        "api-trainer-zero-epochs", lambda d: _trainer(d, num_epochs=0), ValueError, r"^num_epochs must be >= 1, got 0$"
    ),
    api(
        "api-trainer-negative-warmup",
        lambda d: _trainer(d, warmup_epochs=-1),
        ValueError,
        r"^warmup_epochs must be >= 0, got -1$",
    ),
    api("api-trainer-unknown-device", lambda d: _trainer(d, device="tpu"), ValueError, r"^unknown device 'tpu'"),
    api(
        "api-trainer-cuda-without-gpu",
        lambda d: _trainer(d, device="cuda"),
        ValueError,
        r"^device='cuda' but CUDA is not available here",
        skip=NO_GPU,
    ),
    api(
        "api-zero-batch-size",
        lambda d: _attr("chordexp.data:build_loaders")([0], [0], batch_size=0),
        ValueError,
        r"^batch_size must be a positive integer, got 0$",
    ),
    api(
        "api-missing-data-folder",
        lambda d: _attr("chordexp.data:FolderChordDataset")(8, root=d / "nope"),
        ValueError,
        r"^data folder \S*/nope: no such directory",
    ),
    api(
        "api-empty-data-folder",
        lambda d: _attr("chordexp.data:FolderChordDataset")(8, root=d / "empty"),
        ValueError,
        r"^data folder \S*/empty holds no audio files",
    ),
    api(
        "api-non-audio-file",
        lambda d: _attr("chordexp.audio:read_audio")(d / "notes.txt"),
        _attr("chordexp.audio:AudioError"),
        r"^\S*/notes\.txt: cannot decode audio",
    ),
    api(
        "api-unreadable-lab",
        lambda d: _attr("chordexp.labfile:load_lab")(d / "preds_binary" / "a.lab"),
        _attr("chordexp.labfile:LabFileError"),
        r"^\S*/a\.lab:1: not UTF-8 text$",
    ),
    api(
        "api-label-outside-vocabulary",
        lambda d: _attr("chordexp.scoring:evaluate_pair")(d / "refs_badlabel" / "a.lab", d / "preds_ok" / "a.lab"),
        _attr("chordexp.labfile:LabFileError"),
        r"^\S*/a\.lab:1: 'H:maj' is not a chord label",
    ),
    api(
        "api-label-index-out-of-range",
        _out_of_range_training,
        ValueError,
        r"^a batch from the data loader: target chord_type=40 \(item 0 of the batch\) is outside 0\.\.31; check the dataset's labels$",
    ),
    api(
        "api-item-fails-to-load",
        _broken_synthetic_item,
        _attr("chordexp.data.item_errors:ItemLoadError"),
        r"^SyntheticChordDataset \(train split\) item 3 failed to load: ZeroDivisionError: division by zero$",
    ),
    api(
        "api-folder-item-fails-to-load",
        _broken_folder_item,
        _attr("chordexp.data.item_errors:ItemLoadError"),
        r"^FolderChordDataset \(train split\) item 0 from \S*/songs_good/[ab]\.wav failed to load: AttributeError",
    ),
    api(
        "api-truncated-checkpoint",
        lambda d: _attr("chordexp.training.checkpoint:load_checkpoint_file")(d / "trunc.pt"),
        _attr("chordexp.training.checkpoint:CheckpointError"),
        r"^checkpoint \S*/trunc\.pt: not a readable torch checkpoint, truncated or corrupt",
    ),
    api(
        "api-non-checkpoint",
        lambda d: _attr("chordexp.training.checkpoint:load_checkpoint_file")(d / "tensor.pt"),
        _attr("chordexp.training.checkpoint:CheckpointError"),
        r"^checkpoint \S*/tensor\.pt: not a chordexp training",
    ),
    api(
        "api-recognizer-other-shape",
        lambda d: _attr("chordexp.inference:ChordRecognizer").from_checkpoint(d / "shape.pt"),
        _attr("chordexp.training.checkpoint:CheckpointError"),
        r"^checkpoint \S*/shape\.pt: does not fit this model",
    ),
    api(
        "api-trainer-other-shape",
        lambda d: _trainer(d).load_checkpoint(d / "ckpt.pt"),
        _attr("chordexp.training.checkpoint:CheckpointError"),
        r"^checkpoint \S*/ckpt\.pt: does not fit this model",
    ),
    api(
        "api-gradient-clip-nan",
        lambda d: _compose_and_map("trainer.gradient_clip=nan"),
        _attr("chordexp.config:ConfigValueError"),
        r"^trainer\.gradient_clip=nan must be a finite number",
    ),
    api(
        "api-seed-too-large",
        lambda d: _compose_and_map("seed=18446744073709551616"),
        _attr("chordexp.config:ConfigValueError"),
        r"^seed=18446744073709551616 must be an integer in 0\.\.2\*\*63-1",
    ),
    api(
        "api-model-zero-heads",
        lambda d: _compose_and_map("model.num_heads=0"),
        _attr("chordexp.config:ConfigValueError"),
        r"^model\.num_heads=0 must be an integer > 0$",
    ),
    api(
        "api-lock-in-use",
        lambda d: _attr("chordexp.experiment.run_lock:RunLock")(d / "run_locked").acquire(),
        _attr("chordexp.experiment.run_lock:RunFolderError"),
        r"run_locked is in use by a running run \(pid \d+ on ",
    ),
    api(
        "api-claim-a-finished-run",
        lambda d: _attr("chordexp.experiment.run_lock:plan_run_folder")(
            ["experiment=smoke", f"hydra.run.dir={d / 'run_done'}"]
        ),
        _attr("chordexp.experiment.run_lock:RunFolderError"),
        r"^hydra\.run\.dir=\S*/run_done already holds a run",
    ),
    api(
        "api-transcription-over-a-reference",
        lambda d: _attr("chordexp.output_dirs:plan_transcriptions")(
            [d / "annotated" / "song.wav"], d / "annotated", d / "annotated"
        ),
        _attr("chordexp.cli:UsageError"),
        r"^\S*/annotated/song\.lab exists and is not a chordexp transcription",
    ),
    api(
        "api-output-is-an-input",
        lambda d: _attr("chordexp.output_dirs:check_not_an_input")(
            "output", d / "refs" / "a.lab", [d / "refs" / "a.lab"], "an input"
        ),
        _attr("chordexp.cli:UsageError"),
        r"^output=\S*/refs/a\.lab is \S*/refs/a\.lab, an input; it is never replaced",
    ),
    api(
        "api-overlapping-intervals",
        lambda d: _attr("chordexp.labfile:load_lab")(d / "refs_overlap" / "a.lab", disjoint=True),
        _attr("chordexp.labfile:LabFileError"),
        r"^\S*/a\.lab:2: starts at 1\.0, before the previous interval ends",
    ),
    api(
        "api-nan-weights",
        lambda d: _attr("chordexp.inference:check_finite_weights")(
            _attr("chordexp.inference:ChordRecognizer").from_checkpoint(d / "nan.pt"), str(d / "nan.pt")
        ),
        _attr("chordexp.training.checkpoint:CheckpointError"),
        r"^checkpoint \S*/nan\.pt: weight \S+ holds NaN",
    ),
    api(
        "api-target-not-allowed",
        lambda d: _attr("chordexp.experiment.targets:check_targets")(
            {
                "data": {
                    "dataset": {
                        "_target_": "chordexp.data.DummyChordDataset",
                        "options": {"x": {"_target_": "os.system", "command": "true"}},
                    }
                }
            }
        ),
        _attr("chordexp.config:ConfigValueError"),
        r"^data\.dataset\.options\.x\._target_='os\.system' is not one of",
    ),
]

CHECK_DATA_CASES = [
    tool("check_data", "check-data-missing-root", "root={d}/nope", pattern=r"^root=\S*/nope: no such folder$"),
    tool("check_data", "check-data-no-audio", "root={d}/empty", pattern=r"^root=\S*/empty holds no audio files$"),
    tool(
        "check_data",
        "check-data-missing-annotations",
        "root={d}/songs_good",
        "annotations={d}/nope",
        pattern=r"^annotations=\S*/nope: no such folder$",
    ),
    tool("check_data", "check-data-misspelt-key", "rot={d}/songs_good", pattern=r"Key 'rot' not in 'CheckArgs'"),
    tool(
        "check_data",
        "check-data-unknown-chords-mode",
        "root={d}/songs_good",
        "unknown_chords=drop",
        pattern=r"^unknown_chords=drop must be one of map, skip$",
    ),
    api(
        "api-fold-out-of-range",
        lambda d: _attr("chordexp.data:FolderChordDataset")(8, root=d / "songs_good", num_folds=2, fold=2),
        ValueError,
        r"^FolderChordDataset: fold must be an integer in 0\.\.1 \(num_folds=2\), got 2$",
    ),
    api(
        "api-split-file-unknown-song",
        lambda d: _attr("chordexp.data:FolderChordDataset")(
            8, root=d / "songs_good", split_file=d / "split_unknown.txt"
        ),
        ValueError,
        r"^\S*/split_unknown\.txt:2: 'zzz\.wav' is not an audio file of the collection",
    ),
]

CASES = RUN_CASES + PREDICT_CASES + EVALUATE_CASES + REPORT_CASES + API_CASES + CHECK_DATA_CASES


# --------------------------------------------------------------------------- files


@pytest.fixture(scope="module")
def files(tmp_path_factory, compose_cfg) -> Path:
    """Every bad (and good) file the table refers to, under one folder ``{d}``."""
    d = tmp_path_factory.mktemp("bad_inputs")
    import soundfile

    soundfile.write(d / "ok.wav", ff.chord_audio(1.0), ff.SR)
    (d / "bad.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage that is not audio")
    (d / "notes.txt").write_text("not audio\n")
    (d / "afile").write_text("a file where a folder is expected\n")
    (d / "empty").mkdir()
    good_lab = b"0.0 2.0 C:maj\n2.0 4.0 A:min\n"
    ff.write_song(d / "songs_corrupt", "a", good_lab, audio=(d / "bad.wav").read_bytes())
    ff.write_song(d / "songs_badlab", "a", b"0.0 2.0 C:maj\n\xff\xfe 4.0 A:min\n")
    ff.write_song(d / "songs_label", "a", b"0.0 2.0 C:maj\n2.0 4.0 H:maj\n")
    for name in "ab":  # two songs: one lands in each split
        ff.write_song(d / "songs_good", name, good_lab)
    for name, lab in (
        ("refs", good_lab),
        ("preds_ok", good_lab),
        ("preds_binary", b"\xff\xfe\x00\x01"),
        ("refs_badlabel", b"0.0 1.0 H:maj\n"),
        ("refs_backwards", b"2.0 1.0 C:maj\n"),
    ):
        (d / name).mkdir()
        (d / name / "a.lab").write_bytes(lab)
    (d / "preds_other").mkdir()
    (d / "preds_other" / "zzz.lab").write_bytes(good_lab)

    checkpoint = ff.checkpoint_bytes()
    (d / "ckpt.pt").write_bytes(checkpoint)
    (d / "trunc.pt").write_bytes(checkpoint[: len(checkpoint) // 2])
    (d / "shape.pt").write_bytes(ff.other_shape_checkpoint_bytes())
    torch.save(torch.zeros(3), d / "tensor.pt")
    config = ff.composed_run_config(compose_cfg, "experiment=smoke", "data=dummy")
    ff.fake_run_folder(d / "run_shape", config, checkpoint)  # smoke's model is wider than ckpt.pt's
    ff.fake_run_folder(d / "run_trunc", config, (d / "trunc.pt").read_bytes())
    ff.fake_run_folder(d / "run_tensor", config, (d / "tensor.pt").read_bytes())
    _resumable_run_folders(d, config, compose_cfg("experiment=smoke", "data=dummy"), checkpoint)
    (d / "runs").mkdir()
    _run_folders_in_use(d, config, checkpoint)
    _transcription_inputs(d)
    (d / "refs_overlap").mkdir()
    (d / "refs_overlap" / "a.lab").write_text("0.0 2.0 C:maj\n1.0 3.0 A:min\n")
    (d / "split_unknown.txt").write_text("train a.wav\nval zzz.wav\n")
    SNAPSHOT.update(_hashes(d))
    return d


#: sha256 of every file the fixture made (relative path -> digest), before any case ran.
SNAPSHOT: Dict[str, str] = {}


def _hashes(folder: Path, under: str = "") -> Dict[str, str]:
    import hashlib

    root = folder / under if under else folder
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _run_folders_in_use(d: Path, config: str, checkpoint: bytes) -> None:
    """Folders that hold a run or a sweep, or that a live run (this test process) holds."""
    from chordexp.experiment.run_lock import LOCK_NAME, process_start

    def finished(folder: Path) -> Path:
        ff.fake_run_folder(folder, config, checkpoint)
        (folder / "metrics.json").write_text(json.dumps({"best_val_loss": 1.5, "epochs_run": 2}) + "\n")
        (folder / "history.json").write_text(json.dumps({"val_loss": [2.0, 1.5], "train_loss": [2.5, 1.9]}) + "\n")
        (folder / "run.log").write_text("[INFO] - a finished run\n")
        return folder

    def live_lock(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / LOCK_NAME).write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "process_start": process_start(os.getpid()),
                    "since": "now",
                }
            )
        )

    (finished(d / "run_done") / "environment.json").write_text('{"seed": 0}\n')
    finished(d / "run_report")
    (d / "results_only").mkdir()
    (d / "results_only" / "metrics.json").write_text("{}\n")
    (d / "ckpt_only" / "checkpoints").mkdir(parents=True)
    (d / "ckpt_only" / "checkpoints" / "last.pt").write_bytes(checkpoint)
    (d / "own_ckpt_dir" / "weights").mkdir(parents=True)
    (d / "own_ckpt_dir" / "weights" / "best.pt").write_bytes(checkpoint)
    live_lock(d / "run_locked")
    live_lock(d / "sweep_busy")
    live_lock(ff.fake_run_folder(d / "run_busy", config, checkpoint))
    (d / "lock_garbage").mkdir()
    (d / "lock_garbage" / LOCK_NAME).write_text("not a lock\n")
    (d / "lock_foreign").mkdir()
    (d / "lock_foreign" / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    finished(d / "sweep_done" / "0")
    (d / "sweep_done" / "multirun.yaml").write_text("hydra: {}\n")
    (d / "sweep_record").mkdir()
    (d / "sweep_record" / "multirun.yaml").write_text("hydra: {}\n")
    ff.fake_run_folder(d / "run_badyaml", "seed: [1\n  x: {\n", checkpoint)
    ff.fake_run_folder(d / "run_notmapping", "- a\n- b\n", checkpoint)


def _resumable_run_folders(d: Path, config: str, cfg: Any, checkpoint: bytes) -> None:
    """Run folders whose last.pt records the run config (as every run's does): the same as
    their .hydra/config.yaml, or trained with other values (a saved config edited since)."""
    import copy
    import io

    from chordexp.experiment.schemas import resolved_dict
    from chordexp.training.checkpoint import serialize

    trained = resolved_dict(cfg)
    for name, edits in (
        ("run_resumable", {}),
        ("run_edited_lr", {("optimizer", "lr"): 0.5}),
        ("run_edited_batch", {("data", "batch_size"): 4}),
        (
            "run_edited_many",
            {("optimizer", "lr"): 0.5, ("seed",): 7, ("model", "d_model"): 24, ("model", "dropout"): 0.3},
        ),
    ):
        run_config = copy.deepcopy(trained)
        for path, value in edits.items():
            node = run_config
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        state = torch.load(io.BytesIO(checkpoint), weights_only=True)
        state["extra"] = {"run_config": run_config}
        ff.fake_run_folder(d / name, config, serialize(state))


def _transcription_inputs(d: Path) -> None:
    """Audio beside a reference, outputs already taken, audio too short or overflowing, NaN weights."""
    import io

    import numpy as np
    import soundfile

    from chordexp.training.checkpoint import serialize

    (d / "annotated").mkdir()
    (d / "annotated" / "song.wav").write_bytes((d / "ok.wav").read_bytes())
    (d / "annotated" / "song.lab").write_text("0.0 1.0 C:maj\n")
    (d / "out_taken").mkdir()
    (d / "out_taken" / "ok.lab").write_text("my own notes, not a transcription\n")
    (d / "out_dir_target" / "ok.lab").mkdir(parents=True)
    (d / "out_probs").mkdir()
    (d / "out_probs" / "ok.probs.npz").write_bytes(b"not an npz of ours")
    soundfile.write(d / "one.wav", np.zeros(1, np.float32), ff.SR)
    loud = ff.chord_audio(1.0).astype(np.float64)
    soundfile.write(d / "huge.wav", (loud / np.abs(loud).max() * 3.3e38).astype(np.float32), ff.SR, subtype="FLOAT")
    soundfile.write(d / "nan_audio.wav", np.full(ff.SR, np.nan, np.float32), ff.SR, subtype="FLOAT")
    state = torch.load(io.BytesIO(ff.checkpoint_bytes()), weights_only=True)
    name = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][name] = torch.full_like(state["model"][name], float("nan"))
    (d / "nan.pt").write_bytes(serialize(state))


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str


MODULES = {
    "run": "chordexp.run",
    "predict": "chordexp.predict",
    "evaluate": "chordexp.evaluate",
    "report": "chordexp.report",
    "check_data": "chordexp.check_data",
    "baseline": "chordexp.baseline",
}


@pytest.fixture(scope="module")
def cli_results(request, files) -> Dict[str, Result]:
    """Every selected command-line case, run two at a time in forked processes."""
    selected = [
        item.callspec.params["case"]
        for item in request.session.items
        if getattr(item, "module", None) is request.module and hasattr(item, "callspec")
    ]
    cases = [case for case in selected if case.entry != "api" and case.skip is None]
    logs = files / "logs"
    logs.mkdir(exist_ok=True)
    requests = [
        json.dumps(
            {
                "id": case.id,
                "module": MODULES[case.entry],
                "args": case.command_args(files),
                "cwd": str(files),
                "env": {**dict(case.env), "HYDRA_FULL_ERROR": None, "CHORDEXP_DEBUG": None},
                "pythonpath": [str(TESTS)],
                "stdout": str(logs / f"{case.id}.out"),
                "stderr": str(logs / f"{case.id}.err"),
                "timeout": 120,
            }
        )
        for case in cases
    ]
    done = subprocess.run(
        [sys.executable, str(TESTS / "cli_forkserver.py"), "--jobs", "2"],
        input="\n".join(requests),
        capture_output=True,
        text=True,
        timeout=600,
        env=ff.cli_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (logs / "forkserver.jsonl").write_text(done.stdout)  # status and seconds of each case
    statuses = {row["id"]: row["status"] for row in map(json.loads, done.stdout.splitlines())}
    return {
        case.id: Result(statuses[case.id], (logs / f"{case.id}.out").read_text(), (logs / f"{case.id}.err").read_text())
        for case in cases
    }


def error_lines(case: Case, result: Result) -> List[str]:
    """The error line(s) a command printed: a run's ERROR log lines, else stderr's
    ``error: `` lines, else (Hydra's own messages) stderr's first line."""
    if case.entry == "run":
        logged = re.findall(r"\]\[ERROR\] - (.*)", result.stdout + result.stderr)
        if logged:
            return logged
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    ours = [line[len("error: ") :] for line in lines if line.startswith("error: ")]
    return ours or lines[:1]


# --------------------------------------------------------------------------- the table


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gives_one_clear_line(case: Case, files: Path, request) -> None:
    if case.skip:
        pytest.skip(case.skip)
    if case.entry == "api":
        with pytest.raises(case.error) as caught:
            case.call(files)
        message = str(caught.value)
        assert "\n" not in message.strip(), message
        assert re.search(case.pattern, message), message
        return

    result = request.getfixturevalue("cli_results")[case.id]
    output = result.stdout + result.stderr
    assert result.status == case.status, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    lines = error_lines(case, result)
    assert len(lines) == 1, output[-3000:]
    assert re.search(case.pattern, lines[0]), lines[0]
    for name in case.unchanged:  # what the refusal protects is byte-identical, nothing added or removed
        before = {k: v for k, v in SNAPSHOT.items() if k == name or k.startswith(name + "/")}
        assert before and _hashes(files, name) == before, name
    log = files / "runs" / case.id / "run.log"
    if case.entry == "run" and log.is_file():  # the run folder keeps the same single line
        text = log.read_text()
        assert lines[0] in text and "Traceback" not in text


def test_the_table_covers_every_entry_point_and_the_issue_list():
    entries = {case.entry for case in CASES}
    assert entries == {"run", "predict", "evaluate", "report", "check_data", "baseline", "api"}
    assert len(CASES) >= 170 and len({case.id for case in CASES}) == len(CASES)
