"""Audio files in, ``.lab`` files out: a recogniser over a file or a folder.

Names, refusals and the first-line mark are ``chordexp.output_dirs``' and
``chordexp.labfile``'s (the rule is in ``python -m chordexp.predict --help``); reading
and the model run ahead in worker processes (``chordexp.inference.prefetch``).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Union, cast

import numpy as np
from tqdm import tqdm

from chordexp.atomic import atomic_write_bytes
from chordexp.audio import AudioError
from chordexp.audio_names import find_audio_files
from chordexp.decode import Segment
from chordexp.inference.prefetch import decoded_files
from chordexp.inference.recognizer import Analysis, ChordRecognizer, Transcription
from chordexp.inference.streaming import CHUNK_SECONDS, STREAM_SECONDS, StreamedAudio, should_stream
from chordexp.labfile import write_lab
from chordexp.output_dirs import make_output_folder, plan_transcriptions, prediction_comment


def transcribe_files(
    recognizer: ChordRecognizer,
    input_path: Path,
    output: Path,
    probabilities: bool = False,
    progress: bool = True,
    echo=print,
    workers: Optional[int] = None,
    stream_seconds: Optional[float] = STREAM_SECONDS,
    chunk_seconds: float = CHUNK_SECONDS,
) -> int:
    """Transcribe every audio file under ``input_path`` into ``output`` (keeping the
    folder structure); returns how many files could not be read (one line each).
    ``workers`` processes decode, resample and (a torch model on the CPU) run the model
    on the next files while this one decodes chords and writes (None: one per core,
    none for a single file; 0: all here); the files are written in the same order and
    with the same contents either way. Files longer than ``stream_seconds`` (None:
    none) are streamed here, ``chunk_seconds`` of audio through the model at a time, in
    bounded memory (``chordexp.inference.streaming``), while the workers go on with the
    others."""
    files = find_audio_files(input_path)
    make_output_folder(output)
    # names by the rule of the module docstring; every target checked before anything is written
    planned = plan_transcriptions(files, input_path, output, (".probs.npz",) if probabilities else ())
    failures = 0
    bar = tqdm(planned, unit="file", disable=not progress or not sys.stderr.isatty())
    # the model runs in the (forked) workers only for torch on the CPU: CUDA and other
    # runtimes' thread pools do not survive a fork
    in_workers = type(recognizer) is ChordRecognizer and str(recognizer.device) == "cpu"
    # long files are read in blocks here, never whole in a worker
    streamed = [should_stream(path, recognizer, stream_seconds) for path, _ in planned]
    whole = [path for (path, _), stream in zip(planned, streamed) if not stream]
    decoded = iter(
        decoded_files(whole, recognizer.sample_rate, workers, analyse=_Analyser(recognizer) if in_workers else None)
        if whole
        else ()
    )
    for (path, target), stream in zip(bar, streamed):
        bar.set_postfix_str(path.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            audio: Union[np.ndarray, StreamedAudio]
            if stream:
                analysis: Optional[Analysis]
                analysis, audio = recognizer.analyse_stream(path, chunk_seconds)
            else:
                item = next(decoded)[1]
                if isinstance(item, AudioError):  # could not be read or resampled (in a worker)
                    raise item
                audio, analysis = item
            if analysis is None:
                assert isinstance(audio, np.ndarray)
                transcription = recognizer.transcribe(audio, recognizer.sample_rate)
            else:
                transcription = recognizer.decode(analysis)
            segments = checked_segments(path, audio, transcription, recognizer.sample_rate)
        except AudioError as error:
            if len(files) == 1:
                raise
            print(f"error: {error}", file=sys.stderr)
            failures += 1
            continue
        write_lab(target, segments, comment=prediction_comment(path))
        if probabilities:
            write_probabilities(target.with_name(target.name[: -len(".lab")] + ".probs.npz"), transcription)
        if bar.disable:
            echo(f"{path} -> {target} ({len(transcription.segments)} segments)")
    return failures


class _Analyser:
    """``recognizer.analyse`` at the model's rate, as a picklable callable for workers."""

    def __init__(self, recognizer: ChordRecognizer) -> None:
        self.recognizer = recognizer

    def __call__(self, audio: np.ndarray) -> Analysis:
        return self.recognizer.analyse(audio, self.recognizer.sample_rate)


def checked_segments(
    path: Path, audio: Union[np.ndarray, StreamedAudio], transcription: Transcription, sample_rate: int
) -> List[Segment]:
    """The segments to write for ``path``; AudioError (naming the file) where the model's
    output is not finite (NaN weights, samples far outside [-1, 1]) instead of an all-N
    transcription, or where the audio is too short to give one interval of a millisecond.
    ``audio``: the samples at ``sample_rate``, or what streaming kept of them."""
    if not all(np.isfinite(p).all() for p in transcription.probabilities.values()):
        if isinstance(audio, StreamedAudio):
            peak = audio.peak
        else:
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        cause = (
            f"its samples reach {peak:.3g}, far outside [-1, 1]"
            if peak > 1e3 or not np.isfinite(peak)
            else "the checkpoint's weights may be NaN or inf"
        )
        raise AudioError(f"{path}: the model's output is not finite (NaN or inf): {cause}; nothing written for it")
    # a .lab holds milliseconds: intervals that round to nothing are dropped (the others still meet)
    segments = [s for s in transcription.segments if round(s[1], 3) > round(s[0], 3)]
    if not segments:
        raise AudioError(
            f"{path}: too short to transcribe ({audio.size} sample(s) at {sample_rate} Hz): a .lab "
            f"interval needs at least a millisecond; nothing written for it"
        )
    return segments


def write_probabilities(path: Path, transcription: Transcription) -> None:
    """Per-frame posteriors next to the .lab (``NAME.probs.npz``: times + three heads),
    written atomically like the .lab: a kill or a full disk never leaves half a file."""
    buffer = io.BytesIO()
    # Any: numpy's stub would match a key of the unpacked dict to allow_pickle (a bool)
    np.savez_compressed(buffer, times=transcription.frame_times, **cast(Dict[str, Any], transcription.probabilities))
    atomic_write_bytes(path, buffer.getvalue())
