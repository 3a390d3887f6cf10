"""A trained model as a chord recogniser: load a checkpoint, run the model, decode.

:class:`ChordRecognizer` turns audio (any rate, mono or channels) into chord segments:
resampling to the model's rate, an optional tuning estimate, the model's frame
posteriors, a silence gate and the HMM decoder (``chordexp.decode``). ``analyse`` and
``decode`` are its two halves, so decoder settings can be compared on one analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from chordexp.audio import load_audio, mono_samples, resample
from chordexp.decode import DECODER_DEFAULTS, DecoderSettings, Segment, decode_segments
from chordexp.device import resolve_device
from chordexp.inference import streaming
from chordexp.model import ChordRecognitionModel
from chordexp.training.checkpoint import CheckpointError, check_model_state, load_checkpoint_file
from chordexp.tuning_estimate import front_end_shift


@dataclass
class Transcription:
    """Chord segments of one recording, plus the frame posteriors they came from."""

    segments: List[Segment]
    frame_times: np.ndarray  # (T,) seconds, frame centres
    probabilities: Dict[str, np.ndarray]  # chord_type (T, 32), root (T, 12), bass_note (T, 12)


class ChordRecognizer:
    """A trained model plus the decoder that turns its frames into chord segments."""

    def __init__(
        self,
        model,
        self_transition: float = DECODER_DEFAULTS.self_transition,
        device: str = "cpu",
        silence_db: float | None = DECODER_DEFAULTS.silence_db,
        type_prior: Optional[Sequence[float]] = None,
        prior_weight: float = DECODER_DEFAULTS.prior_weight,
        estimate_tuning: bool = DECODER_DEFAULTS.estimate_tuning,
        transpositions: int = DECODER_DEFAULTS.transpositions,
    ) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.self_transition = self_transition
        self.silence_db = silence_db
        self.sample_rate = int(model.sample_rate)
        # Posteriors carry the training data's chord-type frequencies; dividing them out
        # (prior_weight > 0, the hybrid HMM's scaled likelihoods) lets rarer types through.
        self.type_log_prior = None if type_prior is None else np.log(np.asarray(type_prior, dtype=np.float64))
        self.prior_weight = float(prior_weight)
        # Measure the recording's offset from A440 and move the front end's filters by it
        # (as Chordino does) instead of asking the model to hear between its bins.
        self.estimate_tuning = bool(estimate_tuning)
        self.transpositions = int(transpositions)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        self_transition: Optional[float] = None,
        device: str = "cpu",
        silence_db: float | None = DECODER_DEFAULTS.silence_db,
        prior_weight: Optional[float] = None,
        estimate_tuning: Optional[bool] = None,
        transpositions: Optional[int] = None,
    ) -> "ChordRecognizer":
        """Load a training checkpoint (``weights_only``: no code runs) and rebuild its model.

        ``self_transition``, ``prior_weight`` and ``estimate_tuning`` default to the
        decoder settings the run saved (estimated from its training labels, chosen on a
        development set), else ``DECODER_DEFAULTS``'s."""
        device = str(resolve_device(device))  # one line for an unknown or absent device
        state = load_checkpoint_file(path, map_location=device)
        hparams = state.get("model_hparams")
        if not isinstance(hparams, dict):
            raise CheckpointError(f"checkpoint {path}: has no model_hparams to rebuild the model from")
        try:
            model = ChordRecognitionModel(**hparams)
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"checkpoint {path}: model_hparams do not build a model ({error})") from None
        check_model_state(path, model, state["model"])
        model.load_state_dict(state["model"])
        saved = (state.get("extra") or {}).get("decoder") or {}
        settings = DecoderSettings.of_model(
            saved,
            self_transition=self_transition,
            prior_weight=prior_weight,
            estimate_tuning=estimate_tuning,
            transpositions=transpositions,
        )
        return cls(
            model,
            device=device,
            silence_db=silence_db,
            type_prior=saved.get("type_prior"),
            **settings.saved(),
        )

    def frame_posteriors(self, audio: np.ndarray) -> Dict[str, np.ndarray]:
        """Mono audio at the model's rate -> per-frame log-posteriors of the three heads."""
        with torch.inference_mode():
            x = torch.as_tensor(audio, dtype=torch.float32, device=self.device)[None]
            logits = self.model.forward_frames(x)
            return {k: torch.log_softmax(v[0].float(), dim=-1).cpu().numpy() for k, v in logits.items()}

    def tuned_posteriors(self, audio: np.ndarray, cents: float) -> Dict[str, np.ndarray]:
        """``frame_posteriors`` with the front end's filters ``cents`` off A440 (an exported
        model, ``chordexp.inference.backends``, takes the offset as an input instead)."""
        with self.model.frontend.tuned(cents):
            return self.frame_posteriors(audio)

    def posteriors(self, audio: np.ndarray, cents: float) -> Dict[str, np.ndarray]:
        """``tuned_posteriors`` at ``cents``, averaged (log domain, renormalised) with those
        of the recording moved 1..``transpositions`` semitones up and down: the filters
        shifted by k semitones make the model hear the chord k semitones lower, so its
        root and bass posteriors are rotated back by k. A model trained on pitch-shifted
        audio errs differently at each shift; the average is steadier (chosen on the
        development sets: docs/realism.md)."""
        logp = self.tuned_posteriors(audio, cents)
        if not self.transpositions:
            return logp
        stacks = {name: [values] for name, values in logp.items()}
        for k in (s for n in range(1, self.transpositions + 1) for s in (-n, n)):
            moved = self.tuned_posteriors(audio, cents + 100.0 * k)
            for name, values in moved.items():
                stacks[name].append(np.roll(values, k, axis=1) if name in ROTATED_HEADS else values)
        return {name: log_normalised(np.mean(values, axis=0)) for name, values in stacks.items()}

    @property
    def frame_rate(self) -> float:
        return float(self.model.frame_rate)

    @property
    def hop_length(self) -> int:
        return int(self.model.frontend.hop_length)

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> Transcription:
        """Mono (or ``(n, channels)``) float audio at any rate -> chord segments."""
        return self.decode(self.analyse(audio, sample_rate))

    def transcribe_file(
        self, path: str | Path, stream_seconds: Optional[float] = None, chunk_seconds: Optional[float] = None
    ) -> Transcription:
        """An audio file -> chord segments; a long one streamed (``analyse_file``)."""
        return self.decode(self.analyse_file(path, stream_seconds, chunk_seconds))

    def analyse_file(
        self, path: str | Path, stream_seconds: Optional[float] = None, chunk_seconds: Optional[float] = None
    ) -> "Analysis":
        """``analyse`` of an audio file. One longer than ``stream_seconds`` (default
        ``chordexp.inference.streaming.STREAM_SECONDS``, ten minutes) is read in blocks
        and run through the model in chunks of about ``chunk_seconds`` (default
        ``CHUNK_SECONDS``), in bounded memory, with the same posteriors up to float
        rounding; shorter files (and exported models) are read whole."""
        threshold = streaming.STREAM_SECONDS if stream_seconds is None else stream_seconds
        if streaming.should_stream(path, self, threshold):
            return self.analyse_stream(path, streaming.CHUNK_SECONDS if chunk_seconds is None else chunk_seconds)[0]
        return self.analyse(load_audio(path, self.sample_rate), self.sample_rate)

    def analyse_stream(
        self,
        path: str | Path,
        chunk_seconds: float = streaming.CHUNK_SECONDS,
        block_frames: int = streaming.READ_BLOCK_FRAMES,
    ) -> "Tuple[Analysis, streaming.StreamedAudio]":
        """``analyse_file`` streamed whatever the file's length: the file read
        ``block_frames`` at a time, ``chunk_seconds`` of audio through the model at a time
        (``chordexp.inference.streaming``); with what ``predict`` checks of the samples."""
        done = streaming.stream_analysis(self, path, chunk_seconds, block_frames)
        return Analysis(done.log_posteriors, done.duration, done.silent, done.tuning_cents), done.audio

    def analyse(self, audio: np.ndarray, sample_rate: int) -> "Analysis":
        """The model's part of a transcription: frame log-posteriors and the silent frames
        (decoding them is cheap, so settings can be compared on one analysis)."""
        audio = resample(mono_samples(audio), sample_rate, self.sample_rate)
        cents = 0.0
        if self.estimate_tuning:
            cents = front_end_shift(audio, self.sample_rate)
        logp = self.posteriors(audio, cents)
        silent = None
        if self.silence_db is not None:
            levels = frame_levels_db(audio, self.hop_length, len(logp["root"]))
            silent = levels < levels.max() - self.silence_db
        return Analysis(logp, len(audio) / self.sample_rate, silent, cents)

    def decode(
        self, analysis: "Analysis", self_transition: Optional[float] = None, prior_weight: Optional[float] = None
    ) -> Transcription:
        """Viterbi over an analysis, with this recogniser's settings unless given."""
        logp, frame_rate = analysis.log_posteriors, self.frame_rate
        weight = self.prior_weight if prior_weight is None else prior_weight
        type_logp = logp["chord_type"]
        if self.type_log_prior is not None and weight:
            type_logp = type_logp - weight * self.type_log_prior
        segments = decode_segments(
            type_logp,
            logp["root"],
            logp["bass_note"],
            frame_rate,
            analysis.duration,
            self.self_transition if self_transition is None else self_transition,
            analysis.silent,
        )
        times = np.arange(len(logp["root"])) / frame_rate
        return Transcription(segments, times, {k: np.exp(v) for k, v in logp.items()})


@dataclass
class Analysis:
    """Frame log-posteriors of one recording (``(T, classes)`` per head), its duration in
    seconds and the frames quiet enough to be N (or None)."""

    log_posteriors: Dict[str, np.ndarray]
    duration: float
    silent: Optional[np.ndarray]
    tuning_cents: float = 0.0  # the offset from A440 the front end was moved by


#: The heads whose classes are pitch classes: a transposition rotates them.
ROTATED_HEADS = ("root", "bass_note")


def log_normalised(values: np.ndarray) -> np.ndarray:
    """Rows of log-scores as log-probabilities (a log-softmax)."""
    top = values.max(axis=1, keepdims=True)
    return values - top - np.log(np.exp(values - top).sum(axis=1, keepdims=True))


def frame_levels_db(audio: np.ndarray, hop: int, n_frames: int) -> np.ndarray:
    """RMS level in dB of the ``hop`` samples around each frame centre, ``(n_frames,)``
    (sums of squares in float32 by ``einsum``: 4x faster than float64, within 1e-5 dB)."""
    padded = np.zeros(n_frames * hop, dtype=np.float32)
    take = max(0, min(audio.size, n_frames * hop - hop // 2))
    padded[hop // 2 : hop // 2 + take] = audio[:take]
    frames = padded.reshape(n_frames, hop)
    return 10.0 * np.log10(np.einsum("ij,ij->i", frames, frames).astype(np.float64) / hop + 1e-12)


def check_finite_weights(recognizer: ChordRecognizer, checkpoint: str) -> None:
    """CheckpointError naming the first weight that is NaN or inf (it would turn every
    transcription into N or NaN)."""
    for name, tensor in recognizer.model.state_dict().items():
        if torch.is_floating_point(tensor) and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"checkpoint {checkpoint}: weight {name} holds NaN or inf values; the model cannot "
                f"transcribe with it (a diverged run? use an earlier checkpoint)"
            )
