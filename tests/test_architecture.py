"""The package's layers, checked from the source: no import runs up a layer, no cycle,
Hydra only at the edge, and function-local imports only where they buy something.

The layer table is docs/architecture.md's in code; a module the table does not place
fails the test, so a new module has to be given a home.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "chordexp"

#: Lowest first. A module may import its own layer and the layers below it.
LAYERS: List[Tuple[str, Tuple[str, ...]]] = [
    (
        "core",
        (
            "errors",
            "atomic",
            "chords",
            "device",
            "audio_names",
            "audio",
            "labfile",
            "tuning_estimate",
            "decode",
            "config",
            "config_checks",
            "output_dirs",
            "scoring",
            "lock_file",
        ),
    ),
    ("model", ("model",)),
    ("data", ("data",)),
    ("training", ("training",)),
    ("inference", ("inference", "evalset_songs")),
    ("experiment", ("experiment", "loggers")),
    ("cli", ("cli",)),  # what every entry module shares: key=value parsing, the exit-status guard
    (
        "entry",
        (
            "run",
            "predict",
            "evaluate",
            "report",
            "bench",
            "evalset",
            "baseline",
            "tune_decoder",
            "export",
            "check_data",
        ),
    ),
]

#: Packages whose import is slow or optional: a function-local import of one of these
#: keeps ``--help`` fast or a missing extra from breaking the import of its module.
OPTIONAL_OR_SLOW = {
    "mlflow",
    "wandb",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "optuna",
    "librosa",
    "tinysoundfont",
    "pretty_midi",
    "matplotlib",
    "tensorboard",
    "torch.utils.tensorboard",
    "jams",
    "psutil",
    "resource",
    "torchaudio",
    "sqlalchemy",
    "mir_eval",
    "soundfile",
    "soxr",
    "threadpoolctl",
    "scipy",
}

#: Only the edge knows about Hydra and OmegaConf.
HYDRA_LAYERS = {"experiment", "cli", "entry"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else ""
    for index, (_, members) in enumerate(LAYERS):
        if top in members:
            return index
    raise AssertionError(f"{module} has no layer in tests/test_architecture.py (and docs/architecture.md)")


def modules() -> Dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(node: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """The dotted names an import statement brings in (``from a import b`` -> a, a.b)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        yield source
        yield from (f"{source}.{alias.name}" for alias in node.names)


def internal_target(name: str, known: Set[str]) -> str:
    """The package module ``name`` refers to (``chordexp.x.Y`` -> ``chordexp.x``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def import_nodes(tree: ast.AST) -> Iterator[Tuple[ast.AST, bool]]:
    """Every import statement with whether it sits inside a function."""

    def visit(node: ast.AST, in_function: bool) -> Iterator[Tuple[ast.AST, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, in_function
            yield from visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    yield from visit(tree, False)


def edges() -> Dict[str, Set[str]]:
    known = set(modules())
    graph: Dict[str, Set[str]] = {}
    for module, path in modules().items():
        tree = ast.parse(path.read_text())
        targets = graph.setdefault(module, set())
        for node, _ in import_nodes(tree):
            names = list(imported(node, module, path.name == "__init__.py"))
            if isinstance(node, ast.ImportFrom) and any(name in known for name in names[1:]):
                names = names[1:]  # ``from package import module``: the module, not the package's __init__
            for name in names:
                if name.startswith("chordexp"):
                    target = internal_target(name, known)
                    if target and target != module and target != "chordexp":
                        targets.add(target)
    return graph


def test_every_module_has_a_layer():
    for module in modules():
        if module != "chordexp":
            layer_of(module)


def test_no_import_runs_up_a_layer():
    upward = [
        f"{source} ({LAYERS[layer_of(source)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for source, targets in edges().items()
        if source != "chordexp"
        for target in sorted(targets)
        if layer_of(target) > layer_of(source)
    ]
    assert not upward, "\n".join(upward)


def test_entry_modules_do_not_import_each_other():
    entry = len(LAYERS) - 1
    crossing = [
        f"{source} imports {target}"
        for source, targets in edges().items()
        if source != "chordexp" and layer_of(source) == entry
        for target in sorted(targets)
        if layer_of(target) == entry and target.split(".")[1] != source.split(".")[1]
    ]
    assert not crossing, "\n".join(crossing)


def test_import_graph_has_no_cycle():
    graph = edges()
    state: Dict[str, int] = {}
    cycles: List[str] = []

    def visit(module: str, path: List[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target) :] + [target]) if target in path else target)
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_hydra_stays_at_the_edge():
    inside = []
    for module, path in modules().items():
        if module == "chordexp" or LAYERS[layer_of(module)][0] in HYDRA_LAYERS:
            continue
        for node, _ in import_nodes(ast.parse(path.read_text())):
            for name in imported(node, module, path.name == "__init__.py"):
                if name.split(".")[0] in ("hydra", "omegaconf"):
                    inside.append(f"{module} imports {name}")
    assert not inside, "\n".join(inside)


@pytest.mark.parametrize("layer", [name for name, _ in LAYERS])
def test_function_local_imports_only_for_slow_or_optional_packages(layer):
    """Below the entry modules, imports sit at the top of the module. An entry module
    imports the layer it drives inside its ``main`` (so ``--help`` answers at once),
    which is the one place a function-local import of the package is expected."""
    local = []
    for module, path in modules().items():
        if module == "chordexp" or LAYERS[layer_of(module)][0] != layer:
            continue
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node, _ in import_nodes(function):
                names = [name for name in imported(node, module, False) if name]
                top = names[0].split(".")[0] if names else ""
                if names and (names[0] in OPTIONAL_OR_SLOW or top in OPTIONAL_OR_SLOW):
                    continue
                if layer == "entry" and function.name in ("main", "cli"):
                    continue
                local.append(f"{module}.{function.name}: import {names[0]}")
    assert not local, "\n".join(sorted(set(local)))
