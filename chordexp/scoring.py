"""Scoring chord transcriptions with mir_eval: one pair, a folder of pairs, pooled.

Each pair is scored with ``mir_eval.chord``'s comparison functions exactly as
``mir_eval.chord.evaluate`` does (the estimate is cropped or padded with ``N`` to the
reference span), keeping the seconds judged, so scores pool by duration across songs.
``python -m chordexp.evaluate`` (files), training's song validation and
``chordexp.tune_decoder`` (songs in memory) all score here, so their figures agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from chordexp.audio_names import AUDIO_SUFFIXES, walk_files
from chordexp.chords import ChordLabelError, parse_label
from chordexp.errors import UsageError
from chordexp.labfile import Labels, load_lab

#: Chord metrics in report order (mir_eval's comparison functions), then ours, then segmentation.
CHORD_METRICS: Tuple[str, ...] = (
    "root",
    "majmin",
    "majmin_inv",
    "thirds",
    "thirds_inv",
    "triads",
    "triads_inv",
    "sevenths",
    "sevenths_inv",
    "tetrads",
    "tetrads_inv",
    "mirex",
)
EXACT = "exact"
SEGMENT_METRICS: Tuple[str, ...] = ("overseg", "underseg", "seg")
METRICS: Tuple[str, ...] = CHORD_METRICS + (EXACT,) + SEGMENT_METRICS
POOLING = (
    "aggregate: durations pooled across songs (seconds judged correct / seconds judged, "
    "over all files; not a mean of per-song scores)"
)

#: What song validation reports (the metrics users quote), as history keys ``val_<name>``.
SONG_METRICS: Tuple[str, ...] = ("root", "majmin", "majmin_inv", "sevenths", "sevenths_inv", "mirex", "seg")


@dataclass
class PairScore:
    """One reference/estimate pair: per-metric seconds judged and seconds judged correct."""

    judged: Dict[str, float]
    correct: Dict[str, float]
    span: float  # reference duration, the weight of the segmentation scores

    def scores(self) -> Dict[str, Optional[float]]:
        """Metric -> score in [0, 1]; None where nothing in the reference can be judged
        (mir_eval itself reports 0 there)."""
        return {m: (self.correct[m] / self.judged[m] if self.judged[m] > 0 else None) for m in METRICS}


def _exact_comparisons(ref_labels: List[str], est_labels: List[str]) -> np.ndarray:
    """1 / 0 where the reference is in the vocabulary, -1 (not judged) elsewhere."""
    out = np.empty(len(ref_labels))
    for i, (ref, est) in enumerate(zip(ref_labels, est_labels)):
        try:
            ref_triple = parse_label(ref)
        except ChordLabelError:
            out[i] = -1
            continue
        try:
            out[i] = float(parse_label(est) == ref_triple)
        except ChordLabelError:
            out[i] = 0.0
    return out


def score_labels(reference: Labels, estimate: Labels) -> PairScore:
    """Score one pair the way ``mir_eval.chord.evaluate`` does, keeping the weights.

    The score of metric m is ``correct[m] / judged[m]``, identical to
    ``mir_eval.chord.evaluate`` wherever mir_eval judges anything.
    """
    import mir_eval
    from mir_eval import chord, util

    ref_intervals, ref_labels = reference
    est_intervals, est_labels = estimate
    est_intervals, est_labels = util.adjust_intervals(
        est_intervals, list(est_labels), ref_intervals.min(), ref_intervals.max(), chord.NO_CHORD, chord.NO_CHORD
    )
    merged_ref = chord.merge_chord_intervals(ref_intervals, ref_labels)
    merged_est = chord.merge_chord_intervals(est_intervals, est_labels)
    intervals, refs, ests = util.merge_labeled_intervals(ref_intervals, list(ref_labels), est_intervals, est_labels)
    durations = util.intervals_to_durations(intervals)

    judged: Dict[str, float] = {}
    correct: Dict[str, float] = {}
    for metric in CHORD_METRICS + (EXACT,):
        comparisons = _exact_comparisons(refs, ests) if metric == EXACT else getattr(chord, metric)(refs, ests)
        valid = comparisons >= 0
        judged[metric] = float(durations[valid].sum())
        correct[metric] = float((comparisons[valid] * durations[valid]).sum())
    span = float(ref_intervals.max() - ref_intervals.min())
    overseg = mir_eval.chord.overseg(merged_ref, merged_est)
    underseg = mir_eval.chord.underseg(merged_ref, merged_est)
    for metric, value in (("overseg", overseg), ("underseg", underseg), ("seg", min(overseg, underseg))):
        judged[metric] = span
        correct[metric] = float(value) * span
    return PairScore(judged, correct, span)


def evaluate_pair(ref_path: str | Path, est_path: str | Path) -> Dict[str, Optional[float]]:
    """Reference and estimated ``.lab`` -> {metric: score} (mir_eval's metrics + ``exact``).

    A metric is None where the reference holds nothing it can judge.
    """
    return score_labels(load_lab(ref_path, disjoint=True), load_lab(est_path, disjoint=True)).scores()


def find_labs(folder: str | Path, key: str) -> Dict[str, Path]:
    """All ``*.lab`` under ``folder`` by relative path without suffix (posix)."""
    folder = Path(folder)
    if not folder.is_dir():
        kind = "a file, not a folder of .lab files" if folder.exists() else "no such folder"
        raise UsageError(f"{key}={folder}: {kind}")
    return {
        p.relative_to(folder).with_suffix("").as_posix(): p
        for p in sorted(walk_files(folder))
        if p.suffix == ".lab" and p.is_file()
    }


Pairs = Dict[str, Tuple[Path, Path]]  # name -> (reference, prediction)


def without_audio_suffix(name: str) -> str:
    """``"album/a.wav"`` -> ``"album/a"``: predict keeps the audio extension in a name
    (``a.wav.lab``) where two inputs would collide; other names are returned unchanged."""
    base, dot, extension = name.rpartition(".")
    if dot and base and not base.endswith("/") and f".{extension.lower()}" in AUDIO_SUFFIXES:
        return base
    return name


def pair_files(predictions: Dict[str, Path], references: Dict[str, Path]) -> Tuple[Pairs, List[str], List[str]]:
    """-> ({name: (reference, prediction)}, references without prediction, predictions without
    reference). Relative paths match first, then relative paths without the audio extension
    predict keeps where names would collide (``a.wav.lab`` and ``a.flac.lab`` both pair with
    ``a.lab``, named ``a.wav`` and ``a.flac``); the rest match by file name where it is unique."""
    pairs = {name: (references[name], predictions[name]) for name in references if name in predictions}
    paired_refs = set(pairs)
    for name, path in predictions.items():
        base = without_audio_suffix(name)
        if name not in pairs and base != name and base in references:
            pairs[name] = (references[base], path)
            paired_refs.add(base)
    paired_preds = {name for name in pairs}
    ref_left = {n: p for n, p in references.items() if n not in paired_refs}
    pred_left = {n: p for n, p in predictions.items() if n not in paired_preds}

    def by_stem(items: Dict[str, Path]) -> Dict[str, str]:
        stems: Dict[str, List[str]] = {}
        for name, path in items.items():
            stems.setdefault(without_audio_suffix(path.stem), []).append(name)
        return {stem: names[0] for stem, names in stems.items() if len(names) == 1}

    pred_stems = by_stem(pred_left)
    for stem, ref_name in by_stem(ref_left).items():
        if stem in pred_stems:
            pairs[ref_name] = (ref_left.pop(ref_name), pred_left.pop(pred_stems[stem]))
    return dict(sorted(pairs.items())), sorted(ref_left), sorted(pred_left)


def pool(pair_scores: Mapping[Any, PairScore]) -> Tuple[Dict[str, Optional[float]], Dict[str, float]]:
    """Duration-pooled aggregate: ({metric: score or None}, {metric: seconds judged})."""
    judged = {m: sum(p.judged[m] for p in pair_scores.values()) for m in METRICS}
    correct = {m: sum(p.correct[m] for p in pair_scores.values()) for m in METRICS}
    return {m: (correct[m] / judged[m] if judged[m] > 0 else None) for m in METRICS}, judged


def evaluate_dirs(pred_dir: str | Path, ref_dir: str | Path) -> Dict[str, object]:
    """Score every prediction that has a reference.

    Returns ``{"pooling": str, "files": {name: {metric: score}}, "aggregate": {metric: score},
    "durations": {"files": {name: {metric: seconds judged}}, "aggregate": {metric: seconds}},
    "missing_predictions": [names], "missing_references": [names]}``; a score is None where
    nothing could be judged.
    """
    pairs, missing_predictions, missing_references = pair_files(
        find_labs(pred_dir, "predictions"), find_labs(ref_dir, "references")
    )
    pair_scores = {
        name: score_labels(load_lab(ref, disjoint=True), load_lab(est, disjoint=True))
        for name, (ref, est) in pairs.items()
    }
    aggregate, pooled_durations = pool(pair_scores)
    return {
        "pooling": POOLING,
        "files": {name: s.scores() for name, s in pair_scores.items()},
        "aggregate": aggregate,
        "durations": {
            "files": {name: dict(s.judged) for name, s in pair_scores.items()},
            "aggregate": pooled_durations,
        },
        "missing_predictions": missing_predictions,
        "missing_references": missing_references,
    }


def format_table(result: Dict[str, object]) -> str:
    """Per-file rows and the pooled aggregate row, scores in percent (``-``: not judged)."""
    files: Dict[str, Dict[str, Optional[float]]] = result["files"]  # type: ignore[assignment]
    durations = result["durations"]["files"]  # type: ignore[index]
    name_width = max([len("file"), len("AGGREGATE (pooled)")] + [len(n) for n in files])
    widths = [max(len(m), 5) for m in METRICS]

    def row(name: str, seconds: str, scores: Dict[str, Optional[float]]) -> str:
        cells = ["-" if (score := scores[m]) is None else f"{100 * score:.1f}" for m in METRICS]
        return "  ".join([name.ljust(name_width), seconds.rjust(7)] + [c.rjust(w) for c, w in zip(cells, widths)])

    header = "  ".join(["file".ljust(name_width), "seconds"] + [m.rjust(w) for m, w in zip(METRICS, widths)])
    lines = [f"# {POOLING}; scores in %, '-' = nothing in the reference to judge", header]
    for name, scores in files.items():
        lines.append(row(name, f"{durations[name]['seg']:.1f}", scores))
    total = sum(d["seg"] for d in durations.values())
    lines.append(row("AGGREGATE (pooled)", f"{total:.1f}", result["aggregate"]))  # type: ignore[arg-type]
    return "\n".join(lines)


def segments_to_labels(segments: Sequence[Tuple[float, float, str]]) -> Labels:
    """Transcription segments ``(start, end, label)`` -> what :func:`score_labels` takes."""
    intervals = np.array([[start, end] for start, end, _ in segments], dtype=np.float64).reshape(-1, 2)
    return intervals, [label for _, _, label in segments]
