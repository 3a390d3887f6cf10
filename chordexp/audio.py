"""Reading audio files: any format libsndfile reads, mixed to mono, resampled.

soundfile (libsndfile) decodes wav, flac, ogg, mp3 and more; soxr does the
sample-rate conversion (a proper band-limited resampler, not interpolation).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np

from chordexp.errors import UserError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".w64", ".opus")


class AudioError(UserError, ValueError):
    """A file that cannot be used as audio; the message names the file and the reason."""


def is_audio_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES


def find_audio_files(path: str | Path) -> List[Path]:
    """A file, or every audio file under a folder (recursively, sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise AudioError(f"{path}: no such file or folder")
    files = sorted(p for p in path.rglob("*") if is_audio_file(p))
    if not files:
        raise AudioError(f"{path}: the folder holds no audio files")
    return files


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
