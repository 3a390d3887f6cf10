"""Frame-wise chord posteriors -> chord segments, by Viterbi decoding.

Frame predictions flicker; chord recognisers (crema, madmom, BTC) smooth them with an
HMM whose only prior is that a chord tends to last: every state keeps itself with
probability ``self_transition`` and jumps to any other state with equal probability.
States are ``N`` plus every (root, chord type) pair: 1 + 12 * 31 = 373. The bass is
then chosen per segment among the chord's tones, from the bass head's mean posterior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from chordexp.chords import NUM_CHORD_TYPES, NUM_PITCH_CLASSES, chord_pitch_classes, format_label
from chordexp.errors import ConfigValueError

Segment = Tuple[float, float, str]

#: ``prior_weight``: the chord-type posteriors are divided by the training prior raised
#: to this power. Positive lets rare types through (the hybrid HMM's scaled likelihoods);
#: negative sharpens towards common types, which a model hedging on unfamiliar audio
#: (real records) needs. The one range every command checks.
PRIOR_WEIGHT_RANGE = (-2.0, 1.0)


@dataclass(frozen=True)
class DecoderSettings:
    """The decoder's settings and their defaults: the one home that the recogniser, the
    exported models, ``predict`` and the run's schema read. A model that saved no decoder
    (a classification-mode run, an old checkpoint) decodes with these; the main job saves
    its own (conf/config.yaml) with the model."""

    self_transition: float = 0.95  # HMM chord persistence: share of frames that keep their chord
    prior_weight: float = 0.0  # the chord-type prior divided out (> 0) or sharpened (< 0); PRIOR_WEIGHT_RANGE
    estimate_tuning: bool = False  # measure the offset from A440 and move the front end's filters by it
    silence_db: Optional[float] = 30.0  # frames this far below the loudest are N (None: off); not saved
    # also hear the recording moved 1..n semitones up and down (the front end's filters
    # shifted) and average the posteriors, rotated back: 3x the model's work for n = 1
    transpositions: int = 0

    @classmethod
    def of_model(cls, saved: Optional[Mapping[str, Any]], **given: Any) -> "DecoderSettings":
        """The settings a model saved (``saved``, the checkpoint's decoder dict), each
        replaced by a ``given`` value that is not None; the defaults for the rest."""
        values = {name: (saved or {}).get(name) for name in cls().saved()}
        values.update({name: value for name, value in given.items() if value is not None})
        settings = replace(cls(), **{name: value for name, value in values.items() if value is not None})
        return replace(
            settings,
            self_transition=float(settings.self_transition),
            prior_weight=float(settings.prior_weight),
            estimate_tuning=bool(settings.estimate_tuning),
            transpositions=int(settings.transpositions),
        )

    def saved(self) -> Dict[str, Any]:
        """The settings a model carries (all but ``silence_db``, the listener's), by name:
        a recogniser's keyword arguments."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "silence_db"}


#: The defaults of every decoding command and class.
DECODER_DEFAULTS = DecoderSettings()


#: ``transpositions``: how many semitones up and down the posteriors are also taken at.
TRANSPOSITIONS_RANGE = (0, 3)


def transpositions_ok(value: object) -> bool:
    """``transpositions`` is an integer (not a bool) in ``TRANSPOSITIONS_RANGE``."""
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and TRANSPOSITIONS_RANGE[0] <= value <= TRANSPOSITIONS_RANGE[1]
    )


def self_transition_ok(value: object) -> bool:
    """``self_transition`` is a finite number strictly between 0 and 1."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < value < 1.0


def prior_weight_ok(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and PRIOR_WEIGHT_RANGE[0] <= value <= PRIOR_WEIGHT_RANGE[1]
    )


#: The decoder settings a user gives (predict, export), each with its check and what it
#: must be, worded once.
DECODER_RULES: Dict[str, Tuple[Callable[[object], bool], str]] = {
    "self_transition": (self_transition_ok, "must be in (0, 1) (the share of frames that keep their chord)"),
    "prior_weight": (
        prior_weight_ok,
        f"must be in {list(PRIOR_WEIGHT_RANGE)} (0: off, 1: the chord-type prior divided out fully, "
        f"< 0: sharpened towards common types)",
    ),
    "transpositions": (
        transpositions_ok,
        f"must be an integer in {TRANSPOSITIONS_RANGE[0]}..{TRANSPOSITIONS_RANGE[1]} "
        f"(semitones up and down averaged; 0: off)",
    ),
}
#: The decoder settings a command takes, each null for the model's saved one.
DECODER_ARGS = ("self_transition", "prior_weight", "estimate_tuning", "transpositions")


def given_decoder(args: object) -> Dict[str, Any]:
    """The decoder settings ``args`` (a command's arguments) gives, by name: those not None."""
    given = {name: getattr(args, name, None) for name in DECODER_ARGS}
    return {name: value for name, value in given.items() if value is not None}


def decoder_problem(given: Mapping[str, Any]) -> Optional[str]:
    """``name=value must ...`` for the first setting of ``given`` that breaks its rule
    (``DECODER_RULES``), else None."""
    for name, (ok, requirement) in DECODER_RULES.items():
        if name in given and not ok(given[name]):
            return f"{name}={given[name]} {requirement}"
    return None


def state_log_likelihoods(type_logp: np.ndarray, root_logp: np.ndarray) -> np.ndarray:
    """``(T, 32)`` and ``(T, 12)`` log-posteriors -> ``(T, 373)`` joint log-posteriors.

    State 0 is N; state ``1 + (t - 1) * 12 + r`` is chord type t (1..31) on root r.
    """
    chords = type_logp[:, 1:, None] + root_logp[:, None, :]  # (T, 31, 12)
    return np.concatenate([type_logp[:, :1], chords.reshape(len(type_logp), -1)], axis=1)


def state_to_chord(state: int) -> Tuple[int, int]:
    """State index -> ``(root, chord_type)``."""
    if state == 0:
        return 0, 0
    chord_type, root = divmod(state - 1, NUM_PITCH_CLASSES)
    return root, chord_type + 1


def viterbi(log_likelihoods: np.ndarray, self_transition: float) -> np.ndarray:
    """Most likely state path ``(T,)`` under a uniform-switch HMM; O(T * states)."""
    n_frames, n_states = log_likelihoods.shape
    return viterbi_blocks(lambda lo, hi: log_likelihoods[lo:hi], n_frames, n_states, self_transition)


#: frames of log-likelihoods ``viterbi_blocks`` asks for at a time
VITERBI_BLOCK = 4096


def viterbi_blocks(
    rows: Callable[[int, int], np.ndarray], n_frames: int, n_states: int, self_transition: float
) -> np.ndarray:
    """``viterbi`` over log-likelihoods made ``VITERBI_BLOCK`` frames at a time by
    ``rows(lo, hi)`` (``(hi - lo, n_states)``), so a 2-hour recording never holds its
    ``(T, 373)`` matrix; the back-pointers are one bit per state and frame (whether the
    state was entered from the best one) plus that best state per frame."""
    if not self_transition_ok(self_transition):
        raise ConfigValueError(f"self_transition must be in (0, 1), got {self_transition}")
    log_stay = np.log(self_transition)
    log_switch = np.log((1.0 - self_transition) / (n_states - 1))
    came_from_best = np.zeros((n_frames, (n_states + 7) // 8), dtype=np.uint8)  # packed bits
    best_prev = np.zeros(n_frames, dtype=np.int64)
    score = None
    for lo in range(0, n_frames, VITERBI_BLOCK):
        block = rows(lo, min(n_frames, lo + VITERBI_BLOCK))
        for i, row in enumerate(block):
            t = lo + i
            if score is None:
                score = row - np.log(n_states)
                continue
            best = int(score.argmax())
            stay = score + log_stay
            switch = score[best] + log_switch
            came_from_best[t] = np.packbits(switch > stay)
            best_prev[t] = best
            score = np.maximum(stay, switch) + row
    assert score is not None, "viterbi over no frames"
    path = np.empty(n_frames, dtype=np.int64)
    path[-1] = int(score.argmax())
    for t in range(n_frames - 1, 0, -1):
        state = int(path[t])
        from_best = (came_from_best[t, state >> 3] >> (7 - (state & 7))) & 1
        path[t - 1] = best_prev[t] if from_best else state
    return path


def decode_segments(
    type_logp: np.ndarray,
    root_logp: np.ndarray,
    bass_logp: np.ndarray,
    frame_rate: float,
    duration: float,
    self_transition: float = DECODER_DEFAULTS.self_transition,
    silent: np.ndarray | None = None,
) -> List[Segment]:
    """Per-frame log-posteriors (frame k centred at ``k / frame_rate`` s) -> segments
    ``(start, end, Harte label)`` covering ``[0, duration]``; boundaries fall halfway
    between frames. Frames flagged in ``silent`` (bool ``(T,)``) can only be ``N``: the
    model sees loudness-normalised input, so it cannot tell a quiet tail from a chord."""
    assert type_logp.shape[1] == NUM_CHORD_TYPES and root_logp.shape[1] == NUM_PITCH_CLASSES

    def rows(lo: int, hi: int) -> np.ndarray:  # the (T, 373) matrix a block at a time
        log_likelihoods = state_log_likelihoods(type_logp[lo:hi], root_logp[lo:hi])
        if silent is not None and silent[lo:hi].any():
            log_likelihoods[silent[lo:hi], 1:] = -1e9
            log_likelihoods[silent[lo:hi], 0] = 0.0
        return log_likelihoods

    path = viterbi_blocks(rows, len(type_logp), 1 + NUM_PITCH_CLASSES * (NUM_CHORD_TYPES - 1), self_transition)

    def label(first: int, stop: int) -> str:
        root, chord_type = state_to_chord(int(path[first]))
        bass = root
        if chord_type:
            tones = list(chord_pitch_classes(root, chord_type))
            bass = tones[int(bass_logp[first:stop, tones].mean(axis=0).argmax())]
        return format_label(root, chord_type, bass)

    return path_segments(path, frame_rate, duration, label)


def path_segments(
    path: np.ndarray, frame_rate: float, duration: float, label: Callable[[int, int], str]
) -> List[Segment]:
    """A state path ``(T,)`` (frame k centred at ``k / frame_rate`` s) -> one segment
    ``(start, end, label(first, stop))`` per run of a state, covering ``[0, duration]``,
    boundaries halfway between frames, times rounded to 0.1 ms (segments that round to
    nothing dropped). Shared by the model's decoder and ``chordexp.baseline``."""
    changes = np.flatnonzero(np.diff(path)) + 1
    starts = np.concatenate([[0], changes])
    ends = np.concatenate([changes, [len(path)]])
    segments: List[Segment] = []
    for first, stop in zip(starts, ends):
        begin = 0.0 if first == 0 else (first - 0.5) / frame_rate
        end = duration if stop == len(path) else (stop - 0.5) / frame_rate
        segments.append((round(begin, 4), round(min(end, duration), 4), label(first, stop)))
    return [s for s in segments if s[1] > s[0]]


def estimate_decoder_priors(chord_type: np.ndarray, root: np.ndarray, bass_note: np.ndarray, mask: np.ndarray) -> dict:
    """Decoder statistics from frame labels ``(N, T)`` (``mask`` True = a real frame):
    ``self_transition``, the share of consecutive frame pairs that keep their chord
    (so the HMM expects chords as long as the training songs hold them), and
    ``type_prior``, the share of frames of each chord type (32 floats; the frame
    posteriors carry it, and ``prior_weight`` can divide it out of them)."""
    chord_type, root, bass_note, mask = (np.asarray(a) for a in (chord_type, root, bass_note, mask))
    both = mask[:, 1:] & mask[:, :-1]
    same = (
        (chord_type[:, 1:] == chord_type[:, :-1])
        & (root[:, 1:] == root[:, :-1])
        & (bass_note[:, 1:] == bass_note[:, :-1])
    )
    pairs = int(both.sum())
    stay = float((same & both).sum()) / pairs if pairs else DECODER_DEFAULTS.self_transition
    counts = np.bincount(chord_type[mask].ravel(), minlength=NUM_CHORD_TYPES).astype(np.float64)
    prior = (counts + 1.0) / (counts.sum() + NUM_CHORD_TYPES)  # add-one: no type impossible
    return {"self_transition": float(np.clip(stay, 0.5, 0.999)), "type_prior": prior.tolist()}
