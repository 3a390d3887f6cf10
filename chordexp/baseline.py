"""A non-learned chord recogniser: chroma, chord templates, Viterbi. The bar to beat.

    python -m chordexp.baseline input=FILE_OR_DIR output=DIR [switch_penalty=0.5]
        [bass_weight=0.3] [inversion_penalty=0.1] [silence_db=35]

The classic pipeline (Fujishima 1999; Oudre et al. 2009; Mauch's Chordino without NNLS):

1. Audio -> mono, 11025 Hz; STFT magnitude, Hann, hop 1024 (10.8 frames/s), a 4096-point
   window (0.37 s) for the treble and an 8192-point one (0.74 s) for the bass, whose
   semitones are only a few Hz apart.
2. Spectral peaks only (local maxima over FFT bins, as in HPCP: no window leakage into
   neighbouring semitones) -> triangular semitone filters (MIDI 28..95) -> log-frequency
   spectrogram, log-compressed (``log(1 + 100 x / max)``) -> treble chroma (MIDI 40..95)
   and bass chroma (MIDI 28..54, weighted towards the lowest octave), 12 pitch classes.
3. Every (root, chord type, bass) of the 31 chord types x 12 roots, bass any chord tone,
   scores ``cos(treble chroma, binary template) + bass_weight * bass_chroma[bass]
   - inversion_penalty * [bass != root]``; ``N`` scores high only where the frame is
   ``silence_db`` dB below the recording's loud frames (as ``predict``'s gate counts).
4. Viterbi with a switch penalty (a chord must out-score the current one by
   ``switch_penalty`` summed over its frames to start), via ``chordexp.decode.viterbi``.

Design choices (peaks, compression 100, binary templates rather than harmonic ones) were
picked on additive-synthesis chords made for the purpose; no constant was tuned on the
rendered evaluation set (``chordexp.evalset``).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from chordexp.audio import AudioError, mono_samples, read_audio, resample
from chordexp.audio_names import find_audio_files
from chordexp.chords import CHORD_INTERVALS, CHORD_TYPES, NUM_PITCH_CLASSES, format_label
from chordexp.cli import main_guard, parse_args
from chordexp.decode import Segment, path_segments, viterbi
from chordexp.errors import UsageError
from chordexp.labfile import write_lab
from chordexp.output_dirs import make_output_folder, plan_transcriptions, prediction_comment

USAGE = __doc__.split("The classic pipeline")[0].strip()

SAMPLE_RATE = 11025
HOP = 1024
TREBLE_FFT = 4096
BASS_FFT = 8192
PITCH_LOW, PITCH_HIGH = 28, 95  # E1 .. B6, MIDI numbers
TREBLE_RANGE = (40, 95)
BASS_RANGE = (28, 54)
COMPRESSION = 100.0  # log(1 + COMPRESSION * magnitude / loudest)
_VITERBI_SCALE = 20.0  # score units -> log-likelihood; the path depends only on switch_penalty


@dataclass
class BaselineParams:
    """Decoding constants, in score units (a cosine similarity is at most 1)."""

    switch_penalty: float = 0.5
    bass_weight: float = 0.3
    inversion_penalty: float = 0.1
    silence_db: float = 35.0  # dB below the loud frames where N wins, as predict's silence_db


# --------------------------------------------------------------------------- features


def _semitone_filterbank(n_fft: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``(PITCH_HIGH - PITCH_LOW + 1, n_fft // 2 + 1)`` triangular filters, each summing to 1.

    A filter spans one semitone each side of its centre, and at least 1.5 FFT bins, so
    the low semitones (closer than an FFT bin) still see the bins nearest their centre.
    """
    bins = np.arange(n_fft // 2 + 1)
    bin_hz = sample_rate / n_fft
    bank = np.zeros((PITCH_HIGH - PITCH_LOW + 1, bins.size))
    for i, midi in enumerate(range(PITCH_LOW, PITCH_HIGH + 1)):
        centre = 440.0 * 2 ** ((midi - 69) / 12) / bin_hz
        half_width = max(centre * (2 ** (1 / 12) - 1), 1.5)
        weights = np.clip(1 - np.abs(bins - centre) / half_width, 0, None)
        bank[i] = weights / weights.sum()
    return bank


def _pitch_spectrogram(audio: np.ndarray, n_fft: int) -> np.ndarray:
    """Mono audio -> semitone magnitudes ``(n_pitches, T)``; frame t centred at ``t * HOP``."""
    n_frames = len(audio) // HOP + 1
    padded = np.pad(audio.astype(np.float64), (n_fft // 2, n_fft // 2 + HOP))
    window = np.hanning(n_fft)
    bank = _semitone_filterbank(n_fft)
    out = np.empty((bank.shape[0], n_frames))
    chunk = 512  # frames per FFT batch, to bound memory on long recordings
    for first in range(0, n_frames, chunk):
        idx = np.arange(first, min(first + chunk, n_frames))
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[idx * HOP]
        out[:, idx] = bank @ _spectral_peaks(np.abs(np.fft.rfft(frames * window, axis=1))).T
    return out


def _spectral_peaks(magnitudes: np.ndarray) -> np.ndarray:
    """``(frames, bins)`` magnitudes with everything but local maxima over bins zeroed.

    The window's main lobe spreads each partial over neighbouring semitones, which the
    templates would read as extra chord tones; keeping only peaks (as HPCP does) removes it.
    """
    peaks = np.zeros_like(magnitudes)
    centre = magnitudes[:, 1:-1]
    is_peak = (centre >= magnitudes[:, :-2]) & (centre >= magnitudes[:, 2:])
    peaks[:, 1:-1] = np.where(is_peak, centre, 0.0)
    return peaks


def _fold(pitches: np.ndarray, low: int, high: int, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Semitone rows MIDI ``low..high`` -> chroma ``(12, T)``, row k = pitch class k."""
    rows = pitches[low - PITCH_LOW : high - PITCH_LOW + 1]
    if weights is not None:
        rows = rows * weights[:, None]
    chroma = np.zeros((NUM_PITCH_CLASSES, pitches.shape[1]))
    for midi, row in zip(range(low, high + 1), rows):
        chroma[midi % NUM_PITCH_CLASSES] += row
    return chroma


def chroma_features(audio: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mono audio at :data:`SAMPLE_RATE` -> (treble chroma ``(12, T)``, bass chroma
    ``(12, T)``, frame level in dB relative to the loud frames ``(T,)``)."""
    treble_pitches = _pitch_spectrogram(audio, TREBLE_FFT)
    bass_pitches = _pitch_spectrogram(audio, BASS_FFT)
    power = (treble_pitches**2).sum(axis=0)
    loud = np.percentile(power, 95) if power.any() else 1.0
    level_db = 10 * np.log10(np.maximum(power, 1e-12) / max(loud, 1e-12))
    reference = max(treble_pitches.max(), bass_pitches.max(), 1e-12)
    treble = _fold(np.log1p(COMPRESSION * treble_pitches / reference), *TREBLE_RANGE)
    low, high = BASS_RANGE
    lowest_octave_first = np.clip((high - np.arange(low, high + 1)) / 12.0, 0, 1)
    bass = _fold(np.log1p(COMPRESSION * bass_pitches / reference), low, high, lowest_octave_first)
    return treble, bass, level_db


# --------------------------------------------------------------------------- templates


def chord_states() -> Tuple[List[Tuple[int, int, int]], np.ndarray]:
    """All ``(root, chord_type, bass)`` with bass a chord tone, and their unit-norm binary
    chroma templates ``(S, 12)``. Extensions above the octave fold into the pitch classes."""
    states, templates = [], []
    for chord_type in range(1, len(CHORD_TYPES)):
        intervals = sorted({i % NUM_PITCH_CLASSES for i in CHORD_INTERVALS[CHORD_TYPES[chord_type]]})
        for root in range(NUM_PITCH_CLASSES):
            template = np.zeros(NUM_PITCH_CLASSES)
            template[[(root + i) % NUM_PITCH_CLASSES for i in intervals]] = 1
            template /= np.linalg.norm(template)
            for interval in intervals:
                states.append((root, chord_type, (root + interval) % NUM_PITCH_CLASSES))
                templates.append(template)
    return states, np.array(templates)


_STATES, _TEMPLATES = chord_states()


def state_scores(treble: np.ndarray, bass: np.ndarray, level_db: np.ndarray, params: BaselineParams) -> np.ndarray:
    """Chroma -> ``(T, 1 + S)`` scores; column 0 is N, column 1 + s is ``_STATES[s]``."""
    unit = treble / np.maximum(np.linalg.norm(treble, axis=0, keepdims=True), 1e-9)
    cosine = _TEMPLATES @ unit  # (S, T)
    bass_share = bass / np.maximum(bass.max(axis=0, keepdims=True), 1e-9)
    roots = np.array([s[0] for s in _STATES])
    basses = np.array([s[2] for s in _STATES])
    chord = cosine + params.bass_weight * bass_share[basses] - params.inversion_penalty * (basses != roots)[:, None]
    # N wins only in quiet frames: 1.5 beats any chord's best score (1 + bass_weight).
    quiet = 1.0 / (1.0 + np.exp((level_db + params.silence_db) / 2.0))
    no_chord = (1.0 + params.bass_weight + 0.5) * quiet
    return np.concatenate([no_chord[None], chord], axis=0).T


def decode(scores: np.ndarray, switch_penalty: float) -> np.ndarray:
    """``(T, 1 + S)`` scores -> best state path ``(T,)`` with a penalty per chord change."""
    n_states = scores.shape[1]
    # Choose the HMM's self-transition so that switching costs exactly switch_penalty.
    ratio = np.exp(_VITERBI_SCALE * switch_penalty) / (n_states - 1)
    return viterbi(_VITERBI_SCALE * scores, float(ratio / (1.0 + ratio)))


def transcribe(audio: np.ndarray, sample_rate: int, params: Optional[BaselineParams] = None) -> List[Segment]:
    """Mono (or ``(n, channels)``) float audio -> segments ``(start, end, Harte label)``
    covering the whole recording; boundaries fall halfway between frames."""
    params = params or BaselineParams()
    audio = resample(mono_samples(audio), sample_rate, SAMPLE_RATE)
    path = decode(state_scores(*chroma_features(audio), params), params.switch_penalty)

    def label(first: int, stop: int) -> str:
        state = int(path[first])
        return "N" if state == 0 else format_label(*_STATES[state - 1])

    return path_segments(path, SAMPLE_RATE / HOP, len(audio) / SAMPLE_RATE, label)


# --------------------------------------------------------------------------- command line


@dataclass
class BaselineArgs:
    input: str = "???"
    output: str = "???"
    switch_penalty: float = BaselineParams.switch_penalty
    bass_weight: float = BaselineParams.bass_weight
    inversion_penalty: float = BaselineParams.inversion_penalty
    silence_db: float = BaselineParams.silence_db


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(BaselineArgs, sys.argv[1:] if argv is None else argv)
    params = BaselineParams(args.switch_penalty, args.bass_weight, args.inversion_penalty, args.silence_db)
    if params.switch_penalty <= 0:
        raise UsageError(f"switch_penalty must be > 0, got {params.switch_penalty}")
    if not (math.isfinite(params.silence_db) and params.silence_db > 0):
        raise UsageError(
            f"silence_db={params.silence_db} must be a finite number of dB > 0 (frames that far below the loud "
            f"ones may be N), as predict's"
        )
    input_path, output = Path(args.input), Path(args.output)
    files = find_audio_files(input_path)
    make_output_folder(output)
    failures = 0
    for path, target in plan_transcriptions(files, input_path, output):  # predict's naming rule and refusals
        try:
            audio, rate = read_audio(path)
        except AudioError as error:
            print(f"error: {error}", file=sys.stderr)
            failures += 1
            continue
        segments = transcribe(audio, rate, params)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_lab(target, segments, comment=prediction_comment(path, " (baseline)"))
        print(f"{path} -> {target} ({len(segments)} segments)")
    if failures:
        raise UsageError(f"{failures} of {len(files)} file(s) could not be transcribed (see above)")
    return 0


def cli() -> None:
    """``chordexp-baseline`` and ``python -m chordexp.baseline``: :func:`main` under ``main_guard``
    (``--help``, one-line errors)."""
    main_guard(main, USAGE)


if __name__ == "__main__":
    cli()
