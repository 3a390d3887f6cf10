"""The model as one traceable graph: audio samples at the model's rate in, frame logits out.

``ChordRecognitionModel.forward_frames`` picks its attention windows with a Python loop
over the number of frames and moves the front end's filters for a recording's tuning
by swapping a buffer; a traced or exported graph would freeze both at the length and
tuning it was traced with. :class:`PortableChordModel` computes the same numbers with
tensor operations only, so one exported file serves every length and tuning:

* the tuning offset (cents from A440) is an input; the filters are built from it in
  the graph, over every FFT bin, with the bins above the top filter masked out of the
  loudness normalisation (the front end crops them instead: same sums);
* the window starts are ``arange`` of the frame count, clamped to the last full
  window (the same starts ``_encode_windows`` lists), gathered, encoded in one batch
  and added back with ``scatter_add``;
* the decimator's blocks go through a real FFT, then one real matrix product (its
  filter response and inverse FFT): the ONNX exporter mistranslates ``irfft`` and
  complex products. Those matrices are most of a small model's file (~15 MB at 16 kHz,
  ~2 MB at 44.1 kHz).

Resampling and the tuning estimate stay outside (numpy/soxr in ``chordexp.inference.recognizer``).
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor, nn

from chordexp.model.chord_model import HEADS, ChordRecognitionModel

#: graph input and output names (ONNX) in order; outputs are ``(B, T, classes)`` logits
INPUT_NAMES = ("audio", "tuning_cents")
OUTPUT_NAMES = tuple(HEADS)


class PortableChordModel(nn.Module):
    """``(audio (B, N) float32, tuning_cents () float32)`` -> the three heads' frame
    logits, equal (to float rounding) to ``model.forward_frames`` with the front end
    tuned by ``tuning_cents``."""

    fft_freqs: Tensor  # buffers, registered in __init__
    octave_steps: Tensor
    low_real: Tensor
    low_imag: Tensor

    def __init__(self, model: ChordRecognitionModel) -> None:
        super().__init__()
        self.model = model.eval()
        fe = model.frontend
        inner_rate = fe.sample_rate / fe.decimation
        n_freqs = fe.n_fft // 2 + 1
        self.register_buffer(
            "fft_freqs", torch.linspace(0.0, inner_rate / 2, n_freqs, dtype=torch.float64), persistent=False
        )
        self.register_buffer(
            "octave_steps", torch.arange(-1, fe.n_bins + 1, dtype=torch.float64) / fe.bins_per_octave, persistent=False
        )
        self.bin_hz = inner_rate / fe.n_fft
        low_real, low_imag = decimation_matrices(fe.decimator)
        self.register_buffer("low_real", low_real, persistent=False)
        self.register_buffer("low_imag", low_imag, persistent=False)
        self.window = int(model.context_frames)
        self.hop = max(1, self.window // 2)

    def filterbank(self, cents: Tensor) -> Tuple[Tensor, Tensor]:
        """``log_frequency_filterbank`` moved by ``cents``, over all FFT bins ``(F, K)``,
        and the mask ``(F, 1)`` of the bins up to the top filter (the front end's crop)."""
        fe = self.model.frontend
        fmin = fe.fmin * torch.pow(2.0, cents.to(torch.float64) / 1200.0)
        centres = fmin * torch.pow(2.0, self.octave_steps)
        lower, centre, upper = centres[:-2], centres[1:-1], centres[2:]
        left = torch.clamp(centre - lower, min=self.bin_hz)
        right = torch.clamp(upper - centre, min=self.bin_hz)
        f = self.fft_freqs[:, None]
        rising = (f - (centre - left)) / left
        falling = ((centre + right) - f) / right
        bank = torch.clamp(torch.minimum(rising, falling), min=0.0).float()
        index = torch.arange(1, bank.shape[0] + 1, device=bank.device)
        used = torch.amax(index * (bank.sum(dim=1) > 0).to(index.dtype), dim=0)
        return bank, (index <= used).to(bank.dtype)[:, None]

    def spectrogram(self, audio: Tensor, cents: Tensor) -> Tensor:
        """``LogFrequencySpectrogram.forward`` with the filters of ``filterbank(cents)``."""
        fe = self.model.frontend
        audio = self.decimate(audio.float())
        spec = torch.stft(
            audio, fe.n_fft, fe.inner_hop, window=fe.window, center=True, pad_mode="constant", return_complex=True
        )
        mag = spec.abs()
        bank, mask = self.filterbank(cents)
        # the front end averages the energy over the bins it keeps: scaled so the mean
        # over all bins of the masked ones is that average
        level = fe.local_level(mag * (mask * torch.sqrt(mask.shape[0] / mask.sum())))
        logf = torch.einsum("bft,fk->bkt", mag, bank) / level
        return torch.log1p(fe.compression * logf)

    def encode(self, x: Tensor) -> Tensor:
        """``_encode_windows`` (or the whole input when it is no longer than a window)
        as tensor operations: ``(B, T, d)`` -> ``(B, T, d)``."""
        b, t, d = x.shape
        length = _min(t, self.window)
        last = t - length  # the last window's start
        count = (last + self.hop - 1) // self.hop + 1
        starts = torch.clamp(torch.arange(count, device=x.device) * self.hop, max=last)
        index = (starts[:, None] + torch.arange(length, device=x.device)[None]).reshape(-1)  # (W * length,)
        windows = x.index_select(1, index).reshape(-1, length, d)  # (B * W, length, d)
        encoded = self.model.encoder(windows).reshape(b, -1, d)
        total = torch.zeros_like(x).scatter_add(1, index[None, :, None].expand(b, -1, d), encoded)
        hits = torch.zeros_like(x[:1, :, :1]).scatter_add(1, index[None, :, None], torch.ones_like(encoded[:1, :, :1]))
        return total / hits

    def decimate(self, audio: Tensor) -> Tensor:
        """``Decimator.forward`` (overlap-save) with its inverse FFT and the filter's
        response as one real matrix product: the ONNX exporter does not translate
        ``irfft`` and complex products for every shape."""
        dec = self.model.frontend.decimator
        if dec.factor == 1:
            return audio
        n = audio.shape[-1]
        n_out = (n - 1) // dec.factor + 1
        # zeros past the end: at least the blocks Decimator pads to, maybe one more (whose
        # outputs are cropped); a fixed amount keeps every length in the graph symbolic
        head = torch.zeros_like(audio[:, :1]).expand(-1, dec.half_taps)
        tail = torch.zeros_like(audio[:, :1]).expand(-1, 2 * dec.block)
        frames = torch.cat([head, audio, tail], dim=-1).unfold(-1, dec.block, dec.step)  # (B, blocks, block)
        spectrum = torch.view_as_real(torch.fft.rfft(frames, dim=-1))[..., : self.low_real.shape[0], :]
        low = spectrum[..., 0] @ self.low_real + spectrum[..., 1] @ self.low_imag  # (B, blocks, per_block)
        out = low.reshape(audio.shape[0], -1)
        return out.index_select(-1, torch.arange(n_out, device=audio.device))

    def forward(self, audio: Tensor, tuning_cents: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        m = self.model
        x = self.spectrogram(audio, tuning_cents)[:, None]
        x = m.intervals(m.stem(m.input_norm(x)))
        b, c, f, t = x.shape
        x = m.project(x.permute(0, 3, 1, 2).reshape(b, t, c * f))
        x = x + m.position(x.transpose(1, 2)).transpose(1, 2)
        frames = m.norm(self.encode(x))
        return tuple(m.heads[name](frames) for name in OUTPUT_NAMES)


def _min(a, b):
    """``min`` of a size that is an int (eager), a SymInt (``torch.export``) or a 0-d
    tensor (``torch.jit.trace``), so the graph keeps it symbolic."""
    return torch.clamp(a, max=b) if isinstance(a, Tensor) else torch.sym_min(a, b)


def _max(a, b):
    return torch.clamp(a, min=b) if isinstance(a, Tensor) else torch.sym_max(a, b)


def _reversed_from(count, device) -> Tensor:
    """``[count, count - 1, ..., 1]`` (empty for 0)."""
    return count - torch.arange(count, device=device)


def decimation_matrices(dec) -> Tuple[Tensor, Tensor]:
    """``(K, per_block)`` matrices taking a block's spectrum (real, imaginary parts of its
    first K bins) to the ``Decimator``'s output samples: the filter's response times the
    inverse real FFT at the low rate, cropped to the samples each block contributes."""
    if dec.factor == 1:
        return torch.zeros(1, 1), torch.zeros(1, 1)
    size = dec.block // dec.factor  # the inverse FFT's length
    keep = dec.response.shape[0]  # size // 2 + 1
    first, per_block = dec.half_taps // dec.factor, dec.step // dec.factor
    k = torch.arange(keep, dtype=torch.float64)[:, None]
    m = torch.arange(first, first + per_block, dtype=torch.float64)[None]
    weight = torch.full((keep, 1), 2.0, dtype=torch.float64)
    weight[0] = weight[-1] = 1.0  # DC and Nyquist appear once in the full spectrum
    angle = 2 * math.pi * k * m / size
    cos, sin = weight * torch.cos(angle) / size, -weight * torch.sin(angle) / size
    response = dec.response.to(torch.complex128)
    re, im = response.real[:, None], response.imag[:, None]
    # (a + ib)(c + id) -> real a c - b d, imaginary a d + b c; then x = Re @ cos + Im @ sin
    return (re * cos + im * sin).float(), (-im * cos + re * sin).float()
