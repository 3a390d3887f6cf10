"""The front end's blockwise anti-alias decimation (``chordexp.model.multirate``) keeps
the transform the models were trained with: it is a true FIR decimation (the same
numbers as a direct convolution), it stops what would alias, and the front end's output
agrees with the earlier whole-signal FFT decimation (correlation >= 0.999)."""

import math

import pytest
import torch
from torch.nn import functional as F

from chordexp.bench.audio import rendered_audio
from chordexp.model.frontend import LogFrequencySpectrogram
from chordexp.model.multirate import Decimator, fft_decimate, kaiser_lowpass


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])


@pytest.mark.parametrize("length", [1000, 44100, 100_003])
def test_blockwise_decimation_equals_a_direct_fir_convolution(length):
    torch.manual_seed(0)
    x = torch.randn(2, length)
    decimator = Decimator(8, 44100, 2200.0)
    h = kaiser_lowpass(8, 44100, 2200.0).float()
    direct = F.conv1d(F.pad(x, (decimator.half_taps, decimator.half_taps))[:, None], h.flip(0)[None, None], stride=8)[
        :, 0
    ]
    out = decimator(x)
    assert out.shape == (2, (length - 1) // 8 + 1)
    torch.testing.assert_close(out, direct, atol=1e-4, rtol=0)  # cropping drops the -80 dB stop band's aliases


def test_the_passband_is_flat_and_what_would_alias_is_stopped():
    sr, seconds = 44100, 2.0
    t = torch.arange(int(sr * seconds)) / sr
    decimator = Decimator(8, sr, 2200.0)
    inner = slice(200, -200)  # away from the edges
    for freq, low, high in ((440.0, 0.999, 1.001), (2150.0, 0.999, 1.001), (3500.0, 0.0, 1e-3), (9000.0, 0.0, 1e-3)):
        out = decimator(torch.sin(2 * math.pi * freq * t)[None])[0, inner]
        gain = float(out.pow(2).mean().sqrt() * math.sqrt(2))
        assert low <= gain <= high, (freq, gain)


@pytest.mark.parametrize("sample_rate, seconds, batch", [(44100, 1, 8), (22050, 15, 1), (44100, 30, 1)])
def test_the_front_end_agrees_with_its_earlier_fft_decimation(sample_rate, seconds, batch):
    fe = LogFrequencySpectrogram(sample_rate=sample_rate)
    audio = torch.from_numpy(rendered_audio(seconds * batch, sample_rate)).reshape(batch, -1)
    new = fe(audio)
    old_decimate = fe.decimate
    fe.decimate = lambda x: fft_decimate(x, fe.decimation)  # type: ignore[method-assign]
    try:
        old = fe(audio)
    finally:
        fe.decimate = old_decimate  # type: ignore[method-assign]
    assert new.shape == old.shape
    assert correlation(new, old) >= 0.999
