"""Which ``_target_`` classes a run config may instantiate.

``hydra.utils.instantiate`` imports and calls whatever dotted name a config's
``_target_`` holds, recursively, so a config file (a shared run folder's
``.hydra/config.yaml``, a ``rerun=``) could otherwise run any callable
(``os.system``). A run builds only the framework's documented components, the targets
of the schemas in ``chordexp.experiment.schemas``; ``allow_any_target=true`` at the root
of the config lifts the limit for your own classes. Hydra's own node (``hydra.*``:
launchers, sweepers) is Hydra's business and is not checked.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
from typing import Any, FrozenSet, Iterator, Mapping, Set, Tuple

from chordexp.errors import ConfigValueError
from chordexp.experiment.constructor_schema import parse_module, source_file
from chordexp.experiment.rerun import OPT_IN as OPT_IN_KEY  # one home: the run-folder check reads it before Hydra
from chordexp.experiment.schemas import GROUP_SCHEMAS, resolved_dict


@functools.lru_cache(maxsize=None)
def allowed_targets() -> FrozenSet[str]:
    """The documented components: every ``_target_`` of the registered schemas (a data
    schema's dataset included), each also under its other import path
    (``chordexp.model.ChordRecognitionModel``, ``torch.optim.adamw.AdamW``)."""
    targets: Set[str] = set()
    for schemas in GROUP_SCHEMAS.values():
        for schema in schemas.values():
            for _, target in iter_targets(dataclasses.asdict(schema())):
                targets |= import_paths(target)
    return frozenset(targets)


def import_paths(target: str) -> Set[str]:
    """``target`` and the names it is also imported under: the module that defines a class
    its package re-exports, or the package that re-exports a class of a module."""
    module, _, name = target.rpartition(".")
    package = module.rpartition(".")[0]
    paths = {target} | {f"{origin}.{name}" for origin in reexported_from(module, name)}
    if package and module in reexported_from(package, name):
        paths.add(f"{package}.{name}")
    return paths


def reexported_from(package: str, name: str) -> Set[str]:
    """The modules ``package``'s source imports ``name`` from (``from .adamw import AdamW``)."""
    source, tree = source_file(package), parse_module(package)
    if source is None or tree is None:
        return set()
    # a relative import counts from the package itself in its __init__, else from the module's package
    anchor = package.split(".") if source.name == "__init__.py" else package.split(".")[:-1]
    origins = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(a.name == name and a.asname in (None, name) for a in node.names):
            base = anchor[: len(anchor) - node.level + 1] if node.level else []
            origins.add(".".join(base + ([node.module] if node.module else [])))
    return origins


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
        if target not in allowed_targets():
            raise ConfigValueError(
                f"{key}={target!r} is not one of chordexp's components (the optimizers torch.optim.AdamW/Adam/SGD, "
                f"ChordRecognitionModel, ChordRecognitionLoss, the datasets of chordexp.data and the trackers of "
                f"chordexp.loggers); "
                f"to instantiate your own class, add {OPT_IN_KEY}=true"
            )
