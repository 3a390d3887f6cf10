"""Log-frequency (constant-Q style) spectrogram computed in torch.

A chord is a set of pitch classes, so the model wants frequency on a log axis with
a few bins per semitone, as crema, BTC and madmom use. The audio is first low-passed
and decimated (nothing above the top filter is used), then one STFT with a window
long enough to separate semitones in the bass (~0.37 s) is mapped onto log-spaced
triangular filters (``bins_per_octave`` per octave from ``fmin``). Decimating first
makes the FFTs 8x shorter at 44.1 kHz; it is a proper anti-alias FIR computed blockwise
(``chordexp.model.multirate``), so its cost grows linearly with the length of a song.
It is plain tensor code, so it runs on CPU and GPU alike and inside the model.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
from torch import Tensor, nn

from chordexp.errors import ConfigValueError
from chordexp.model.multirate import Decimator

#: the decimation filter stays flat this far above the top filter: a recording's tuning
#: (``tuned``, at most half a semitone) moves the filters up to there
TUNING_MARGIN = 2.0 ** (1 / 24)

#: The front end's defaults, the model's too: six octaves from C1 at a third of a semitone.
SAMPLE_RATE = 44100
FMIN_HZ = 32.70
N_OCTAVES = 6
BINS_PER_OCTAVE = 36


def log_frequency_filterbank(
    sample_rate: float, n_fft: int, fmin: float, n_octaves: int, bins_per_octave: int
) -> Tensor:
    """Triangular filters on a log-frequency grid, shape ``(n_fft // 2 + 1, n_bins)``.

    Filter k is centred on ``fmin * 2 ** (k / bins_per_octave)``, peaks at 1 and spans
    its two neighbours, so a pure tone gives about the same value at any pitch (as a
    constant-Q transform does); where that is narrower than the STFT's bin spacing (the
    lowest notes) the width is widened to one STFT bin so every filter sees energy.
    """
    n_bins = n_octaves * bins_per_octave
    centres = fmin * 2.0 ** (torch.arange(-1, n_bins + 1, dtype=torch.float64) / bins_per_octave)
    fft_freqs = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    bin_hz = sample_rate / n_fft
    lower, centre, upper = centres[:-2], centres[1:-1], centres[2:]
    left = torch.maximum(centre - lower, torch.full_like(centre, bin_hz))
    right = torch.maximum(upper - centre, torch.full_like(centre, bin_hz))
    f = fft_freqs[:, None]
    rising = (f - (centre - left)) / left
    falling = ((centre + right) - f) / right
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def decimation_factor(sample_rate: int, fmax: float) -> int:
    """Largest power of two that keeps ``fmax`` well inside the decimated band."""
    factor = 1
    while sample_rate / (factor * 2) > 2.3 * fmax:
        factor *= 2
    return factor


class LogFrequencySpectrogram(nn.Module):
    """Raw audio ``(B, num_samples)`` -> log-magnitude ``(B, n_bins, frames)``.

    Magnitudes are divided by the local loudness (RMS of the spectrum averaged over
    ``norm_seconds`` around each frame), so gain does not change the picture and a
    quiet verse of a song looks like the 1-second training clips; then compressed with
    ``log1p(compression * mag)``.
    """

    filterbank: Tensor  # buffers, registered in __init__
    window: Tensor

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        fmin: float = FMIN_HZ,
        n_octaves: int = N_OCTAVES,
        bins_per_octave: int = BINS_PER_OCTAVE,
        window_seconds: float = 0.37,
        frames_per_second: float = 10.77,
        compression: float = 10.0,
        norm_seconds: float = 1.0,
    ) -> None:
        super().__init__()
        if sample_rate <= 0 or fmin <= 0 or n_octaves <= 0 or bins_per_octave <= 0:
            raise ConfigValueError("sample_rate, fmin, n_octaves and bins_per_octave must be positive")
        fmax = fmin * 2.0**n_octaves
        if fmax >= sample_rate / 2:
            raise ConfigValueError(
                f"fmin * 2**n_octaves = {fmax:.0f} Hz must stay below Nyquist ({sample_rate / 2:.0f} Hz)"
            )
        self.sample_rate = sample_rate
        top = fmax * 2 ** (1 / bins_per_octave)  # the top filter's upper edge
        self.decimation = decimation_factor(sample_rate, top)
        self.decimator = Decimator(self.decimation, sample_rate, top * TUNING_MARGIN)
        inner_rate = sample_rate / self.decimation
        self.n_fft = 2 ** math.ceil(math.log2(inner_rate * window_seconds))
        self.inner_hop = max(1, round(inner_rate / frames_per_second))
        self.hop_length = self.inner_hop * self.decimation  # in input samples
        self.n_bins = n_octaves * bins_per_octave
        self.compression = compression
        self.norm_frames = 2 * int(norm_seconds * self.frame_rate / 2) + 1
        self.fmin, self.n_octaves, self.bins_per_octave = fmin, n_octaves, bins_per_octave
        self.register_buffer("filterbank", self._filterbank(0.0), persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def _filterbank(self, cents: float) -> Tensor:
        """The filters on a grid ``cents`` off A440, cropped above the top filter."""
        inner_rate = self.sample_rate / self.decimation
        fmin = self.fmin * 2.0 ** (cents / 1200.0)
        bank = log_frequency_filterbank(inner_rate, self.n_fft, fmin, self.n_octaves, self.bins_per_octave)
        used = int(torch.nonzero(bank.sum(dim=1)).max()) + 1  # skip FFT bins above fmax
        return bank[:used].contiguous()

    @contextlib.contextmanager
    def tuned(self, cents: float) -> Iterator[None]:
        """Within the block, the filters sit ``cents`` off A440 (a recording's tuning:
        its notes land on the bins an in-tune one would); restored afterwards."""
        if not cents:  # in tune: the filters the model was built with
            yield
            return
        original = self.filterbank
        self.filterbank = self._filterbank(float(cents)).to(original.device)
        try:
            yield
        finally:
            self.filterbank = original

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def local_level(self, mag: Tensor) -> Tensor:
        """``(B, F, T)`` magnitudes -> ``(B, 1, T)`` RMS level averaged over nearby frames."""
        energy = mag.pow(2).mean(dim=1, keepdim=True)
        smooth = nn.functional.avg_pool1d(
            energy, self.norm_frames, stride=1, padding=self.norm_frames // 2, count_include_pad=False
        )
        return smooth.sqrt().clamp_min(1e-5)

    def num_frames(self, num_samples: int) -> int:
        return self._decimated_length(num_samples) // self.inner_hop + 1

    def _decimated_length(self, num_samples: int) -> int:
        return (num_samples - 1) // self.decimation + 1

    def decimate(self, audio: Tensor) -> Tensor:
        """``(B, n)`` -> ``(B, ceil(n / decimation))``: an 80 dB anti-alias FIR, flat up to
        the top filter (plus the tuning margin), then one sample in ``decimation``.

        Until this release it was one FFT of the whole signal cropped to the new band (an
        ideal circular low-pass): the same band, so the outputs agree (correlation > 0.999,
        tests/model/test_frontend_multirate.py) and older checkpoints keep working, but
        that one long FFT cost ~0.2 s per 3-minute 44.1 kHz song on one core, 5-9x this.
        """
        return self.decimator(audio)

    def forward(self, audio: Tensor) -> Tensor:
        audio = self.decimate(audio.float())
        spec = torch.stft(
            audio,
            self.n_fft,
            self.inner_hop,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )  # (B, n_fft // 2 + 1, frames)
        used = self.filterbank.shape[0]
        mag = spec[:, :used].abs()
        # the level is one number per frame: dividing after the filters is the same, on 216 bins not 778
        logf = torch.einsum("bft,fk->bkt", mag, self.filterbank) / self.local_level(mag)
        return torch.log1p(self.compression * logf)
