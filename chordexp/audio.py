"""Reading audio files: any format libsndfile reads, mixed to mono, resampled.

soundfile (libsndfile) decodes wav, flac, ogg, mp3 and more; soxr does the
sample-rate conversion (a proper band-limited resampler, not interpolation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np

from chordexp.audio_files import AudioError

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
