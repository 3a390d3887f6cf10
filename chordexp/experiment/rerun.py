"""``rerun=RUN_FOLDER`` and ``resume=RUN_FOLDER``: a run folder's saved config as the
primary config of a new Hydra composition.

Hydra saves the composed config of every run in ``<run>/.hydra/config.yaml``. Making
that file the primary config (``--config-path <run>/.hydra --config-name config``)
reproduces the run; ``--config-dir`` alone would not, because Hydra searches an extra
config dir after the application's own ``conf/``, whose ``config.yaml`` would win, so
``--config-dir <run>/.hydra`` is turned into ``--config-path`` here. Plain Python, no
Hydra: the argument list is rewritten before ``@hydra.main`` parses it.

- ``rerun=DIR [key=value ...]``: a new run folder with DIR's config (plus overrides).
- ``resume=DIR [key=value ...]``: the same folder; the run continues from its
  ``last.pt``. Hydra's record of the resumed session goes to ``.hydra/resume_N/`` so
  the original ``.hydra/config.yaml`` stays the run's config.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import yaml

from chordexp.errors import UsageError

SHORTCUTS = ("rerun", "resume")


def expand_run_shortcuts(argv: Sequence[str]) -> List[str]:
    """Hydra arguments for ``argv`` (without the program name); other arguments pass
    through unchanged. Raises UsageError (one line) for a folder that is not a run."""
    args = list(argv)
    args = _config_dir_of_run_as_config_path(args)
    given = [arg for arg in args if arg.partition("=")[0] in SHORTCUTS and "=" in arg]
    if not given:
        return args
    if len(given) > 1:
        raise UsageError(f"give one of {' or '.join(s + '=RUN_FOLDER' for s in SHORTCUTS)}, not {' and '.join(given)}")
    key, _, value = given[0].partition("=")
    if not value:
        raise UsageError(f"{key}= needs a run folder: {key}=outputs/<day>/<time>")
    if any(arg in ("-m", "--multirun") for arg in args):
        raise UsageError(f"{key}= continues one run; it cannot be combined with -m/--multirun")
    folder = Path(value).expanduser().resolve()
    saved = folder / ".hydra" / "config.yaml"
    if not folder.is_dir():
        raise UsageError(f"{key}={value}: no such folder")
    if not saved.is_file():
        raise UsageError(f"{key}={value}: not a run folder (no .hydra/config.yaml in {folder})")
    rest = [arg for arg in args if arg != given[0]]
    _check_saved_config(key, value, saved, trusted=any(arg.lstrip("+") == f"{OPT_IN}=true" for arg in rest))
    expanded = ["--config-path", str(saved.parent), "--config-name", "config"]
    if key == "resume":
        expanded += [
            f"hydra.run.dir={_quote(folder)}",
            f"hydra.output_subdir=.hydra/resume_{_next_resume_number(folder)}",
            f"++resume={_quote(folder)}",
        ]
    return expanded + rest


class _UniqueKeys(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping as Hydra does
    (PyYAML keeps the last; Hydra's loader raised a ConstructorError traceback)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


OPT_IN = "allow_any_target"  # chordexp.experiment.targets.OPT_IN_KEY (that module imports Hydra)


def _check_saved_config(key: str, value: str, saved: Path, trusted: bool = False) -> None:
    """UsageError (one line naming the file and line) when the run's saved config is not a
    YAML mapping (a hand edit gone wrong, a file cut short), or when it would choose code:
    a saved config is data. Hydra keeps its own settings (callbacks, launchers: code) in
    ``hydra.yaml``, never in ``config.yaml``, so a ``hydra:`` node there was put there;
    and the folder's own file may not lift the allow-list of ``_target_`` classes (only
    ``allow_any_target=true`` on the command line does: ``trusted``)."""
    try:
        data = yaml.load(saved.read_text(), Loader=_UniqueKeys)  # noqa: S506 (a SafeLoader subclass)
    except OSError as error:
        raise UsageError(f"{key}={value}: cannot read {saved} ({error.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{key}={value}: {saved} is not UTF-8 text") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1}: {getattr(error, 'problem', '')})" if mark else ""
        raise UsageError(f"{key}={value}: {saved} is not valid YAML{where}; restore it, or rerun from a copy") from None
    if not isinstance(data, dict):
        raise UsageError(f"{key}={value}: {saved} holds no config (a YAML mapping of keys), but {type(data).__name__}")
    if "hydra" in data:
        raise UsageError(
            f"{key}={value}: {saved} holds a hydra: node, which Hydra never saves there (its settings, callbacks "
            f"included, live in hydra.yaml); a saved config may not choose code: remove the node"
        )
    if data.get(OPT_IN) is True and not trusted:
        raise UsageError(
            f"{key}={value}: {saved} sets {OPT_IN}: true, which a saved file may not do; if you trust every "
            f"_target_ in it, say so on the command line: {OPT_IN}=true"
        )


def saved_run_folder(config_dir: Optional[str]) -> Optional[Path]:
    """The run folder whose ``.hydra`` is ``config_dir`` (a ``file://`` search path or a
    plain path), or None when the config did not come from a run folder."""
    if not config_dir:
        return None
    path = Path(str(config_dir).removeprefix("file://"))
    if path.name == ".hydra" and (path / "config.yaml").is_file():
        return path.parent
    return None


def _config_dir_of_run_as_config_path(args: List[str]) -> List[str]:
    """``--config-dir <run>/.hydra`` (or ``-cd``) -> ``--config-path <absolute run>/.hydra``
    (Hydra reads a relative ``--config-path`` against the package, not the cwd)."""
    out: List[str] = []
    i = 0
    while i < len(args):
        flag, eq, inline = args[i].partition("=")
        if flag in ("--config-dir", "-cd") and (eq or i + 1 < len(args)):
            value = inline if eq else args[i + 1]
            absolute = Path(value).expanduser().resolve()
            if saved_run_folder(str(absolute)) is not None:
                trusted = any(arg.lstrip("+") == f"{OPT_IN}=true" for arg in args)
                _check_saved_config(flag, value, absolute / "config.yaml", trusted)
                out += ["--config-path", str(absolute)]
                i += 1 if eq else 2
                continue
        out.append(args[i])
        i += 1
    return out


def _next_resume_number(folder: Path) -> int:
    taken = [
        int(p.name.rpartition("_")[2])
        for p in (folder / ".hydra").glob("resume_*")
        if p.name.rpartition("_")[2].isdigit()
    ]
    return max(taken, default=0) + 1


def _quote(path: Path) -> str:
    """A path as a Hydra override value: quoted, so ``=``, spaces or ``,`` stay literal."""
    text = str(path)
    if "'" in text:
        raise UsageError(f"run folder paths with a single quote are not supported: {text}")
    return f"'{text}'"
