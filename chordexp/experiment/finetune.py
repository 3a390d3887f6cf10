"""Start a run from a trained model: ``finetune.init_from``, ``finetune.freeze``,
``finetune.lr_multipliers`` (the ``finetune`` node of the run config).

These are settings of the run, not of the architecture: the ``model`` node stays the
model constructor's arguments (what checkpoints save as ``model_hparams`` and what
predict, the benchmarks and a rerun instantiate), and the ``optimizer`` node stays a
``torch.optim`` partial. ``apply_finetune`` is called by
``chordexp.experiment.components.build_components`` after the model is built and before
the Trainer builds the optimizer:

* ``init_from``: the weights of a checkpoint of ours (``weights_only=True`` loader) are
  copied into the fresh model; optimizer, schedule, history and run folder are new.
  Missing, unexpected or differently shaped tensors fail with one line naming the first
  few; with ``init_strict=false`` the *heads* whose shape differs (another vocabulary)
  keep their fresh initialisation, and the log names them.
* ``freeze``: top-level modules (``frontend``, ``stem``, ...) get ``requires_grad=False``,
  stay out of the optimizer, and stay in eval mode while the model trains (BatchNorm
  running statistics and dropout frozen too): the model's ``train()`` is wrapped so the
  Trainer's ``model.train()`` every epoch (also through DDP or torch.compile, which
  call it on their children) leaves them in eval mode.
* ``lr_multipliers``: ``{module: factor}``; each named top-level module gets its own
  parameter group at ``lr * factor`` (the rest: one group at ``lr``). Every scheduler
  scales every group (LambdaLR from each group's initial lr; onecycle with one
  ``max_lr`` per group, read from the group's ``lr_multiplier``); a resumed run builds
  the same groups from the same config and loads their state.
"""

from __future__ import annotations

import logging
import math
import types
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from omegaconf import OmegaConf
from torch import nn

from chordexp.errors import ConfigValueError
from chordexp.training.checkpoint import CheckpointError, load_checkpoint_file

log = logging.getLogger("chordexp.experiment.finetune")

#: tensors named in an error line before "and N more"
SHOWN = 3
#: top-level modules whose shape may differ from the checkpoint's with init_strict=false
HEAD_PREFIXES = ("heads.",)


def settings_of(cfg: Any) -> Dict[str, Any]:
    """The ``finetune`` node as a plain dict with every key (a config saved before the
    node existed has none)."""
    node: Any = cfg.get("finetune") if hasattr(cfg, "get") else None
    if node is not None and not isinstance(node, dict):
        node = OmegaConf.to_container(node, resolve=True)
    node = dict(node or {})
    return {
        "init_from": node.get("init_from"),
        "init_strict": bool(node.get("init_strict", True)),
        "freeze": list(node.get("freeze") or []),
        "lr_multipliers": dict(node.get("lr_multipliers") or {}),
    }


def check_required(cfg: Any) -> None:
    """``experiment=finetune`` needs ``finetune.init_from`` (a ``???`` in a preset would not
    override the default null when merged, so the preset is recognised by its name)."""
    try:
        choice = cfg.hydra.runtime.choices.get("experiment")
    except Exception:  # a plain dict, or a config composed without the hydra node
        return
    if choice == "finetune" and not settings_of(cfg)["init_from"]:
        raise ConfigValueError(
            "finetune.init_from is required with experiment=finetune: "
            "add finetune.init_from=PATH/checkpoints/best.pt to the command line"
        )


def module_names(model: nn.Module) -> List[str]:
    return [name for name, _ in model.named_children()]


def check_module_names(model: nn.Module, names: Sequence[str], key: str) -> None:
    valid = module_names(model)
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise ConfigValueError(
            f"{key}: unknown module {unknown[0]!r} of {type(model).__name__}; valid: {', '.join(valid)}"
        )


def _first(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def load_initial_weights(model: nn.Module, path: Any, strict: bool = True) -> List[str]:
    """Copy the model weights of the checkpoint at ``path`` into ``model``; return the
    tensors left at their fresh initialisation (heads of another shape, ``strict=False``).
    Raises CheckpointError (one line) when the checkpoint does not fit."""
    path = Path(str(path)).expanduser()
    state = load_checkpoint_file(path)["model"]
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        k for k, v in expected.items() if k in state and tuple(getattr(state[k], "shape", ())) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({_first(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({_first(unexpected)})")
    heads_only = bool(mismatched) and all(k.startswith(HEAD_PREFIXES) for k in mismatched)
    if mismatched and not (heads_only and not strict):
        shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in mismatched]
        problems.append(f"{len(mismatched)} of another shape ({_first(shapes)}, checkpoint vs model)")
    if problems:
        hint = (
            "; only heads differ: finetune.init_strict=false re-initialises them"
            if heads_only and not missing and not unexpected
            else "; build the model with the checkpoint's model settings"
        )
        raise CheckpointError(f"finetune.init_from={path}: does not fit this model: {'; '.join(problems)}{hint}")
    merged = {k: (expected[k] if k in mismatched else state[k]) for k in expected}
    model.load_state_dict(merged)
    if mismatched:
        log.warning(
            "finetune.init_from: re-initialised %d tensors of another shape than in %s: %s",
            len(mismatched),
            path,
            ", ".join(mismatched),
        )
    log.info("starting from the weights of %s (fresh optimizer, schedule and history)", path)
    return mismatched


def _train_keeping_frozen(self: nn.Module, mode: bool = True) -> nn.Module:
    type(self).train(self, mode)
    for name in getattr(self, "_frozen_modules"):  # set by freeze_modules
        getattr(self, name).train(False)
    return self


def freeze_modules(model: nn.Module, names: Sequence[str]) -> None:
    """``requires_grad=False`` for the named top-level modules, and eval mode for them
    whenever the model is put in training mode."""
    check_module_names(model, names, "finetune.freeze")
    if not names:
        return
    for name in names:
        getattr(model, name).requires_grad_(False)
    # setattr: nn.Module's attribute types have no room for these (same assignments)
    setattr(model, "_frozen_modules", tuple(names))
    setattr(model, "train", types.MethodType(_train_keeping_frozen, model))
    model.train(model.training)
    frozen = sum(p.numel() for name in names for p in getattr(model, name).parameters())
    log.info("frozen (no gradient, eval mode): %s (%s parameters)", ", ".join(names), f"{frozen:,}")


def grouped_optimizer_factory(
    factory: Callable[..., Any], model: nn.Module, base_lr: float, multipliers: Mapping[str, float]
) -> Callable[..., Any]:
    """An optimizer factory (``factory(params)``, as the Trainer calls it) that leaves
    frozen parameters out and puts each module of ``multipliers`` in its own group at
    ``base_lr * factor``; the first group holds the rest at ``base_lr``."""
    owner = {id(p): name.split(".")[0] for name, p in model.named_parameters()}

    def build(params: Any) -> Any:
        params = [p for p in params if p.requires_grad]
        if not multipliers:
            return factory(params)
        groups: Dict[Optional[str], List[Any]] = {None: []}
        groups.update((name, []) for name in multipliers)
        for p in params:
            name = owner.get(id(p))
            groups[name if name in multipliers else None].append(p)
        param_groups = [
            {
                "params": ps,
                "lr": base_lr * float(multipliers.get(name, 1.0)) if name else base_lr,
                "lr_multiplier": float(multipliers[name]) if name else 1.0,
                "module": name or "rest",
            }
            for name, ps in groups.items()
            if ps
        ]
        return factory(param_groups)

    return build


def check_multipliers(model: nn.Module, multipliers: Mapping[str, Any], frozen: Sequence[str]) -> None:
    check_module_names(model, list(multipliers), "finetune.lr_multipliers")
    for name, value in multipliers.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ConfigValueError(
                f"finetune.lr_multipliers.{name}={value!r} must be a finite number > 0 "
                f"(to stop a module learning, freeze it: finetune.freeze=[{name}])"
            )
        if name in frozen:
            raise ConfigValueError(
                f"finetune.lr_multipliers.{name}: {name} is frozen (finetune.freeze); "
                f"a frozen module takes no learning rate"
            )


def apply_finetune(
    model: nn.Module,
    optimizer_factory: Callable[..., Any],
    settings: Mapping[str, Any],
    base_lr: float,
    *,
    load: bool = True,
) -> Callable[..., Any]:
    """Load ``init_from`` (when ``load``: a resumed run loads its own last.pt instead),
    freeze, and return the optimizer factory with the parameter groups."""
    freeze = list(settings.get("freeze") or [])
    multipliers = dict(settings.get("lr_multipliers") or {})
    check_module_names(model, freeze, "finetune.freeze")
    trainable = [
        name
        for name, module in model.named_children()
        if name not in freeze and any(p.requires_grad for p in module.parameters())
    ]
    if freeze and not trainable:
        raise ConfigValueError(
            f"finetune.freeze: freezes every module of {type(model).__name__} ({', '.join(freeze)}): "
            f"nothing would learn; leave at least one out"
        )
    check_multipliers(model, multipliers, freeze)
    if load and settings.get("init_from"):
        load_initial_weights(model, settings["init_from"], strict=bool(settings.get("init_strict", True)))
    freeze_modules(model, freeze)
    if not freeze and not multipliers:
        return optimizer_factory
    if multipliers:
        log.info("learning-rate multipliers: %s", ", ".join(f"{k} x{v}" for k, v in multipliers.items()))
    return grouped_optimizer_factory(optimizer_factory, model, base_lr, multipliers)
