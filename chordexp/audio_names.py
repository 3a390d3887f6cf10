"""Which files are audio, by name: kept apart from decoding (``chordexp.audio``, which
needs numpy) so that checking command-line paths costs no heavy import."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, List

from chordexp.errors import UserError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".w64", ".opus")


class AudioError(UserError, ValueError):
    """A file that cannot be used as audio; the message names the file and the reason."""


def is_audio_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES


def find_audio_files(path: str | Path) -> List[Path]:
    """A file, or every audio file under a folder (recursively, sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise AudioError(f"{path}: no such file or folder")
    files = sorted(p for p in walk_files(path) if is_audio_file(p))
    if not files:
        raise AudioError(f"{path}: the folder holds no audio files")
    return files


def walk_files(root: Path) -> Iterator[Path]:
    """Every file under ``root``, following symlinked folders (``Path.rglob`` skips them:
    ``predict`` once transcribed 2 of 10 songs without a word) but never into a folder
    twice, so a link to a folder above ends no walk. Paths are spelt under ``root``."""
    seen = set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        try:
            info = os.stat(folder)
        except OSError:
            subfolders[:] = []
            continue
        if (info.st_dev, info.st_ino) in seen:
            subfolders[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        subfolders.sort()
        for name in names:
            yield Path(folder) / name
