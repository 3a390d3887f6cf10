"""Which ``_target_`` classes a run config may instantiate.

``hydra.utils.instantiate`` imports and calls whatever dotted name a config's
``_target_`` holds, recursively, so a config file (a shared run folder's
``.hydra/config.yaml``, a ``rerun=``) could otherwise run any callable
(``os.system``). A run builds only the framework's documented components, listed
here; ``allow_any_target=true`` at the root of the config lifts the limit for your
own classes. Hydra's own node (``hydra.*``: launchers, sweepers) is Hydra's business
and is not checked.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Tuple

from chordexp.config import resolved_dict
from chordexp.errors import ConfigValueError

#: The documented components: what ``conf/`` and the schemas of ``chordexp.config`` name,
#: also under the module that defines each class.
ALLOWED_TARGETS = frozenset({
    # optimizer
    "torch.optim.AdamW", "torch.optim.Adam", "torch.optim.SGD",
    "torch.optim.adamw.AdamW", "torch.optim.adam.Adam", "torch.optim.sgd.SGD",
    # model and loss
    "chordexp.model.chord_model.ChordRecognitionModel", "chordexp.model.ChordRecognitionModel",
    "chordexp.model.loss.ChordRecognitionLoss", "chordexp.model.ChordRecognitionLoss",
    # datasets
    "chordexp.data.SyntheticChordDataset", "chordexp.data.synthetic.SyntheticChordDataset",
    "chordexp.data.SyntheticSongDataset", "chordexp.data.songs.SyntheticSongDataset",
    "chordexp.data.DummyChordDataset", "chordexp.data.dummy.DummyChordDataset",
    "chordexp.data.FolderChordDataset", "chordexp.data.folder.FolderChordDataset",
    "chordexp.data.FolderSongDataset", "chordexp.data.folder_songs.FolderSongDataset",
    # experiment trackers (conf/logger)
    "chordexp.loggers.TensorBoardLogger", "chordexp.loggers.tensorboard_events.TensorBoardLogger",
    "chordexp.loggers.CSVLogger", "chordexp.loggers.csv_file.CSVLogger",
    "chordexp.loggers.MLflowLogger", "chordexp.loggers.mlflow_run.MLflowLogger",
    "chordexp.loggers.WandbLogger", "chordexp.loggers.wandb_run.WandbLogger",
})
OPT_IN_KEY = "allow_any_target"


def iter_targets(node: Any, prefix: str = "") -> Iterator[Tuple[str, Any]]:
    """``(dotted key, value)`` of every ``_target_`` in a nested dict/list, depth first."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == "_target_":
                yield path, value
            else:
                yield from iter_targets(value, path)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from iter_targets(value, f"{prefix}[{i}]")


def check_targets(cfg: Any) -> None:
    """Raise ConfigValueError naming the key and the target of the first ``_target_`` of
    ``cfg`` (a composed run config, or a plain dict) that is not a documented component,
    unless ``cfg.allow_any_target`` is true."""
    plain = resolved_dict(cfg)  # without Hydra's own node
    if plain.get(OPT_IN_KEY) is True:
        return
    for key, target in iter_targets(plain):
        if target not in ALLOWED_TARGETS:
            raise ConfigValueError(
                f"{key}={target!r} is not one of chordexp's components (the optimizers torch.optim.AdamW/Adam/SGD, "
                f"ChordRecognitionModel, ChordRecognitionLoss, the datasets of chordexp.data and the trackers of "
                f"chordexp.loggers); "
                f"to instantiate your own class, add {OPT_IN_KEY}=true")
