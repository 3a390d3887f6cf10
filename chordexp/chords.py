"""The chord vocabulary and Harte label conversion.

Every other module speaks in ``(root, chord_type, bass_note)`` index triples; this
module is the one place that knows how those map to and from Harte labels such as
``C:maj7/3`` (the syntax ``mir_eval.chord`` parses). Pitch classes: C=0 ... B=11.
"""

from __future__ import annotations

import re
from typing import Dict, Tuple

from chordexp.errors import UserError

NUM_PITCH_CLASSES = 12

#: The 32 chord types, in index order (index 0 is "no chord").
CHORD_TYPES: Tuple[str, ...] = (
    "N",
    "maj",
    "min",
    "dim",
    "aug",
    "sus2",
    "sus4",
    "5",
    "1",
    "7",
    "maj7",
    "min7",
    "minmaj7",
    "dim7",
    "hdim7",
    "maj6",
    "min6",
    "9",
    "maj9",
    "min9",
    "11",
    "min11",
    "13",
    "maj13",
    "min13",
    "maj(9)",
    "min(9)",
    "sus4(b7)",
    "aug(b7)",
    "7(b9)",
    "7(#9)",
    "maj6(9)",
)
NUM_CHORD_TYPES = len(CHORD_TYPES)
NO_CHORD = 0
CHORD_TYPE_INDEX: Dict[str, int] = {name: i for i, name in enumerate(CHORD_TYPES)}

#: Semitones above the root of each chord type's tones (extensions above the octave
#: keep their real height: a 9th is 14), as mir_eval defines the named qualities.
CHORD_INTERVALS: Dict[str, Tuple[int, ...]] = {
    "N": (),
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "aug": (0, 4, 8),
    "sus2": (0, 2, 7),
    "sus4": (0, 5, 7),
    "5": (0, 7),
    "1": (0,),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
    "minmaj7": (0, 3, 7, 11),
    "dim7": (0, 3, 6, 9),
    "hdim7": (0, 3, 6, 10),
    "maj6": (0, 4, 7, 9),
    "min6": (0, 3, 7, 9),
    "9": (0, 4, 7, 10, 14),
    "maj9": (0, 4, 7, 11, 14),
    "min9": (0, 3, 7, 10, 14),
    "11": (0, 4, 7, 10, 14, 17),
    "min11": (0, 3, 7, 10, 14, 17),
    "13": (0, 4, 7, 10, 14, 17, 21),
    "maj13": (0, 4, 7, 11, 14, 17, 21),
    "min13": (0, 3, 7, 10, 14, 17, 21),
    "maj(9)": (0, 4, 7, 14),
    "min(9)": (0, 3, 7, 14),
    "sus4(b7)": (0, 5, 7, 10),
    "aug(b7)": (0, 4, 8, 10),
    "7(b9)": (0, 4, 7, 10, 13),
    "7(#9)": (0, 4, 7, 10, 15),
    "maj6(9)": (0, 4, 7, 9, 14),
}

PITCH_NAMES: Tuple[str, ...] = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_NATURALS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

#: Scale degree written for a bass note `k` semitones above the root.
BASS_DEGREES: Tuple[str, ...] = ("1", "b2", "2", "b3", "3", "4", "b5", "5", "#5", "6", "b7", "7")
_DEGREE_BASE = {
    "1": 0,
    "2": 2,
    "3": 4,
    "4": 5,
    "5": 7,
    "6": 9,
    "7": 11,
    "8": 12,
    "9": 14,
    "10": 16,
    "11": 17,
    "12": 19,
    "13": 21,
}
_LABEL_RE = re.compile(r"^(?P<root>[A-G][#b]*)(?::(?P<quality>[^/]*))?(?:/(?P<bass>.+))?$")
_DEGREE_RE = re.compile(r"^(?P<mods>[#b]*)(?P<num>\d+)$")


class ChordLabelError(UserError, ValueError):
    """A label that is not Harte syntax or whose quality is outside the vocabulary."""


def pitch_class(note: str) -> int:
    """`'C#'` -> 1, `'Bb'` -> 10, `'Cb'` -> 11. Raises ChordLabelError for anything else."""
    if not note or note[0] not in _NATURALS or any(m not in "#b" for m in note[1:]):
        raise ChordLabelError(f"invalid note name {note!r}")
    return (_NATURALS[note[0]] + note.count("#") - note.count("b")) % NUM_PITCH_CLASSES


def degree_to_semitone(degree: str) -> int:
    """Harte scale degree (`'3'`, `'b7'`, `'#5'`) -> semitones above the root, mod 12."""
    match = _DEGREE_RE.match(degree)
    if not match or match["num"] not in _DEGREE_BASE:
        raise ChordLabelError(f"invalid scale degree {degree!r}")
    mods = match["mods"]
    return (_DEGREE_BASE[match["num"]] + mods.count("#") - mods.count("b")) % NUM_PITCH_CLASSES


def parse_label(label: str) -> Tuple[int, int, int]:
    """Harte label -> ``(root, chord_type, bass_note)``.

    ``N`` gives ``(0, 0, 0)``: root and bass mean nothing without a chord, and the
    loss and metrics ignore them there. A bare root (``C``) is ``C:maj``; a missing bass
    is the root. Raises ChordLabelError (naming the label) for bad syntax, ``X`` or a
    quality outside the 32-type vocabulary.
    """
    text = label.strip()
    if text == "N":
        return 0, NO_CHORD, 0
    match = _LABEL_RE.match(text)
    if not match:
        raise ChordLabelError(f"not a Harte chord label: {label!r}")
    root = pitch_class(match["root"])
    quality = "maj" if match["quality"] is None else match["quality"]
    if quality not in CHORD_TYPE_INDEX or quality == "N":
        raise ChordLabelError(f"chord quality {quality!r} of {label!r} is not in the vocabulary")
    bass = root if match["bass"] is None else (root + degree_to_semitone(match["bass"])) % 12
    return root, CHORD_TYPE_INDEX[quality], bass


def format_label(root: int, chord_type: int, bass_note: int | None = None) -> str:
    """``(root, chord_type, bass_note)`` -> Harte label, e.g. ``(0, 10, 4)`` -> ``C:maj7/3``.

    The bass is written as a scale degree relative to the root and omitted when it is
    the root itself; ``chord_type`` 0 gives ``N`` whatever the root and bass.
    """
    if not 0 <= chord_type < NUM_CHORD_TYPES:
        raise ChordLabelError(f"chord_type index {chord_type} is outside 0..{NUM_CHORD_TYPES - 1}")
    if chord_type == NO_CHORD:
        return "N"
    if not 0 <= root < NUM_PITCH_CLASSES:
        raise ChordLabelError(f"root index {root} is outside 0..11")
    label = f"{PITCH_NAMES[root]}:{CHORD_TYPES[chord_type]}"
    if bass_note is not None and bass_note != root:
        if not 0 <= bass_note < NUM_PITCH_CLASSES:
            raise ChordLabelError(f"bass_note index {bass_note} is outside 0..11")
        label += "/" + BASS_DEGREES[(bass_note - root) % NUM_PITCH_CLASSES]
    return label


def chord_pitch_classes(root: int, chord_type: int) -> Tuple[int, ...]:
    """Pitch classes sounding in a chord, root first (empty for ``N``)."""
    return tuple((root + i) % NUM_PITCH_CLASSES for i in CHORD_INTERVALS[CHORD_TYPES[chord_type]])
