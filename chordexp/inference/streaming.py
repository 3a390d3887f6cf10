"""Long recordings through the model in windows, so a long file costs time, not memory.

``ChordRecognizer.analyse`` holds the whole recording: its samples, its resampled
copy, and the front end's and the convolutions' tensors over every frame (a 2-hour
WAV took 3.4 GB). :func:`stream_analysis` reads the file in blocks, resamples them with
soxr's streaming resampler, and runs the model on overlapping chunks of about
``chunk_seconds``, keeping of each chunk only the frames whose posteriors are those of
the whole-file computation; what it keeps per frame (three heads' log-posteriors and
a level: 57 numbers, ~11 frames a second) is all that grows with the length.

Which frames a chunk may keep. Over a long input ``forward_frames`` encodes attention
windows of ``W`` frames starting at every multiple of ``h = W // 2`` (plus one window
ending at the last frame) and averages the windows over each frame. A frame's value
before the encoder depends on its neighbours up to ``E`` frames away (the front end's
STFT and loudness normalisation, the convolutions: :func:`context_frames`). A chunk
starts on a multiple of ``h``, so its windows are the whole computation's; it keeps
the frames that no window touching its first or last ``E`` frames covers (nor its own
last window, which the whole computation does not have): everything but about ``W``
frames at each end (15 s each for the packaged model), which the neighbouring chunks
keep. The first chunk keeps from the first frame, the last (at least ``W`` frames
longer than anything it shares) to the last one. So the posteriors are the whole-file
ones up to float rounding (the FFTs and matrix products run over other lengths);
tests/test_streaming.py bounds the difference.

Tuning (``estimate_tuning``) must be known before the model runs: a first pass over
the file feeds ``chordexp.tuning_estimate.StreamedTuning`` (the same frames and votes, so the
same estimate, when the header's frame count is right). The silence gate needs the
loudest frame: the levels are kept per frame and compared at the end.

Files are streamed when longer than ``stream_seconds`` (or when their decoded samples
would pass what such a file's take); shorter ones keep the whole-file path, so their
results are unchanged bit for bit. Exported models (``chordexp.inference.backends``)
always take the whole-file path: their graphs do not say how wide their attention
windows are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
from torch import nn

from chordexp.audio import READ_BLOCK_FRAMES, audio_info, resampled_blocks, resampled_length
from chordexp.tuning_estimate import StreamedTuning, trusted_shift

#: Files longer than this stream (shorter ones: the whole-file path, unchanged results).
STREAM_SECONDS = 600.0
#: About this much audio goes through the model at a time when streaming; each chunk
#: also recomputes about two attention windows (30 s for the packaged model) it shares.
#: 150 s keeps a 2-hour file within a 3-minute song's memory (510 against 481 MB) and was
#: no slower than 300 s (697 MB) in the bench.
CHUNK_SECONDS = 150.0
#: A file whose decoded samples (all channels) pass this many also streams, however
#: short: ten minutes of 48 kHz stereo.
STREAM_DECODED_SAMPLES = int(STREAM_SECONDS * 48000 * 2)


@dataclass(frozen=True)
class Geometry:
    """How a recogniser's frames depend on each other (see the module docstring)."""

    hop_length: int  # samples per frame at the model's rate
    window: int  # W: attention window, frames
    hop: int  # h: the windows' hop, frames
    context: int  # E: frames either side a frame's pre-attention value depends on

    @property
    def keep_from(self) -> int:
        """First frame a chunk (other than the first) keeps: past every window that
        starts within ``context`` frames of its start; a multiple of ``hop``."""
        q = -(-self.context // self.hop) - 1
        return q * self.hop + -(-self.window // self.hop) * self.hop

    def keep_until(self, chunk_frames: int) -> int:
        """Frames a chunk of ``chunk_frames`` (other than the last) keeps up to: before
        every window that ends within ``context`` frames of its end and its own last
        window (unaligned to the whole computation's)."""
        last = chunk_frames - self.window  # its last window's start
        first_affected = ((last - self.context) // self.hop + 1) * self.hop
        return min(last, first_affected)

    def chunk_frames(self, seconds: float, frame_rate: float) -> int:
        """Hops of ``hop_length`` samples per chunk for about ``seconds`` of audio (the
        chunk has one frame more): its last window starts on a multiple of ``hop`` (no
        frame lost) and it keeps at least ``hop`` frames."""
        fewest = self.keep_from + self.window + self.hop + 2 * self.context
        wanted = max(int(round(seconds * frame_rate)), fewest)
        steps = -(-(wanted - self.window) // self.hop)
        return steps * self.hop + self.window - 1


def context_frames(model: nn.Module) -> int:
    """E: how many frames either side of a frame its value before the attention
    depends on, for a ``ChordRecognitionModel``: the front end's STFT half-window,
    loudness average and decimation filter, plus every time-axis convolution."""
    fe: Any = getattr(model, "frontend")
    frames = fe.norm_frames // 2 + math.ceil(fe.n_fft / 2 / fe.inner_hop)
    frames += math.ceil(getattr(fe.decimator, "half_taps", 0) / fe.hop_length) + 1
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            kernel, dilation = module.kernel_size[-1], module.dilation[-1]
            frames += dilation * (kernel - 1) // 2
    return frames + 1  # one frame to spare


def geometry(recognizer: Any) -> Optional[Geometry]:
    """The recogniser's ``Geometry``, or None where it cannot stream (an exported graph)."""
    model = getattr(recognizer, "model", None)
    window = getattr(model, "context_frames", None)
    if model is None or not window or not hasattr(model, "frontend"):
        return None
    window = int(window)
    return Geometry(int(recognizer.hop_length), window, max(1, window // 2), context_frames(model))


def should_stream(path: str | Path, recognizer: Any, stream_seconds: Optional[float] = STREAM_SECONDS) -> bool:
    """Whether ``predict`` streams ``path``: a recogniser that can, and a file longer
    than ``stream_seconds`` (None: never) or with more decoded samples than
    ``STREAM_DECODED_SAMPLES`` (scaled likewise). Unreadable headers: no (the whole-file
    reader says what is wrong)."""
    if stream_seconds is None or geometry(recognizer) is None:
        return False
    info = audio_info(path)
    if info is None:
        return False
    frames, rate, channels = info
    if rate <= 0:
        return False
    decoded_limit = STREAM_DECODED_SAMPLES * stream_seconds / STREAM_SECONDS
    return frames / rate > stream_seconds or frames * channels > decoded_limit


@dataclass
class StreamedAudio:
    """What ``predict`` needs to know of a streamed recording's samples at the model's
    rate (``chordexp.inference.transcribe.checked_segments``)."""

    size: int
    peak: float


@dataclass
class Streamed:
    """What ``stream_analysis`` makes of a file: ``chordexp.inference.recognizer.Analysis``'s
    fields and the ``StreamedAudio``."""

    log_posteriors: Dict[str, np.ndarray]
    duration: float
    silent: Optional[np.ndarray]
    tuning_cents: float
    audio: StreamedAudio


def stream_analysis(
    recognizer: Any,
    path: str | Path,
    chunk_seconds: float = CHUNK_SECONDS,
    block_frames: int = READ_BLOCK_FRAMES,
) -> Streamed:
    """``recognizer.analyse(load_audio(path))`` in bounded memory (module docstring), for
    a ``ChordRecognizer`` (its ``analyse_stream``); AudioError as the whole-file reader
    gives it."""
    shape = geometry(recognizer)
    if shape is None:
        raise ValueError(f"{type(recognizer).__name__} cannot stream: its attention windows are unknown")
    rate = recognizer.sample_rate
    cents = 0.0
    if recognizer.estimate_tuning:
        info = audio_info(path)
        expected = resampled_length(info[0], info[1], rate) if info else 0
        tuning = StreamedTuning(expected, rate)
        for block in resampled_blocks(path, rate, block_frames):
            tuning.add(block)
        cents = trusted_shift(tuning.result())
    chunk = shape.chunk_frames(chunk_seconds, recognizer.frame_rate)
    heads: Dict[str, List[np.ndarray]] = {}
    levels: List[np.ndarray] = []
    total, peak = 0, 0.0
    for audio, first, keep, stop in _chunks(resampled_blocks(path, rate, block_frames), shape, chunk):
        logp = recognizer.posteriors(audio, cents)
        stop = len(logp["root"]) if stop is None else stop
        for name, values in logp.items():
            heads.setdefault(name, []).append(values[keep:stop])
        levels.append(chunk_levels_db(audio, shape.hop_length, keep, stop))
        total = first * shape.hop_length + audio.size
        peak = max(peak, float(np.max(np.abs(audio))) if audio.size else 0.0)
    log_posteriors = {name: np.concatenate(parts) for name, parts in heads.items()}
    silent = None
    if recognizer.silence_db is not None:
        level = np.concatenate(levels)
        silent = level < level.max() - recognizer.silence_db
    return Streamed(log_posteriors, total / rate, silent, cents, StreamedAudio(total, peak))


def _chunks(blocks: Iterator[np.ndarray], shape: Geometry, chunk: int):
    """``(samples, first frame, keep from, keep until or None for all)`` per chunk of
    ``chunk`` frames (``chunk * hop_length`` samples) from consecutive sample blocks;
    the last chunk (``None``) runs to the end and is at least a window longer than what
    it shares with the chunk before it."""
    hop_length = shape.hop_length
    chunk_samples = chunk * hop_length
    lookahead = (shape.keep_from + shape.window + 2) * hop_length  # the last chunk's least length
    keep_until = shape.keep_until(chunk + 1)  # a chunk of chunk_samples has chunk + 1 frames
    step = keep_until - shape.keep_from  # frames from one chunk's start to the next's
    held: List[np.ndarray] = []
    held_size = 0
    first_frame = 0
    for block in blocks:
        held.append(block)
        held_size += block.size
        while held_size >= chunk_samples + lookahead:
            audio = np.concatenate(held)
            yield audio[:chunk_samples], first_frame, 0 if first_frame == 0 else shape.keep_from, keep_until
            rest = audio[step * hop_length :]
            held, held_size = [rest], rest.size
            first_frame += step
    if held_size:
        yield np.concatenate(held), first_frame, 0 if first_frame == 0 else shape.keep_from, None


def chunk_levels_db(audio: np.ndarray, hop: int, first: int, stop: int) -> np.ndarray:
    """``frame_levels_db`` of frames ``first .. stop`` of a chunk (samples ``audio``
    from its frame 0's centre on; zeros before and past them, as there)."""
    padded = np.zeros((stop - first) * hop, dtype=np.float32)
    lo, hi = first * hop - hop // 2, stop * hop - hop // 2
    a, b = max(lo, 0), min(hi, audio.size)
    if b > a:
        padded[a - lo : b - lo] = audio[a:b]
    frames = padded.reshape(stop - first, hop)
    return 10.0 * np.log10(np.einsum("ij,ij->i", frames, frames).astype(np.float64) / hop + 1e-12)
