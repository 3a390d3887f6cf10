"""The description stored with an exported model: where it lives in the file, its version,
and reading it back.

``chordexp.inference.export_writer`` writes it (JSON: the ONNX metadata entry
:data:`METADATA_KEY`, the TorchScript extra file :data:`EXTRA_FILE`);
``chordexp.inference.backends`` reads it to rebuild the recogniser around the graph.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict

from chordexp.audio import SAMPLE_RATE_RULE, sample_rate_ok
from chordexp.errors import UserError

#: key of the JSON description: ONNX metadata_props key; TorchScript extra file name
METADATA_KEY = "chordexp"
EXTRA_FILE = "chordexp.json"
FORMAT_VERSION = 1


class ExportError(UserError, ValueError):
    """An exported model file that is missing, unreadable or not made by chordexp.export."""


def parse_metadata(path: Path, text: str) -> Dict[str, Any]:
    """The description ``text`` found in the model file at ``path``; ExportError when it is
    not JSON or of another format version."""
    try:
        meta = json.loads(text)
    except ValueError:
        raise ExportError(f"checkpoint {path}: its chordexp metadata is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise ExportError(
            f"checkpoint {path}: chordexp metadata of an unknown format version "
            f"({meta.get('format_version') if isinstance(meta, dict) else None!r}); re-export it"
        )
    check_metadata(path, meta)
    return meta


#: What each description entry must be: (check, what it must be).
_ENTRIES = {
    "sample_rate": (sample_rate_ok, SAMPLE_RATE_RULE),
    "frame_rate": (lambda v: _number(v) and 0 < v <= 1000, "a number of frames per second in (0, 1000]"),
    "hop_length": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "min_samples": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "inputs": (lambda v: v == ["audio", "tuning_cents"], "['audio', 'tuning_cents']"),
    "outputs": (lambda v: v == ["chord_type", "root", "bass_note"], "['chord_type', 'root', 'bass_note']"),
}


def check_metadata(path: Path, meta: Dict[str, Any]) -> None:
    """ExportError naming the first entry that cannot be right (a hand-edited or foreign
    file: ``sample_rate: 0`` once gave an all-N .lab and exit 0)."""
    for key, (ok, what) in _ENTRIES.items():
        if key not in meta or not ok(meta[key]):
            raise ExportError(
                f"checkpoint {path}: its chordexp metadata {key}={meta.get(key)!r} must be {what}; re-export it"
            )


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
