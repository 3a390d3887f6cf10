"""What a production does to a band's mix: room reverb, EQ, band limits, bus
compression, noise and a master level.

One home for the mix/master DSP the song renderers share (``chordexp.data.songs``
masters every song with :func:`master`); all randomness comes from the generator passed in.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pedalboard as pb

from chordexp.data.room import room_response, room_sound
from chordexp.data.soundfont import fft_size, tilt


def master(rng: np.random.Generator, mix: np.ndarray, sr: int, reverb_noise: np.ndarray) -> np.ndarray:
    """What a production adds: room reverb, EQ, band limits (as lossy codecs and small
    speakers do), bus compression, a little noise; then a random level."""
    out = mix.astype(np.float32)
    n = len(out)
    if rng.random() < 0.6:
        rt60 = rng.uniform(0.3, 2.0)
        length = min(int(rt60 * sr), n, len(reverb_noise))
        response = room_response(reverb_noise[:length], rt60, sr)  # how it differs from a clip's: chordexp.data.room
        wet = room_sound(out, response, fft_size(n + length)).astype(np.float32)
        out = out + wet * np.float32(rng.uniform(0.1, 0.6) * _rms(out) / (_rms(wet) + 1e-12))
    if rng.random() < 0.6:
        out = tilt(out, sr, rng.uniform(-2.5, 2.5))
    if rng.random() < 0.5:
        out = band_limit(
            out,
            sr,
            low_hz=rng.uniform(30.0, 150.0) if rng.random() < 0.5 else None,
            high_hz=rng.uniform(3000.0, sr / 2) if rng.random() < 0.6 else None,
        )
    if rng.random() < 0.7:
        out = compress(out, sr, threshold_db=rng.uniform(-30.0, -12.0), ratio=rng.uniform(2.0, 8.0))
    if rng.random() < 0.5:
        out = out + rng.normal(0.0, _rms(out) * 10 ** (-rng.uniform(25.0, 50.0) / 20), n).astype(np.float32)
    out *= np.float32(10 ** (rng.uniform(-28.0, -10.0) / 20) / (_rms(out) + 1e-12))
    peak = float(np.abs(out).max(initial=0.0))
    if peak > 0.99:  # a limiter's job: soft-clip the peaks
        out = np.tanh(out / np.float32(peak / 1.2)).astype(np.float32) * np.float32(0.99 / math.tanh(1.2))
    return out.astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return math.sqrt(float(np.dot(x, x)) / max(len(x), 1))


def band_limit(audio: np.ndarray, sr: int, low_hz: Optional[float], high_hz: Optional[float]) -> np.ndarray:
    """High-pass below ``low_hz`` and low-pass above ``high_hz`` (smooth 2nd-order-like slopes)."""
    if low_hz is None and high_hz is None:
        return audio
    size = fft_size(len(audio))
    spectrum = np.fft.rfft(audio, size)
    freqs = np.fft.rfftfreq(size, 1.0 / sr)
    gain = np.ones_like(freqs)
    if low_hz is not None:
        gain *= 1.0 / (1.0 + (low_hz / np.maximum(freqs, 1e-3)) ** 4)
    if high_hz is not None:
        gain *= 1.0 / (1.0 + (freqs / high_hz) ** 8)
    return np.fft.irfft(spectrum * gain, n=size)[: len(audio)].astype(np.float32)


def compress(audio: np.ndarray, sr: int, threshold_db: float, ratio: float) -> np.ndarray:
    """A bus compressor: gain from a smoothed RMS envelope (10 ms hops), above the
    threshold reduced by ``ratio``, with make-up gain."""
    hop = max(1, int(0.01 * sr))
    frames = len(audio) // hop + 1
    padded = np.pad(audio, (0, frames * hop - len(audio)))
    level = np.sqrt(np.mean(padded.reshape(frames, hop) ** 2, axis=1) + 1e-12)
    kernel = np.ones(5) / 5
    level = np.convolve(level, kernel, mode="same")
    level_db = 20 * np.log10(level + 1e-12) - 20 * np.log10(np.max(level) + 1e-12)
    over = np.maximum(level_db - threshold_db, 0.0)
    gain_db = -over * (1.0 - 1.0 / ratio)
    gain = 10 ** (gain_db / 20)
    gain_samples = np.interp(np.arange(len(audio)), np.arange(frames) * hop + hop / 2, gain)
    return (audio * gain_samples).astype(np.float32)


# ------------------------------------------------------------ as recorded
def colour_instrument(rng: np.random.Generator, audio: np.ndarray, sr: int, family: str) -> np.ndarray:
    """An instrument as it is recorded, by family: guitars through an amp (clean, crunch
    or overdrive) and a cabinet's band-pass; organs through a rotary speaker (a chorus
    with a fast or slow rotor, a little drive); keys and pads with a phaser or chorus."""
    chain: list = []
    if family == "guitar":
        if rng.random() < 0.6:  # driven amp + 1x12/4x12 cabinet
            chain += [pb.Distortion(drive_db=float(rng.uniform(6.0, 32.0)))]
        else:
            chain += [pb.Compressor(threshold_db=float(rng.uniform(-30, -15)), ratio=float(rng.uniform(2, 6)))]
            if rng.random() < 0.4:
                chain += [pb.Chorus(rate_hz=float(rng.uniform(0.3, 2.0)), depth=float(rng.uniform(0.1, 0.4)))]
        chain += [
            pb.HighpassFilter(float(rng.uniform(70.0, 140.0))),
            pb.PeakFilter(float(rng.uniform(1200.0, 2800.0)), float(rng.uniform(2.0, 7.0)), 0.8),
            pb.LowpassFilter(float(rng.uniform(2800.0, min(6500.0, 0.45 * sr)))),
        ]
    elif family == "organ":
        fast = rng.random() < 0.5
        chain += [
            pb.Distortion(drive_db=float(rng.uniform(0.0, 12.0))),
            pb.Chorus(
                rate_hz=float(rng.uniform(5.5, 7.0) if fast else rng.uniform(0.6, 1.2)),
                depth=float(rng.uniform(0.2, 0.6)),
                centre_delay_ms=float(rng.uniform(1.0, 4.0)),
                mix=float(rng.uniform(0.4, 0.7)),
            ),
        ]
    elif rng.random() < 0.5:
        chain += [pb.Phaser(rate_hz=float(rng.uniform(0.2, 2.0)), depth=float(rng.uniform(0.3, 0.8)))]
    else:
        chain += [pb.Chorus(rate_hz=float(rng.uniform(0.3, 2.0)), depth=float(rng.uniform(0.1, 0.5)))]
    out = pb.Pedalboard(chain)(audio.astype(np.float32), sr)
    return _matched(out, audio)


def record_chain(rng: np.random.Generator, audio: np.ndarray, sr: int) -> np.ndarray:
    """A record's signal chain after the mix: tape saturation, bus compression, a room,
    band limits (4-20 kHz low-pass, a high-pass) and a loudness from a quiet 1960s master
    to a brick-walled modern one."""
    chain: list = []
    if rng.random() < 0.5:  # tape: soft saturation of the loud parts
        chain += [pb.Gain(float(rng.uniform(0.0, 8.0))), pb.Distortion(drive_db=float(rng.uniform(0.0, 8.0)))]
    if rng.random() < 0.6:
        chain += [
            pb.Compressor(
                threshold_db=float(rng.uniform(-30.0, -10.0)),
                ratio=float(rng.uniform(1.5, 6.0)),
                attack_ms=float(rng.uniform(3.0, 30.0)),
                release_ms=float(rng.uniform(50.0, 300.0)),
            )
        ]
    if rng.random() < 0.4:
        chain += [
            pb.Reverb(
                room_size=float(rng.uniform(0.2, 0.85)),
                damping=float(rng.uniform(0.2, 0.8)),
                wet_level=float(rng.uniform(0.05, 0.3)),
                dry_level=1.0,
            )
        ]
    if rng.random() < 0.6:
        chain += [pb.LowpassFilter(float(rng.uniform(4000.0, min(20000.0, 0.45 * sr))))]
    if rng.random() < 0.4:
        chain += [pb.HighpassFilter(float(rng.uniform(30.0, 150.0)))]
    out = pb.Pedalboard(chain)(audio.astype(np.float32), sr) if chain else audio.astype(np.float32)
    out = _matched(out, audio)
    if rng.random() < 0.4:  # a loud modern master: pushed into a brick-wall limiter
        drive = float(rng.uniform(6.0, 18.0))
        out = pb.Pedalboard([pb.Gain(drive), pb.Limiter(threshold_db=-1.0, release_ms=float(rng.uniform(30, 200)))])(
            out / np.float32(np.abs(out).max() + 1e-9), sr
        )
    return _level(rng, out)


CODEC_RATES = (16000, 22050, 24000, 32000, 44100)


def lossy_codec(rng: np.random.Generator, audio: np.ndarray, sr: int) -> np.ndarray:
    """An MP3 encode/decode at a random sample rate (16-44.1 kHz) and quality (VBR 2-9.5:
    from ~32 kbit/s at 16 kHz upward), back at ``sr``: band limits, smearing, pre-echo."""
    import soxr

    rate = int(rng.choice(CODEC_RATES))
    x = audio.astype(np.float32)
    peak = float(np.abs(x).max(initial=0.0))
    if peak > 0.99:
        x = x * np.float32(0.99 / peak)
    y = soxr.resample(x, sr, rate) if rate != sr else x
    y = pb.MP3Compressor(vbr_quality=float(rng.uniform(2.0, 9.5)))(y.astype(np.float32), rate)
    y = soxr.resample(y, rate, sr) if rate != sr else y
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    if len(y) >= len(x):
        return y[: len(x)]
    return np.pad(y, (0, len(x) - len(y)))


def _matched(out: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``out`` (pedalboard's, possibly (1, n)) as mono float32 at ``reference``'s RMS."""
    out = np.asarray(out, dtype=np.float32).reshape(-1)[: len(reference)]
    return out * np.float32((_rms(reference) + 1e-12) / (_rms(out) + 1e-12))


def _level(rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
    out = np.asarray(out, dtype=np.float32).reshape(-1)
    out = out * np.float32(10 ** (rng.uniform(-26.0, -8.0) / 20) / (_rms(out) + 1e-12))
    peak = float(np.abs(out).max(initial=0.0))
    if peak > 0.99:
        out = out * np.float32(0.99 / peak)
    return out
