"""A component's Hydra schema read from its constructor's source, so a new argument needs
no second home.

The schema is built from the ``__init__`` of the class as written (``ast``), not from the
imported class: composing a config (``python -m chordexp.run --cfg job``) must not import
torch. Positional-or-keyword parameters with a literal default are the component's
settings; keyword-only parameters are runtime wiring a run supplies, not settings.
``tests/model/test_chord_model.py`` checks the result against ``inspect.signature``.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.util
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

#: The annotations a setting may carry (the ones OmegaConf can type-check).
SETTING_TYPES: Dict[str, Any] = {"int": int, "float": float, "bool": bool, "str": str, "Any": Any}

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
    if (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.BitOr)
        and isinstance(node.right, ast.Constant)
        and node.right.value is None
    ):
        return Optional[annotation_type(node.left)]
    raise TypeError(f"setting annotation {ast.unparse(node)!r} is not one a config can hold")


@functools.lru_cache(maxsize=None)
def constructor_settings(module: str, class_name: str) -> Tuple[Setting, ...]:
    """``(name, type, default)`` of each positional-or-keyword parameter of
    ``module.class_name.__init__`` that has a default, in order."""
    tree = parse_module(module)
    if tree is None:
        raise ModuleNotFoundError(f"no source for {module}")
    cls = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == class_name)
    init = next(node for node in cls.body if isinstance(node, ast.FunctionDef) and node.name == "__init__")
    params = init.args.args[1:]  # without self
    defaults = [None] * (len(params) - len(init.args.defaults)) + list(init.args.defaults)
    return tuple(
        (param.arg, annotation_type(param.annotation), ast.literal_eval(default))
        for param, default in zip(params, defaults)
        if default is not None
    )


@functools.lru_cache(maxsize=None)
def constructor_schema(module: str, class_name: str, schema_name: str, base: type) -> type:
    """A dataclass subclass of ``base`` with ``_target_`` = the class and one field per
    setting of its constructor (``constructor_settings``)."""
    fields: List[Tuple[str, Any, Any]] = [("_target_", str, dataclasses.field(default=f"{module}.{class_name}"))]
    fields += [
        (name, kind, dataclasses.field(default=default))
        for name, kind, default in constructor_settings(module, class_name)
    ]
    schema = dataclasses.make_dataclass(schema_name, fields, bases=(base,))
    schema.__module__ = __name__
    return schema
