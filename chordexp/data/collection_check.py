"""Checking a collection of annotated songs before training on it (``python -m
chordexp.check_data``): every song the folder datasets would find, read one at a time,
with what is wrong tallied and reported as text.

The same discovery and label mapping as training (``chordexp.data.collection``,
``chordexp.data.labels``), so what the check reports is what training would meet.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from chordexp.audio import AudioError, read_audio_blocks
from chordexp.audio_names import walk_files
from chordexp.chords import CHORD_TYPES, format_label
from chordexp.data.collection import (
    ANNOTATION_SUFFIXES,
    SongError,
    annotation_root,
    discover,
    label_overrun,
    load_intervals,
    overlaps,
)
from chordexp.data.labels import UNKNOWN_CHORD_MODES, classify_label
from chordexp.errors import UsageError

SHOWN = 20  # lines listed per section; the rest are counted


@dataclass
class CollectionReport:
    """What :func:`check_collection` found; every list holds one line per finding."""

    root: Path
    annotations: Optional[Path]
    songs: int = 0
    annotated: int = 0
    seconds: float = 0.0  # decoded audio
    undecodable: List[str] = field(default_factory=list)  # errors
    unreadable: List[str] = field(default_factory=list)  # errors
    overlaps: List[str] = field(default_factory=list)  # errors
    overruns: List[str] = field(default_factory=list)  # errors: labels past the audio, which training refuses
    gaps: List[str] = field(default_factory=list)
    unannotated: List[str] = field(default_factory=list)
    orphans: List[str] = field(default_factory=list)  # annotation files no audio file claims
    end_mismatch: List[str] = field(default_factory=list)
    mapped: Counter = field(default_factory=Counter)  # "C:maj(11) -> C:maj": labels
    skipped: Counter = field(default_factory=Counter)  # label: count
    type_seconds: Counter = field(default_factory=Counter)  # chord type name (or "skipped"): seconds

    @property
    def errors(self) -> int:
        return len(self.undecodable) + len(self.unreadable) + len(self.overlaps) + len(self.overruns)


def decoded_seconds(path: Path) -> float:
    """The length of ``path``'s audio, decoded block by block (a file that does not decode
    to its end is an AudioError) so a 1-GB file costs time, not memory."""
    frames, rate = 0, 1
    for block, rate in read_audio_blocks(path):
        frames += len(block)
    return frames / rate


def check_collection(
    root: str | Path,
    annotations: Optional[str | Path] = None,
    unknown_chords: str = "map",
    end_tolerance: float = 5.0,
    gap_tolerance: float = 0.1,
) -> CollectionReport:
    """Read every song under ``root`` (one at a time) and tally what is wrong with it."""
    if unknown_chords not in UNKNOWN_CHORD_MODES:
        raise UsageError(f"unknown_chords={unknown_chords} must be one of {', '.join(UNKNOWN_CHORD_MODES)}")
    for key, value in (("end_tolerance", end_tolerance), ("gap_tolerance", gap_tolerance)):
        if not value >= 0:
            raise UsageError(f"{key}={value} must be >= 0 seconds")
    folder = Path(root).expanduser()
    if not folder.is_dir():
        kind = "a file, not a folder of songs" if folder.exists() else "no such folder"
        raise UsageError(f"root={root}: {kind}")
    try:
        ann = annotation_root(annotations)
    except ValueError:
        raise UsageError(f"annotations={annotations}: no such folder") from None
    entries = discover(folder.resolve(), ann)
    if not entries:
        raise UsageError(f"root={root} holds no audio files")
    report = CollectionReport(folder.resolve(), ann, songs=len(entries))
    report.orphans = orphan_annotations(ann or folder.resolve(), entries)
    for entry in entries:
        duration: Optional[float] = None
        try:
            duration = decoded_seconds(entry.audio)
            report.seconds += duration
        except AudioError as error:
            report.undecodable.append(str(error))
        if entry.annotation is None:
            report.unannotated.append(entry.missing_message())
            continue
        report.annotated += 1
        try:
            intervals, labels, rows = load_intervals(entry.annotation)
        except SongError as error:
            report.unreadable.append(str(error))
            continue
        overrun = None if duration is None else label_overrun(entry.annotation, rows, intervals, entry.audio, duration)
        if overrun:  # training refuses the song: none of its labels count
            report.overruns.append(overrun)
            continue
        report.overlaps += overlaps(entry.annotation, intervals, rows)
        previous_end = 0.0
        for (start, end), label, row in zip(intervals, labels, rows):
            if start - previous_end > gap_tolerance:
                report.gaps.append(
                    f"{entry.annotation}:{row}: {start - previous_end:.2f} s without a label "
                    f"({previous_end:g}..{start:g} s)"
                )
            previous_end = max(previous_end, end)
            triple, outcome = classify_label(label, unknown_chords)
            if outcome == "mapped" and triple is not None:
                report.mapped[f"{label} -> {format_label(*triple)}"] += 1
            elif outcome == "skipped":
                report.skipped[label] += 1
            report.type_seconds["skipped" if triple is None else CHORD_TYPES[triple[1]]] += end - start
        if duration is not None and abs(previous_end - duration) > end_tolerance:
            report.end_mismatch.append(
                f"{entry.annotation}: labels end at {previous_end:.2f} s, the audio at "
                f"{duration:.2f} s ({previous_end - duration:+.2f} s)"
            )
    return report


def orphan_annotations(folder: Path, entries: list) -> List[str]:
    """``.lab`` / ``.jams`` files under ``folder`` that no audio file pairs with (a name that
    differs between the audio and the annotation tree), hidden ones skipped."""
    claimed = {entry.expected for entry in entries}
    return [
        f"{path}: no audio file pairs with it"
        for path in sorted(walk_files(folder))
        if path.suffix.lower() in ANNOTATION_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.with_suffix("") not in claimed
    ]


def format_report(report: CollectionReport) -> str:
    """The report as text: a summary, then one section per kind of finding."""
    where = "beside the audio" if report.annotations is None else str(report.annotations)
    lines = [
        f"collection: {report.root} (annotations: {where})",
        f"songs: {report.songs} audio files, {report.annotated} annotated, "
        f"{len(report.unannotated)} without annotation",
        f"hours: {report.seconds / 3600:.3f} ({report.seconds:.1f} s of audio that decodes)",
    ]

    def section(title: str, items: List[str], level: str) -> None:
        if not items:
            return
        lines.append(f"{level} {title}: {len(items)}")
        lines.extend(f"  {item}" for item in items[:SHOWN])
        if len(items) > SHOWN:
            lines.append(f"  ... and {len(items) - SHOWN} more")

    section("audio that fails to decode", report.undecodable, "ERROR")
    section("annotations that cannot be read", report.unreadable, "ERROR")
    section("overlapping intervals", report.overlaps, "ERROR")
    section("labels past the end of the audio (training refuses these songs)", report.overruns, "ERROR")
    section("gaps between intervals", report.gaps, "warning")
    section("songs without an annotation", report.unannotated, "warning")
    section("annotation files without audio", report.orphans, "warning")
    section("annotations ending far from the audio's end", report.end_mismatch, "warning")
    outside = [f"{name} x{n}" for name, n in report.mapped.most_common()]
    outside += [f"{name} -> skipped x{n}" for name, n in report.skipped.most_common()]
    section("labels outside the vocabulary", outside, "note")
    total = sum(report.type_seconds.values())
    if total > 0:
        lines.append("duration per chord type:")
        lines.extend(
            f"  {name:<10} {seconds:10.1f} s  {100 * seconds / total:5.1f}%"
            for name, seconds in report.type_seconds.most_common()
        )
    warnings = len(report.gaps) + len(report.unannotated) + len(report.orphans) + len(report.end_mismatch)
    lines.append(f"{report.errors} error(s), {warnings} warning(s)")
    return "\n".join(lines)
