"""Reading audio files: any format libsndfile reads, mixed to mono, resampled.

soundfile (libsndfile) decodes wav, flac, ogg, mp3 and more; soxr does the
sample-rate conversion (a proper band-limited resampler, not interpolation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional, Tuple

import numpy as np

from chordexp.audio_names import AudioError

#: The sample rates a dataset renders or cuts and a model or an export takes, in Hz.
SAMPLE_RATE_RANGE = (8000, 192000)
SAMPLE_RATE_RULE = f"an integer in {SAMPLE_RATE_RANGE[0]}..{SAMPLE_RATE_RANGE[1]} Hz"


def sample_rate_ok(value: object) -> bool:
    """``value`` is an integer sample rate in ``SAMPLE_RATE_RANGE``."""
    return (
        isinstance(value, (int, np.integer))
        and not isinstance(value, bool)
        and bool(SAMPLE_RATE_RANGE[0] <= value <= SAMPLE_RATE_RANGE[1])
    )


def read_audio(path: str | Path) -> Tuple[np.ndarray, int]:
    """File -> ``(samples, sample_rate)``, samples float32 mono ``(n,)``."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # libsndfile reports corrupt or unknown formats in many ways
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise AudioError(f"{path}: cannot decode audio ({reason})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    mono = data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise AudioError(f"{path}: the audio contains NaN or infinite samples")
    return mono, int(rate)


def mono_samples(audio: np.ndarray) -> np.ndarray:
    """Mono (or ``(n, channels)``) float audio -> float32 ``(n,)``, the shape every
    transcriber takes; AudioError for any other shape or no samples."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if audio.ndim != 1 or audio.size == 0:
        raise AudioError(f"audio must be a non-empty 1-D or (n, channels) array, got shape {audio.shape}")
    return audio


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling of a mono float signal (identity when the rates match)."""
    if rate_in == rate_out:
        return audio.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(audio, rate_in, rate_out, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """File -> float32 mono samples at ``sample_rate``."""
    audio, rate = read_audio(path)
    return resample(audio, rate, sample_rate)


#: Frames ``read_audio_blocks`` reads at a time (about 6 s at 44.1 kHz).
READ_BLOCK_FRAMES = 1 << 18


def audio_info(path: str | Path) -> Optional[Tuple[int, int, int]]:
    """``(frames, sample_rate, channels)`` of an audio file from its header, without
    decoding it; None where libsndfile cannot tell (the reader reports why)."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception:  # unreadable: read_audio gives the one-line reason
        return None
    return int(info.frames), int(info.samplerate), int(info.channels)


def resampled_length(frames: int, rate_in: int, rate_out: int) -> int:
    """How many samples ``resample`` (soxr) makes of ``frames`` samples:
    ``round(frames * rate_out / rate_in)``, halves up."""
    if rate_in == rate_out:
        return frames
    return (2 * frames * rate_out + rate_in) // (2 * rate_in)


def read_audio_blocks(path: str | Path, block_frames: int = READ_BLOCK_FRAMES) -> Iterator[Tuple[np.ndarray, int]]:
    """File -> ``(samples, sample_rate)`` blocks of at most ``block_frames`` float32 mono
    samples, in order: ``read_audio`` without holding the file (the same samples, the
    same AudioErrors, raised when the block that causes them is read)."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        handle = soundfile.SoundFile(str(path))
    except Exception as error:
        raise AudioError(f"{path}: cannot decode audio ({_first_line(error)})") from None
    with handle:
        rate = int(handle.samplerate)
        total = 0
        while True:
            try:
                data = handle.read(block_frames, dtype="float32", always_2d=True)
            except Exception as error:
                raise AudioError(f"{path}: cannot decode audio ({_first_line(error)})") from None
            if data.shape[0] == 0:
                break
            total += data.shape[0]
            mono = data.mean(axis=1, dtype=np.float32)
            if not np.isfinite(mono).all():
                raise AudioError(f"{path}: the audio contains NaN or infinite samples")
            yield mono, rate
    if total == 0:
        raise AudioError(f"{path}: the file holds no audio samples")


def resampled_blocks(path: str | Path, sample_rate: int, block_frames: int = READ_BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """``load_audio`` as float32 blocks: the file read ``block_frames`` at a time and
    resampled to ``sample_rate`` by soxr's streaming resampler (the same samples as
    ``resample`` of the whole file: soxr streams internally either way)."""
    stream = None
    previous: Optional[np.ndarray] = None
    for block, rate in read_audio_blocks(path, block_frames):
        if rate == sample_rate:
            yield block
            continue
        if stream is None:
            import soxr

            stream = soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality="HQ")
        # one block behind, so the last one can be flushed (``last=True``) with its samples
        if previous is not None:
            out = stream.resample_chunk(previous, last=False)
            if out.size:
                yield out
        previous = block
    if stream is not None and previous is not None:
        out = stream.resample_chunk(previous, last=True)
        if out.size:
            yield out


def _first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__
