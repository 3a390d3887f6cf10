"""The description stored with an exported model: where it lives in the file, its version,
and reading it back.

``chordexp.inference.exporting`` writes it (JSON: the ONNX metadata entry
:data:`METADATA_KEY`, the TorchScript extra file :data:`EXTRA_FILE`);
``chordexp.inference.backends`` reads it to rebuild the recogniser around the graph.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

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
    return meta
