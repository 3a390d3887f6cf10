"""The log-frequency front end puts tones where music theory says they are."""

import math

import pytest
import torch

from chordexp.model.frontend import LogFrequencySpectrogram, log_frequency_filterbank

SR = 44100


def tone(freq: float, seconds: float = 1.0, sr: int = SR) -> torch.Tensor:
    t = torch.arange(int(sr * seconds)) / sr
    return 0.3 * torch.sin(2 * math.pi * freq * t)


@pytest.mark.parametrize("midi", [28, 40, 45, 57, 69, 81, 95])
def test_pure_tone_peaks_at_its_pitch_bin(midi):
    fe = LogFrequencySpectrogram(sample_rate=SR)
    freq = 440.0 * 2 ** ((midi - 69) / 12)
    spectrum = fe(tone(freq)[None]).mean(dim=-1)[0]
    expected_bin = round(36 * math.log2(freq / 32.70))
    assert abs(int(spectrum.argmax()) - expected_bin) <= 1


def test_output_shape_and_frame_rate():
    fe = LogFrequencySpectrogram(sample_rate=SR)
    out = fe(torch.randn(3, SR))
    assert out.shape == (3, 216, fe.num_frames(SR))
    assert 10.0 < fe.frame_rate < 11.5
    assert fe.decimation == 8


def test_loudness_does_not_change_the_representation():
    fe = LogFrequencySpectrogram(sample_rate=SR)
    x = tone(220.0) + tone(330.0)
    assert torch.allclose(fe(x[None]), fe(10 * x[None]), atol=1e-4)


@pytest.mark.parametrize("sr", [16000, 22050, 48000])
def test_other_sample_rates_keep_the_pitch_axis(sr):
    fe = LogFrequencySpectrogram(sample_rate=sr)
    spectrum = fe(tone(440.0, sr=sr)[None]).mean(dim=-1)[0]
    assert abs(int(spectrum.argmax()) - 135) <= 1


def test_filterbank_has_one_peak_per_filter():
    bank = log_frequency_filterbank(5512, 2048, 32.70, 6, 36)
    assert bank.shape == (1025, 216)
    assert torch.all(bank.max(dim=0).values > 0.4)


def test_top_filter_above_nyquist_is_rejected():
    with pytest.raises(ValueError, match="Nyquist"):
        LogFrequencySpectrogram(sample_rate=8000, n_octaves=7)
