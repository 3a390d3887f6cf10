"""Checkpoint + audio -> MIREX ``.lab`` chord transcriptions.

    python -m chordexp.predict checkpoint=PATH input=FILE_OR_DIR output=DIR \
        [self_transition=0.95] [silence_db=30] [probabilities=false] [device=cpu]

The Python API does the same for arrays::

    recognizer = ChordRecognizer.from_checkpoint("outputs/.../checkpoints/best.pt")
    segments = recognizer.transcribe(audio, sample_rate)   # [(start, end, "C:maj"), ...]
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from chordexp.audio import find_audio_files
from chordexp.cli import UsageError, main_guard, parse_args
from chordexp.labfile import write_lab
from chordexp.output_dirs import contained_target
from chordexp.decode import Segment, decode_segments

USAGE = __doc__.split("The Python API")[0].strip()


@dataclass
class Transcription:
    """Chord segments of one recording, plus the frame posteriors they came from."""

    segments: List[Segment]
    frame_times: np.ndarray  # (T,) seconds, frame centres
    probabilities: Dict[str, np.ndarray]  # chord_type (T, 32), root (T, 12), bass_note (T, 12)


class ChordRecognizer:
    """A trained model plus the decoder that turns its frames into chord segments."""

    def __init__(self, model, self_transition: float = 0.95, device: str = "cpu",
                 silence_db: float | None = 30.0) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.self_transition = self_transition
        self.silence_db = silence_db
        self.sample_rate = int(model.sample_rate)

    @classmethod
    def from_checkpoint(cls, path: str | Path, self_transition: float = 0.95, device: str = "cpu",
                        silence_db: float | None = 30.0) -> "ChordRecognizer":
        """Load a training checkpoint (``weights_only``: no code runs) and rebuild its model."""
        from chordexp.model import ChordRecognitionModel
        from chordexp.training.checkpoint import CheckpointError, check_model_state, load_checkpoint_file
        from chordexp.training.trainer import resolve_device

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
        return cls(model, self_transition=self_transition, device=device, silence_db=silence_db)

    def frame_posteriors(self, audio: np.ndarray) -> Dict[str, np.ndarray]:
        """Mono audio at the model's rate -> per-frame log-posteriors of the three heads."""
        import torch

        with torch.inference_mode():
            x = torch.as_tensor(audio, dtype=torch.float32, device=self.device)[None]
            logits = self.model.forward_frames(x)
            return {k: torch.log_softmax(v[0].float(), dim=-1).cpu().numpy() for k, v in logits.items()}

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> Transcription:
        """Mono (or ``(n, channels)``) float audio at any rate -> chord segments."""
        from chordexp.audio import resample

        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 2:
            audio = audio.mean(axis=1)
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(f"audio must be a non-empty 1-D or (n, channels) array, got shape {audio.shape}")
        audio = resample(audio, sample_rate, self.sample_rate)
        logp = self.frame_posteriors(audio)
        duration = len(audio) / self.sample_rate
        frame_rate = self.model.frame_rate
        silent = None
        if self.silence_db is not None:
            levels = frame_levels_db(audio, self.model.frontend.hop_length, len(logp["root"]))
            silent = levels < levels.max() - self.silence_db
        segments = decode_segments(
            logp["chord_type"], logp["root"], logp["bass_note"], frame_rate, duration, self.self_transition, silent
        )
        times = np.arange(len(logp["root"])) / frame_rate
        return Transcription(segments, times, {k: np.exp(v) for k, v in logp.items()})


def frame_levels_db(audio: np.ndarray, hop: int, n_frames: int) -> np.ndarray:
    """RMS level in dB of the ``hop`` samples around each frame centre, ``(n_frames,)``."""
    padded = np.pad(audio, (hop // 2, n_frames * hop))
    frames = padded[: n_frames * hop].reshape(n_frames, hop)
    return 10.0 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)


def write_probabilities(path: Path, transcription: Transcription) -> None:
    """Per-frame posteriors next to the .lab (``NAME.probs.npz``: times + three heads)."""
    np.savez_compressed(path, times=transcription.frame_times, **transcription.probabilities)


@dataclass
class PredictArgs:
    checkpoint: str = "???"
    input: str = "???"
    output: str = "???"
    self_transition: float = 0.95
    silence_db: Optional[float] = 30.0  # frames this far below the loudest are N (null: off)
    probabilities: bool = False
    device: str = "cpu"
    progress: bool = True


def transcribe_files(
    recognizer: ChordRecognizer,
    input_path: Path,
    output: Path,
    probabilities: bool = False,
    progress: bool = True,
    echo=print,
) -> int:
    """Transcribe every audio file under ``input_path`` into ``output`` (keeping the
    folder structure); returns how many files could not be read (one line each)."""
    from tqdm import tqdm

    from chordexp.audio import AudioError, load_audio

    files = find_audio_files(input_path)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"output={output}: cannot create the folder ({error.strerror})") from None
    root = input_path if input_path.is_dir() else None
    failures = 0
    bar = tqdm(files, unit="file", disable=not progress or not sys.stderr.isatty())
    for path in bar:
        bar.set_postfix_str(path.name)
        name = path.relative_to(root).with_suffix("") if root else Path(path.stem)
        target = contained_target(output, name.with_suffix(".lab"))
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            transcription = recognizer.transcribe(load_audio(path, recognizer.sample_rate), recognizer.sample_rate)
        except AudioError as error:
            if len(files) == 1:
                raise
            print(f"error: {error}", file=sys.stderr)
            failures += 1
            continue
        write_lab(target, transcription.segments)
        if probabilities:
            write_probabilities(target.with_suffix(".probs.npz"), transcription)
        if bar.disable:
            echo(f"{path} -> {target} ({len(transcription.segments)} segments)")
    return failures


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(PredictArgs, sys.argv[1:] if argv is None else argv)
    input_path = Path(args.input)
    find_audio_files(input_path)  # bad input fails before the model loads
    recognizer = ChordRecognizer.from_checkpoint(args.checkpoint, args.self_transition, args.device, args.silence_db)
    failures = transcribe_files(recognizer, input_path, Path(args.output), args.probabilities, args.progress)
    if failures:
        raise UsageError(f"{failures} file(s) under {input_path} could not be transcribed (see above)")
    return 0


if __name__ == "__main__":
    main_guard(main, USAGE)
