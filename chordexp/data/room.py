"""A room: dry audio convolved with exponentially decaying noise (a synthetic impulse
response 60 dB down after RT60 seconds), by zero-padded FFTs.

Both generators use it, and each keeps its own draws around it, so neither one's audio
changed when they came to share it: a synthesised clip (``chordexp.data.clip_effects``)
takes RT60 0.2-1.5 s, its noise from a random offset into the fixed white-noise bank, a
power-of-two FFT and its wet level matched in float64; a song's master
(``chordexp.data.production``) takes RT60 0.3-2.0 s, fresh noise per song, a 5-smooth
FFT and its wet level matched in float32. Unifying those draws would change every
rendered clip and song.
"""

from __future__ import annotations

import numpy as np


def room_response(noise: np.ndarray, rt60: float, sample_rate: float) -> np.ndarray:
    """``noise`` (float32, the response's length) under an exponential decay that falls
    60 dB in ``rt60`` seconds: a room's impulse response."""
    t = np.arange(len(noise), dtype=np.float32) / np.float32(sample_rate)
    return noise * np.exp(np.float32(-6.91 / rt60) * t)


def room_sound(dry: np.ndarray, response: np.ndarray, fft_length: int) -> np.ndarray:
    """What the room adds (float64, ``dry``'s length): ``dry`` convolved with
    ``response`` through FFTs of ``fft_length`` >= their lengths' sum (no wrap-around)."""
    return np.fft.irfft(np.fft.rfft(dry, fft_length) * np.fft.rfft(response, fft_length), fft_length)[: len(dry)]
