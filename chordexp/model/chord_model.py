"""ChordRecognitionModel: raw audio in, chord type / root / bass logits out.

Shape flow (B = batch, T = frames at ~10.8 per second, F = log-frequency bins)::

    audio (B, num_samples)
      -> LogFrequencySpectrogram         (B, F=216, T)    36 bins/octave, C1..C7
      -> conv stem, pooled to semitones  (B, C, 72, T)    local pitch patterns, tuning-robust
      -> interval convs (13-semitone kernels) (B, C2, 72, T)  equivariant to transposition
      -> full-height projection          (B, T, d_model)  one token per frame
      -> num_blocks transformer blocks   (B, T, d_model)  context across time
      -> heads per frame                 (B, T, 32 | 12 | 12)
      -> mean over frames                (B, 32 | 12 | 12)  clip logits

Clip logits are the mean of the frame logits (the heads are linear, so this equals
classifying the mean frame embedding); ``forward_frames`` gives the per-frame logits
a song transcriber decodes.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, Mapping

import torch
from torch import Tensor, nn

from chordexp.chords import NUM_CHORD_TYPES, NUM_PITCH_CLASSES
from chordexp.config import MODEL_RULES
from chordexp.errors import ConfigValueError
from chordexp.model.frontend import BINS_PER_OCTAVE, FMIN_HZ, N_OCTAVES, SAMPLE_RATE, LogFrequencySpectrogram

HEADS = {"chord_type": NUM_CHORD_TYPES, "root": NUM_PITCH_CLASSES, "bass_note": NUM_PITCH_CLASSES}


def conv_block(c_in: int, c_out: int, kernel: tuple, dilation: tuple = (1, 1)) -> nn.Sequential:
    padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.GELU(),
    )


class ChordRecognitionModel(nn.Module):
    """Conv stem + transformer encoder over frames + three linear heads.

    Defaults (d_model 128, 4 blocks) give about 1.1 M parameters; ``d_model``,
    ``num_blocks``, ``num_heads``, the stem width ``channels`` and the width of each
    block's feed-forward layer (``feedforward_ratio`` times ``d_model``) scale it.
    ``context_seconds`` is the clip length it is trained on: over longer audio,
    ``forward_frames`` attends within windows of that length. ``frame_outputs=True``
    (song mode: trained on excerpts with a label per frame) makes ``forward`` return
    the frame logits.
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        d_model: int = 128,
        num_blocks: int = 4,
        num_heads: int = 4,
        dropout: float = 0.1,
        channels: int = 16,
        bins_per_octave: int = BINS_PER_OCTAVE,
        n_octaves: int = N_OCTAVES,
        fmin: float = FMIN_HZ,
        context_seconds: float = 1.0,
        frame_outputs: bool = False,
        feedforward_ratio: int = 4,
    ) -> None:
        super().__init__()
        for rule in MODEL_RULES:
            if not rule.holds(locals()[rule.name]):
                raise ConfigValueError(rule.api_message(locals()[rule.name]))
        if bins_per_octave % 12:
            raise ConfigValueError(f"bins_per_octave must be a multiple of 12, got {bins_per_octave}")
        if d_model % num_heads:
            raise ConfigValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.sample_rate = sample_rate
        #: constructor arguments, saved in checkpoints so a model can be rebuilt from one
        self.hparams = constructor_arguments(ChordRecognitionModel, locals())
        #: song mode: ``forward`` returns the frame logits ``(B, T, classes)`` it is trained on
        self.frame_outputs = bool(frame_outputs)
        self.frontend = LogFrequencySpectrogram(
            sample_rate=sample_rate, fmin=fmin, n_octaves=n_octaves, bins_per_octave=bins_per_octave
        )
        per_semitone = bins_per_octave // 12
        semitones = 12 * n_octaves
        self.input_norm = nn.BatchNorm2d(1)
        self.stem = nn.Sequential(
            conv_block(1, channels, (2 * per_semitone + 1, 3)),
            nn.MaxPool2d((per_semitone, 1)),  # keep the strongest bin of each semitone (tuning)
            conv_block(channels, channels, (3, 3)),
        )
        self.intervals = nn.Sequential(
            conv_block(channels, 2 * channels, (13, 1)),
            conv_block(2 * channels, 2 * channels, (13, 1), dilation=(2, 1)),
        )
        self.project = nn.Sequential(
            nn.Linear(2 * channels * semitones, d_model), nn.LayerNorm(d_model), nn.Dropout(dropout)
        )
        self.position = nn.Conv1d(d_model, d_model, kernel_size=3, padding=1, groups=d_model)
        layer = nn.TransformerEncoderLayer(
            d_model,
            num_heads,
            dim_feedforward=feedforward_ratio * d_model,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_blocks, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.context_frames = self.frontend.num_frames(int(context_seconds * sample_rate))
        self.heads = nn.ModuleDict({name: nn.Linear(d_model, n) for name, n in HEADS.items()})

    @property
    def frame_rate(self) -> float:
        """Frames per second of ``forward_frames``."""
        return self.frontend.frame_rate

    def embed_frames(self, audio: Tensor, window_frames: int | None = None) -> Tensor:
        """``(B, num_samples)`` -> frame embeddings ``(B, T, d_model)``.

        With ``window_frames``, attention runs over overlapping windows of that many
        frames (hop half a window, overlaps averaged) instead of the whole input: a
        model trained on short clips then sees the context length it was trained on,
        however long the song. The convolutional part always runs on the whole input.
        """
        x = self.frontend(audio)[:, None]  # (B, 1, F, T)
        x = self.intervals(self.stem(self.input_norm(x)))  # (B, C2, 72, T)
        b, c, f, t = x.shape
        x = self.project(x.permute(0, 3, 1, 2).reshape(b, t, c * f))  # (B, T, d_model)
        x = x + self.position(x.transpose(1, 2)).transpose(1, 2)
        if window_frames is None or t <= window_frames:
            return self.norm(self.encoder(x))
        return self.norm(self._encode_windows(x, window_frames))

    def _encode_windows(self, x: Tensor, window: int) -> Tensor:
        b, t, d = x.shape
        hop = max(1, window // 2)
        starts = list(range(0, t - window + 1, hop))
        if starts[-1] != t - window:
            starts.append(t - window)
        windows = torch.stack([x[:, s : s + window] for s in starts], dim=1)  # (B, W, window, d)
        encoded = self.encoder(windows.reshape(-1, window, d)).reshape(b, len(starts), window, d)
        total = x.new_zeros(b, t, d)
        count = x.new_zeros(1, t, 1)
        for i, s in enumerate(starts):
            total[:, s : s + window] += encoded[:, i]
            count[:, s : s + window] += 1
        return total / count

    def forward_frames(self, audio: Tensor, window_frames: int | None = None) -> Dict[str, Tensor]:
        """Per-frame logits: dict of ``(B, T, classes)``; attention windows default to
        the training context (see ``embed_frames``)."""
        frames = self.embed_frames(audio, window_frames or self.context_frames)
        return {name: head(frames) for name, head in self.heads.items()}

    def forward(self, audio: Tensor) -> Dict[str, Tensor]:
        """Clip logits: dict of ``(B, classes)`` for chord_type (32), root and bass_note (12);
        with ``frame_outputs`` (song mode) the frame logits ``(B, T, classes)``, attention
        over the whole excerpt."""
        if self.frame_outputs:
            frames = self.embed_frames(audio)
            return {name: head(frames) for name, head in self.heads.items()}
        pooled = self.embed_frames(audio).mean(dim=1)
        return {name: head(pooled) for name, head in self.heads.items()}


def constructor_arguments(cls: type, arguments: Mapping[str, Any]) -> Dict[str, Any]:
    """The values of ``cls``'s positional-or-keyword constructor parameters among
    ``arguments`` (its ``__init__``'s ``locals()``), in signature order: the settings a
    checkpoint records, read from the signature so a new argument is recorded too."""
    parameters = inspect.signature(cls).parameters.values()
    return {p.name: arguments[p.name] for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
