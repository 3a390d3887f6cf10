"""Annotation labels onto the 32-type vocabulary (``chordexp.chords``).

Public chord annotations use the whole Harte syntax; the model knows 32 chord types.
:func:`map_label` turns any label into a ``(root, chord_type, bass_note)`` triple, or
None where the time it covers cannot be used for training:

1. ``N`` and every label ``chordexp.chords.parse_label`` accepts (``C:min7/b3``, a bare
   ``C``) -> its exact triple ("exact").
2. ``X`` and anything ``mir_eval.chord`` cannot parse -> None ("skipped").
3. Other labels mir_eval parses (``C:maj(11)``, ``C:min(b13)``, ``C:sus4(9)``,
   ``C:(1,3,5,b7,9)``) -> with ``unknown_chords="map"``, the vocabulary type whose
   interval set is closest ("mapped"); with ``"skip"``, None ("skipped").
   The label's tones are ``mir_eval.chord.encode(label_without_bass,
   reduce_extended_chords=True)``: the root, the quality's intervals and the
   extensions, 9/11/13 folded into the octave (b13 -> b6); the bass is not counted as a
   tone. Each vocabulary type's tones are ``CHORD_INTERVALS`` folded the same way (the
   32 folded sets are distinct). The type with the highest Jaccard overlap
   ``|label & type| / |label | type|`` wins; ties go to the type with fewer tones, then
   to the type named by the label's quality (``sus4`` for ``C:sus4(9)``), then to the
   earlier type in vocabulary order. Root and bass keep their pitch classes
   (``C:maj(11)/b7`` -> ``C:maj/b7``).
   Examples: ``C:maj(11)`` -> ``C:maj``; ``C:(1,3,5,b7,9)`` -> ``C:9``;
   ``C:min(b13)`` -> ``C:min``; ``C:sus4(9)`` -> ``C:sus4``; ``C:(1,b3)`` -> ``C:min``.

:class:`LabelCounts` tallies the outcomes (labels and seconds) for one report line.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Optional, Tuple

from chordexp.chords import CHORD_INTERVALS, CHORD_TYPES, NO_CHORD, ChordLabelError, format_label, parse_label
from chordexp.errors import ConfigValueError

Triple = Tuple[int, int, int]  # (root, chord_type, bass_note), as parse_label returns
UNKNOWN_CHORD_MODES = ("map", "skip")
OUTCOMES = ("exact", "mapped", "skipped")

#: Each non-N vocabulary type's tones as pitch classes above the root (extensions folded).
_TYPE_TONES: Tuple[Tuple[int, str, FrozenSet[int]], ...] = tuple(
    (index, name, frozenset(i % 12 for i in CHORD_INTERVALS[name]))
    for index, name in enumerate(CHORD_TYPES)
    if index != NO_CHORD
)


def classify_label(label: str, unknown_chords: str = "map") -> Tuple[Optional[Triple], str]:
    """``label`` -> ``(triple or None, outcome)``, outcome one of ``OUTCOMES``
    (the rule is in the module docstring)."""
    if unknown_chords not in UNKNOWN_CHORD_MODES:
        raise ConfigValueError(f"unknown_chords must be one of {UNKNOWN_CHORD_MODES}, got {unknown_chords!r}")
    text = label.strip()
    try:
        return parse_label(text), "exact"
    except ChordLabelError:
        pass
    if text == "X" or unknown_chords == "skip":
        return None, "skipped"
    encoded = _encode(text)
    if encoded is None:
        return None, "skipped"
    root, tones, bass, quality = encoded
    return (root, nearest_type(tones, quality), bass), "mapped"


def map_label(label: str, unknown_chords: str = "map") -> Optional[Triple]:
    """Harte label -> ``(root, chord_type, bass_note)`` in the vocabulary, or None (skip it)."""
    return classify_label(label, unknown_chords)[0]


def nearest_type(tones: FrozenSet[int], quality: str = "") -> int:
    """The vocabulary chord type (index) closest to ``tones`` (pitch classes above the root)."""

    def rank(entry: Tuple[int, str, FrozenSet[int]]) -> Tuple[float, int, int, int]:
        index, name, type_tones = entry
        jaccard = len(tones & type_tones) / len(tones | type_tones)
        return -jaccard, len(type_tones), 0 if name == quality else 1, index

    return min(_TYPE_TONES, key=rank)[0]


def _encode(label: str) -> Optional[Tuple[int, FrozenSet[int], int, str]]:
    """``(root, tones, bass pitch class, quality name)`` via mir_eval, None if it cannot parse."""
    import mir_eval

    try:
        chord = label.split("/", 1)[0]
        root, bitmap, _ = mir_eval.chord.encode(chord, reduce_extended_chords=True)
        _, _, bass_interval = mir_eval.chord.encode(label)
        quality = mir_eval.chord.split(label)[1]
    except (mir_eval.chord.InvalidChordException, ValueError, KeyError, IndexError):
        return None
    if root < 0:  # N or X spelt in a way parse_label did not catch
        return None
    tones = frozenset(int(i) for i in bitmap.nonzero()[0])
    return int(root), tones, (int(root) + int(bass_interval)) % 12, quality


@dataclass
class LabelCounts:
    """How many labels (and seconds) were used exactly, mapped, or skipped."""

    labels: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    seconds: Dict[str, float] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0.0))
    mapped: Counter[str] = field(default_factory=Counter)  # "C:maj(11) -> C:maj": count
    skipped: Counter[str] = field(default_factory=Counter)  # label: count

    def add(self, label: str, outcome: str, seconds: float, triple: Optional[Triple] = None) -> None:
        self.labels[outcome] += 1
        self.seconds[outcome] += seconds
        if outcome == "mapped" and triple is not None:
            self.mapped[f"{label} -> {format_label(*triple)}"] += 1
        elif outcome == "skipped":
            self.skipped[label] += 1

    def merge(self, other: "LabelCounts") -> None:
        """Add ``other``'s tallies to these."""
        for outcome in OUTCOMES:
            self.labels[outcome] += other.labels[outcome]
            self.seconds[outcome] += other.seconds[outcome]
        self.mapped.update(other.mapped)
        self.skipped.update(other.skipped)

    def summary(self, most_common: int = 5) -> str:
        """One line: ``exact 120 (410.2 s), mapped 3 (8.0 s; C:maj(11) -> C:maj x2, ...), skipped ...``."""
        parts = []
        for outcome in OUTCOMES:
            part = f"{outcome} {self.labels[outcome]} ({self.seconds[outcome]:.1f} s"
            detail = {"mapped": self.mapped, "skipped": self.skipped}.get(outcome)
            if detail:
                part += "; " + ", ".join(f"{k} x{n}" for k, n in detail.most_common(most_common))
                if len(detail) > most_common:
                    part += ", ..."
            parts.append(part + ")")
        return ", ".join(parts)
