"""A component's Hydra schema read from its constructor's source, so a new argument needs
no second home.

The schema is built from the ``__init__`` of the class as written (``ast``), not from the
imported class: composing a config (``python -m chordexp.run --cfg job``) must not import
torch. Positional-or-keyword parameters with a literal default (or a module-level
constant holding one) are the component's settings; keyword-only parameters, and those a
run names as ``supplied`` (a dataset's ``size``, ``split``, ``seed``), are runtime wiring,
not settings. ``tests/model/test_chord_model.py`` and ``tests/test_config.py`` check the
results against ``inspect.signature``.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.util
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

#: The annotations a setting may carry (the ones OmegaConf can type-check); a path is
#: written as a string in a config.
SETTING_TYPES: Dict[str, Any] = {"int": int, "float": float, "bool": bool, "str": str, "Any": Any, "Path": str}
#: Sequence annotations, held as a list of their item type.
SEQUENCE_TYPES = ("List", "Sequence", "Tuple")

Setting = Tuple[str, Any, Any]  # (name, type, default)


def source_file(module: str) -> Optional[Path]:
    """The ``.py`` file of ``module`` (``chordexp.model.loss``, ``torch.optim``), found without
    importing it or its package (only the top-level package is looked up); None if absent."""
    top, *parts = module.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent.joinpath(*parts)
    found = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return found if found.is_file() else None


def parse_module(module: str) -> Optional[ast.Module]:
    """The syntax tree of ``module``'s source (``source_file``), or None."""
    path = source_file(module)
    return ast.parse(path.read_text(encoding="utf-8")) if path is not None else None


def annotation_type(node: Optional[ast.expr]) -> Any:
    """``int``, ``float``, ``bool``, ``str``, ``Optional[...]`` of those, or ``X | None``."""
    if node is None:
        return Any
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a quoted annotation
        return annotation_type(ast.parse(node.value, mode="eval").body)
    if isinstance(node, ast.Name) and node.id in SETTING_TYPES:
        return SETTING_TYPES[node.id]
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Optional":
        return Optional[annotation_type(node.slice)]
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in SEQUENCE_TYPES:
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        return List[annotation_type(items[0])]  # type: ignore[misc]  # Tuple[str, ...] holds str
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # X | Y | None
        members = union_members(node)
        present = [m for m in members if not (isinstance(m, ast.Constant) and m.value is None)]
        kinds = {annotation_type(m) for m in present}
        if len(kinds) == 1:
            kind = kinds.pop()
            return Optional[kind] if len(present) < len(members) else kind
    raise TypeError(f"setting annotation {ast.unparse(node)!r} is not one a config can hold")


def union_members(node: ast.expr) -> List[ast.expr]:
    """``X | Y | None`` -> ``[X, Y, None]``."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return union_members(node.left) + union_members(node.right)
    return [node]


def module_constants(tree: ast.Module) -> Dict[str, Any]:
    """Module-level ``NAME = literal`` (or ``NAME: type = literal``) assignments, and the
    ones imported by name from another chordexp module's own (``from chordexp.config
    import LABEL_SMOOTHING``): a default shared by two components keeps one home."""
    constants: Dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("chordexp"):
            imported = own_constants(str(node.module))
            constants.update({a.asname or a.name: imported[a.name] for a in node.names if a.name in imported})
    constants.update(assigned_constants(tree))
    return constants


@functools.lru_cache(maxsize=None)
def own_constants(module: str) -> Dict[str, Any]:
    """The literal constants ``module`` assigns itself (``assigned_constants``)."""
    tree = parse_module(module)
    return assigned_constants(tree) if tree is not None else {}


def assigned_constants(tree: ast.Module) -> Dict[str, Any]:
    """``NAME = literal`` and ``NAME: type = literal`` at the top of ``tree``; an assignment
    of anything else (a call, an expression) is no constant and is left out."""
    constants: Dict[str, Any] = {}
    for node in tree.body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if not isinstance(target, ast.Name) or value is None:
            continue
        try:
            constants[target.id] = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError):  # a call, an expression: no constant
            continue
    return constants


@functools.lru_cache(maxsize=None)
def constructor_settings(module: str, class_name: str, supplied: Tuple[str, ...] = ()) -> Tuple[Setting, ...]:
    """``(name, type, default)`` of each positional-or-keyword parameter of
    ``module.class_name.__init__`` that has a default and is not ``supplied``, in order."""
    tree = parse_module(module)
    if tree is None:
        raise ModuleNotFoundError(f"no source for {module}")
    constants = module_constants(tree)
    cls = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == class_name)
    init = next(node for node in cls.body if isinstance(node, ast.FunctionDef) and node.name == "__init__")
    params = init.args.args[1:]  # without self
    defaults = [None] * (len(params) - len(init.args.defaults)) + list(init.args.defaults)

    def literal(node: ast.expr) -> Any:
        return constants[node.id] if isinstance(node, ast.Name) and node.id in constants else ast.literal_eval(node)

    return tuple(
        (param.arg, annotation_type(param.annotation), literal(default))
        for param, default in zip(params, defaults)
        if default is not None and param.arg not in supplied
    )


def setting_default(module: str, class_name: str, name: str) -> Any:
    """The default of one setting of a constructor (``constructor_settings``)."""
    return next(default for setting, _, default in constructor_settings(module, class_name) if setting == name)


@functools.lru_cache(maxsize=None)
def constructor_schema(
    module: str,
    class_name: str,
    schema_name: str,
    base: type,
    target: Optional[str] = None,
    supplied: Tuple[str, ...] = (),
    follow: Tuple[Tuple[str, str], ...] = (),
) -> type:
    """A dataclass subclass of ``base`` with ``_target_`` = the class (or ``target``, the
    name it is documented under) and one field per setting of its constructor
    (``constructor_settings``); each ``(name, interpolation)`` of ``follow`` makes that
    setting's default a reference to the key that owns it (``${data.sample_rate}``)."""
    links = dict(follow)
    fields: List[Tuple[str, Any, Any]] = [
        ("_target_", str, dataclasses.field(default=target or f"{module}.{class_name}"))
    ]
    for name, kind, default in constructor_settings(module, class_name, supplied):
        default = links.pop(name, default)
        if isinstance(default, (list, tuple)):
            fields.append((name, kind, dataclasses.field(default_factory=functools.partial(list, default))))
        else:
            fields.append((name, kind, dataclasses.field(default=default)))
    if links:
        raise TypeError(f"{module}.{class_name} has no setting(s) {sorted(links)} to follow")
    schema = dataclasses.make_dataclass(schema_name, fields, bases=(base,))
    schema.__module__ = __name__
    return schema
