"""Where outputs may go: can the run folder be made (asked before Hydra makes it), and
does a transcription's path stay inside its output folder.

Hydra creates the run folder (``hydra.run.dir``, or ``hydra.sweep.dir`` in a sweep)
before the task starts, and a folder that cannot be created ends in a traceback from
inside Hydra. ``python -m chordexp.run`` asks first: the nearest existing ancestor of
each folder given on the command line (``outputs/`` when none is) must be a folder in
which a subfolder can be created (tried with a temporary one, removed at once, so
nothing is left behind and the answer is right for root and read-only file systems
alike). A value with an interpolation is checked up to its first ``${``.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

from chordexp.audio_names import AUDIO_SUFFIXES
from chordexp.config import TrainingConfig
from chordexp.errors import UsageError

RUN_DIR_KEYS = ("hydra.run.dir", "hydra.sweep.dir")
DEFAULT_ROOT = "outputs"
#: Flags after which Hydra prints something and makes no run folder.
NO_FOLDER_FLAGS = (
    "--cfg",
    "-c",
    "--help",
    "-h",
    "--hydra-help",
    "--info",
    "-i",
    "--resolve",
    "--shell-completion",
    "-sc",
    "--version",
)


def check_output_dirs(argv: Sequence[str]) -> None:
    """Raise UsageError (one line naming the key) when a run folder of ``argv`` cannot be created."""
    if any(arg.partition("=")[0] in NO_FOLDER_FLAGS for arg in argv):
        return
    given = [(key, value) for key, _, value in (arg.lstrip("+").partition("=") for arg in argv) if key in RUN_DIR_KEYS]
    for key, value in given or [("hydra.run.dir", DEFAULT_ROOT + "/")]:
        check_creatable(key, _unquote(value))


def check_creatable(key: str, value: str) -> None:
    """UsageError unless the folder ``value`` (given as ``key``) exists or can be created."""
    fixed = value.split("${", 1)[0]
    path = Path(fixed).expanduser() if fixed.endswith("/") or "${" not in value else Path(fixed).expanduser().parent
    existing = path if str(path) else Path(".")
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{key}={value}: cannot create the run folder: {existing} is not a folder")
    try:
        probe = tempfile.mkdtemp(prefix=".chordexp-write-test-", dir=existing)
    except OSError as error:
        raise UsageError(
            f"{key}={value}: cannot create the run folder: {existing} is not writable ({error.strerror})"
        ) from None
    os.rmdir(probe)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def make_output_folder(output: Path) -> None:
    """Create the tool's ``output=`` folder (and its parents); UsageError naming it when
    that fails."""
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"output={output}: cannot create the folder ({error.strerror})") from None


def contained_target(output: Path, relative: Path) -> Path:
    """``output / relative``, refused (UsageError naming it) where an absolute or ``..``
    component or a symbolic link (a folder or the file itself) would put it outside
    ``output``: a transcription never writes anywhere but the folder asked for."""
    target = output / relative
    inside = not relative.is_absolute() and ".." not in relative.parts
    try:
        inside = inside and target.resolve().is_relative_to(output.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    if not inside:
        raise UsageError(
            f"{target}: would be written outside output={output} (an absolute or '..' path, or a "
            f"symbolic link leading elsewhere); nothing written there"
        )
    return target


# --------------------------------------------------------------------------- transcriptions


def transcription_names(files: Sequence[Path], root: Optional[Path]) -> List[Path]:
    """The ``.lab`` path, relative to the output folder, of each audio file in ``files``
    (relative to ``root``, a folder; None: each file by its name alone). The rule:

    - the audio file's path with its extension replaced by ``.lab``: every other dot of
      the name stays (``01 - Mr. Brightside.wav`` -> ``01 - Mr. Brightside.lab``,
      ``song.v1.wav`` -> ``song.v1.lab``);
    - where two inputs would get the same ``.lab`` (``a.wav`` and ``a.flac`` in one folder;
      names compared regardless of case, as some file systems do), each of them keeps its
      extension: ``a.wav.lab``, ``a.flac.lab`` (repeated until no two names are alike).

    So every input has its own output, and ``chordexp.evaluate`` pairs ``a.wav.lab`` with
    the reference ``a.lab``.
    """
    relative = [path.relative_to(root) if root is not None else Path(path.name) for path in files]
    names = [rel.with_name(rel.stem + ".lab") for rel in relative]
    full = [False] * len(names)
    while True:
        groups: dict = {}
        for i, name in enumerate(names):
            groups.setdefault(name.as_posix().casefold(), []).append(i)
        clashing = [i for group in groups.values() if len(group) > 1 for i in group if not full[i]]
        if not clashing:
            return names
        for i in clashing:
            names[i], full[i] = relative[i].with_name(relative[i].name + ".lab"), True


def plan_transcriptions(
    files: Sequence[Path], input_path: Path, output: Path, extra_suffixes: Sequence[str] = ()
) -> List[Tuple[Path, Path]]:
    """``[(audio file, its .lab in output)]`` by :func:`transcription_names`, each checked
    before anything is written: inside ``output`` (:func:`contained_target`), and either
    absent or a transcription of ours (its first line is ``chordexp.labfile``'s mark), so
    a reference ``.lab`` beside the audio (``output=`` the input folder) or any other file
    is never replaced. ``extra_suffixes`` (``.probs.npz``) name files written beside each
    ``.lab`` that must not exist unless made by us. Raises UsageError naming the file."""
    root = input_path if input_path.is_dir() else None
    planned = []
    for path, name in zip(files, transcription_names(files, root)):
        target = contained_target(output, name)
        if os.path.lexists(target) and not (target.is_file() and is_prediction(target)):
            raise UsageError(
                f"{target} exists and is not a chordexp transcription (a reference .lab?); it is never "
                f"replaced: choose another output= folder (nothing was written)"
            )
        for suffix in extra_suffixes:
            extra = contained_target(output, name.with_name(name.name[: -len(".lab")] + suffix))
            if os.path.lexists(extra) and not _is_probabilities(extra):
                raise UsageError(
                    f"{extra} exists and is not a chordexp probabilities file; it is never replaced: "
                    f"choose another output= folder (nothing was written)"
                )
        planned.append((path, target))
    return planned


def _is_probabilities(path: Path) -> bool:
    """``path`` is a ``.probs.npz`` of predict's (times and the three heads)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {"times.npy", "chord_type.npy", "root.npy", "bass_note.npy"} <= set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


# --------------------------------------------------------------------------- outputs that are inputs


def check_not_an_input(key: str, output: Path, inputs: Iterable[Path], what: str) -> None:
    """UsageError (one line naming it) when the file ``output`` would replace one of
    ``inputs`` (the same file, by path after symbolic links, or by inode) or any other
    file that is a record (:func:`protected_kind`): a result never replaces its input."""
    target = Path(output)
    resolved = target.resolve()
    for path in inputs:
        if Path(path).resolve() == resolved or (target.exists() and _same_file(target, Path(path))):
            raise UsageError(
                f"{key}={output} is {path}, {what}; it is never replaced: choose another file (nothing was written)"
            )
    kind = protected_kind(target)
    if kind is not None:
        raise UsageError(f"{key}={output} is {kind}; it is never replaced: choose another file (nothing was written)")


#: A run folder's own records (relative to it), which no output of another tool replaces.
RUN_RECORD_FILES = (
    "metrics.json",
    "history.json",
    "environment.json",
    "resolved_config.yaml",
    "run.log",
    "song_metrics.json",
    "git_diff.patch",
)
RUN_RECORD_FOLDERS = (".hydra", TrainingConfig.checkpoint_dir, "tensorboard", "plots")
#: The records whose presence means a folder holds a run (run.log and the others may be
#: left by a run refused before it began).
RUN_MARKERS = (".hydra/config.yaml", "metrics.json", "history.json", "environment.json", "resolved_config.yaml")


def protected_kind(path: Path) -> Optional[str]:
    """What an existing file is when no output may replace it: a ``.lab`` (a reference or
    a transcription), an audio file, a checkpoint, or a run's record (``metrics.json``,
    ``history.json``, ``.hydra/``, ``checkpoints/``, ... of a folder holding
    ``.hydra/config.yaml``); else None."""
    path = Path(path)
    if not path.exists():
        return None
    suffix = path.suffix.lower()
    if suffix == ".lab":
        return "a chord label file (.lab)"
    if suffix in AUDIO_SUFFIXES:
        return "an audio file"
    if suffix == ".pt":
        return "a checkpoint"
    resolved = path.resolve()
    for folder in (resolved.parent, *resolved.parent.parents):
        if (folder / ".hydra" / "config.yaml").is_file():
            inside = resolved.relative_to(folder)
            if inside.as_posix() in RUN_RECORD_FILES or inside.parts[0] in RUN_RECORD_FOLDERS:
                return f"a record of the run {folder}"
            return None
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


#: The first line of every transcription chordexp writes (``# chordexp prediction of
#: <audio file>``): a comment to mir_eval and :func:`load_lab`, and how predict tells its
#: own output, which it may replace, from a reference or any other file, which it never does.
PREDICTION_MARK = "# chordexp prediction"


def prediction_comment(source: str | Path, detail: str = "") -> str:
    """The first line of a transcription of ``source``: :data:`PREDICTION_MARK` and the file."""
    return f"{PREDICTION_MARK[2:]} of {Path(source).name}{detail}"


def is_prediction(path: Path) -> bool:
    """``path`` starts with :data:`PREDICTION_MARK`: a transcription chordexp wrote."""
    try:
        with open(path, "rb") as handle:
            first = handle.readline(200)
    except OSError:
        return False
    return first.startswith(PREDICTION_MARK.encode())
