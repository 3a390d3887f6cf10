"""Checkpoint + audio -> MIREX ``.lab`` chord transcriptions.

    python -m chordexp.predict checkpoint=PATH input=FILE_OR_DIR output=DIR \
        [self_transition=0.95] [prior_weight=0] [estimate_tuning=true] [silence_db=30] [probabilities=false] [device=cpu] \
        [workers=N] [backend=torch|onnx|torchscript]

One .lab per audio file, in output= with the input's folder structure. Its name is the
audio file's with the extension replaced by .lab, every other dot kept
("01 - Mr. Brightside.wav" -> "01 - Mr. Brightside.lab", "song.v1.wav" -> "song.v1.lab");
where two inputs would get the same name ("a.wav" and "a.flac" in one folder, compared
regardless of case), each keeps its extension ("a.wav.lab", "a.flac.lab"), and
chordexp.evaluate pairs those with the reference "a.lab". Each .lab starts with the line
"# chordexp prediction of <audio file>" (a comment to mir_eval); predict replaces only
files carrying that mark and refuses, before writing anything, to replace any other file
(a reference .lab beside the audio when output= is the input folder).

The Python API does the same for arrays::

    recognizer = ChordRecognizer.from_checkpoint("outputs/.../checkpoints/best.pt")
    segments = recognizer.transcribe(audio, sample_rate)   # [(start, end, "C:maj"), ...]
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, cast

import numpy as np

from chordexp.audio import find_audio_files
from chordexp.cli import main_guard, parse_args
from chordexp.decode import Segment, decode_segments
from chordexp.errors import UsageError
from chordexp.labfile import prediction_comment, write_lab
from chordexp.output_dirs import plan_transcriptions

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
                 silence_db: float | None = 30.0, type_prior: Optional[Sequence[float]] = None,
                 prior_weight: float = 0.0, estimate_tuning: bool = False) -> None:
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

    @classmethod
    def from_checkpoint(cls, path: str | Path, self_transition: Optional[float] = None, device: str = "cpu",
                        silence_db: float | None = 30.0, prior_weight: Optional[float] = None,
                        estimate_tuning: Optional[bool] = None) -> "ChordRecognizer":
        """Load a training checkpoint (``weights_only``: no code runs) and rebuild its model.

        ``self_transition``, ``prior_weight`` and ``estimate_tuning`` default to the
        decoder settings the run saved (estimated from its training labels, chosen on a
        development set), else 0.95, 0 and False."""
        from chordexp.device import resolve_device
        from chordexp.model import ChordRecognitionModel
        from chordexp.training.checkpoint import CheckpointError, check_model_state, load_checkpoint_file

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
        return cls(model, device=device, silence_db=silence_db,
                   self_transition=float(saved.get("self_transition", 0.95)) if self_transition is None
                   else self_transition,
                   type_prior=saved.get("type_prior"),
                   prior_weight=float(saved.get("prior_weight", 0.0)) if prior_weight is None else prior_weight,
                   estimate_tuning=bool(saved.get("estimate_tuning", False)) if estimate_tuning is None
                   else estimate_tuning)

    def frame_posteriors(self, audio: np.ndarray) -> Dict[str, np.ndarray]:
        """Mono audio at the model's rate -> per-frame log-posteriors of the three heads."""
        import torch

        with torch.inference_mode():
            x = torch.as_tensor(audio, dtype=torch.float32, device=self.device)[None]
            logits = self.model.forward_frames(x)
            return {k: torch.log_softmax(v[0].float(), dim=-1).cpu().numpy() for k, v in logits.items()}

    def tuned_posteriors(self, audio: np.ndarray, cents: float) -> Dict[str, np.ndarray]:
        """``frame_posteriors`` with the front end's filters ``cents`` off A440 (an exported
        model, ``chordexp.inference.backends``, takes the offset as an input instead)."""
        with self.model.frontend.tuned(cents):
            return self.frame_posteriors(audio)

    @property
    def frame_rate(self) -> float:
        return float(self.model.frame_rate)

    @property
    def hop_length(self) -> int:
        return int(self.model.frontend.hop_length)

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> Transcription:
        """Mono (or ``(n, channels)``) float audio at any rate -> chord segments."""
        return self.decode(self.analyse(audio, sample_rate))

    def analyse(self, audio: np.ndarray, sample_rate: int) -> "Analysis":
        """The model's part of a transcription: frame log-posteriors and the silent frames
        (decoding them is cheap, so settings can be compared on one analysis)."""
        from chordexp.audio import resample

        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 2:
            audio = audio.mean(axis=1)
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(f"audio must be a non-empty 1-D or (n, channels) array, got shape {audio.shape}")
        audio = resample(audio, sample_rate, self.sample_rate)
        cents = 0.0
        if self.estimate_tuning:
            from chordexp.tuning import estimate_tuning

            cents = estimate_tuning(audio, self.sample_rate)
        logp = self.tuned_posteriors(audio, cents)
        silent = None
        if self.silence_db is not None:
            levels = frame_levels_db(audio, self.hop_length, len(logp["root"]))
            silent = levels < levels.max() - self.silence_db
        return Analysis(logp, len(audio) / self.sample_rate, silent, cents)

    def decode(self, analysis: "Analysis", self_transition: Optional[float] = None,
               prior_weight: Optional[float] = None) -> Transcription:
        """Viterbi over an analysis, with this recogniser's settings unless given."""
        logp, frame_rate = analysis.log_posteriors, self.frame_rate
        weight = self.prior_weight if prior_weight is None else prior_weight
        type_logp = logp["chord_type"]
        if self.type_log_prior is not None and weight:
            type_logp = type_logp - weight * self.type_log_prior
        segments = decode_segments(
            type_logp, logp["root"], logp["bass_note"], frame_rate, analysis.duration,
            self.self_transition if self_transition is None else self_transition, analysis.silent,
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


def frame_levels_db(audio: np.ndarray, hop: int, n_frames: int) -> np.ndarray:
    """RMS level in dB of the ``hop`` samples around each frame centre, ``(n_frames,)``
    (sums of squares in float32 by ``einsum``: 4x faster than float64, within 1e-5 dB)."""
    padded = np.zeros(n_frames * hop, dtype=np.float32)
    take = max(0, min(audio.size, n_frames * hop - hop // 2))
    padded[hop // 2: hop // 2 + take] = audio[:take]
    frames = padded.reshape(n_frames, hop)
    return 10.0 * np.log10(np.einsum("ij,ij->i", frames, frames).astype(np.float64) / hop + 1e-12)


def write_probabilities(path: Path, transcription: Transcription) -> None:
    """Per-frame posteriors next to the .lab (``NAME.probs.npz``: times + three heads)."""
    # Any: numpy's stub would match a key of the unpacked dict to allow_pickle (a bool)
    np.savez_compressed(path, times=transcription.frame_times, **cast(Dict[str, Any], transcription.probabilities))


@dataclass
class PredictArgs:
    checkpoint: str = "???"
    input: str = "???"
    output: str = "???"
    self_transition: Optional[float] = None  # null: the checkpoint's (estimated from its data), else 0.95
    prior_weight: Optional[float] = None  # divide the chord-type prior out of the posteriors (null: the checkpoint's)
    estimate_tuning: Optional[bool] = None  # measure the offset from A440 first (null: the checkpoint's)
    silence_db: Optional[float] = 30.0  # frames this far below the loudest are N (null: off)
    probabilities: bool = False
    device: str = "cpu"
    progress: bool = True
    workers: Optional[int] = None  # processes decoding (and analysing) ahead (null: one per core; 0: none)
    backend: Optional[str] = None  # torch | onnx | torchscript (null: by the file; see docs/export.md)


def transcribe_files(
    recognizer: ChordRecognizer,
    input_path: Path,
    output: Path,
    probabilities: bool = False,
    progress: bool = True,
    echo=print,
    workers: Optional[int] = None,
) -> int:
    """Transcribe every audio file under ``input_path`` into ``output`` (keeping the
    folder structure); returns how many files could not be read (one line each).
    ``workers`` processes decode, resample and (a torch model on the CPU) run the model
    on the next files while this one decodes chords and writes (None: one per core,
    none for a single file; 0: all here); the files are written in the same order and
    with the same contents either way."""
    from tqdm import tqdm

    from chordexp.audio import AudioError
    from chordexp.inference.prefetch import decoded_files

    files = find_audio_files(input_path)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"output={output}: cannot create the folder ({error.strerror})") from None
    # names by the rule of the module docstring; every target checked before anything is written
    planned = plan_transcriptions(files, input_path, output, (".probs.npz",) if probabilities else ())
    failures = 0
    bar = tqdm(planned, unit="file", disable=not progress or not sys.stderr.isatty())
    # the model runs in the (forked) workers only for torch on the CPU: CUDA and other
    # runtimes' thread pools do not survive a fork
    in_workers = type(recognizer) is ChordRecognizer and str(recognizer.device) == "cpu"
    decoded = decoded_files([path for path, _ in planned], recognizer.sample_rate, workers,
                            analyse=_Analyser(recognizer) if in_workers else None)
    for (path, target), (_, item) in zip(bar, decoded):
        bar.set_postfix_str(path.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if isinstance(item, AudioError):  # could not be read or resampled (in a worker)
                raise item
            audio, analysis = item
            transcription = (recognizer.transcribe(audio, recognizer.sample_rate) if analysis is None
                             else recognizer.decode(analysis))
            segments = checked_segments(path, audio, transcription, recognizer.sample_rate)
        except AudioError as error:
            if len(files) == 1:
                raise
            print(f"error: {error}", file=sys.stderr)
            failures += 1
            continue
        write_lab(target, segments, comment=prediction_comment(path))
        if probabilities:
            write_probabilities(target.with_name(target.name[: -len(".lab")] + ".probs.npz"), transcription)
        if bar.disable:
            echo(f"{path} -> {target} ({len(transcription.segments)} segments)")
    return failures


class _Analyser:
    """``recognizer.analyse`` at the model's rate, as a picklable callable for workers."""

    def __init__(self, recognizer: ChordRecognizer) -> None:
        self.recognizer = recognizer

    def __call__(self, audio: np.ndarray) -> "Analysis":
        return self.recognizer.analyse(audio, self.recognizer.sample_rate)


def checked_segments(path: Path, audio: np.ndarray, transcription: Transcription,
                     sample_rate: int) -> List[Segment]:
    """The segments to write for ``path``; AudioError (naming the file) where the model's
    output is not finite (NaN weights, samples far outside [-1, 1]) instead of an all-N
    transcription, or where the audio is too short to give one interval of a millisecond."""
    from chordexp.audio import AudioError

    if not all(np.isfinite(p).all() for p in transcription.probabilities.values()):
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        cause = (f"its samples reach {peak:.3g}, far outside [-1, 1]" if peak > 1e3 or not np.isfinite(peak)
                 else "the checkpoint's weights may be NaN or inf")
        raise AudioError(f"{path}: the model's output is not finite (NaN or inf): {cause}; nothing written for it")
    # a .lab holds milliseconds: intervals that round to nothing are dropped (the others still meet)
    segments = [s for s in transcription.segments if round(s[1], 3) > round(s[0], 3)]
    if not segments:
        raise AudioError(f"{path}: too short to transcribe ({audio.size} sample(s) at {sample_rate} Hz): a .lab "
                         f"interval needs at least a millisecond; nothing written for it")
    return segments


def check_finite_weights(recognizer: ChordRecognizer, checkpoint: str) -> None:
    """CheckpointError naming the first weight that is NaN or inf (it would turn every
    transcription into N or NaN)."""
    import torch

    from chordexp.training.checkpoint import CheckpointError

    for name, tensor in recognizer.model.state_dict().items():
        if torch.is_floating_point(tensor) and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"checkpoint {checkpoint}: weight {name} holds NaN or inf values; the model cannot "
                                  f"transcribe with it (a diverged run? use an earlier checkpoint)")


def check_numbers(args: "PredictArgs") -> None:
    """UsageError for a number that cannot work: ``silence_db`` must be null (the gate
    off) or a finite number > 0 (NaN would turn the gate off unseen, a negative value
    makes every frame N); ``prior_weight`` must be finite."""
    import math

    if args.silence_db is not None and not (math.isfinite(args.silence_db) and args.silence_db > 0):
        raise UsageError(f"silence_db={args.silence_db} must be a finite number of dB > 0 (frames that far below "
                         f"the loudest are N), or null to turn the gate off")
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"workers={args.workers} must be >= 0 (0: everything in this process), or null for one "
                         f"per core")
    if args.prior_weight is not None and not math.isfinite(args.prior_weight):
        raise UsageError(f"prior_weight={args.prior_weight} must be a finite number (0: off, 1: the chord-type "
                         f"prior divided out fully), or null for the checkpoint's")


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(PredictArgs, sys.argv[1:] if argv is None else argv)
    check_numbers(args)
    input_path = Path(args.input)
    find_audio_files(input_path)  # bad input fails before the model loads
    from chordexp.inference.backends import infer_backend, load_recognizer

    backend = infer_backend(args.checkpoint, args.backend)
    if backend == "torch":
        recognizer = ChordRecognizer.from_checkpoint(args.checkpoint, args.self_transition, args.device,
                                                     args.silence_db, args.prior_weight, args.estimate_tuning)
        check_finite_weights(recognizer, args.checkpoint)
    else:  # an exported model (chordexp.export)
        recognizer = load_recognizer(args.checkpoint, backend, args.self_transition, args.device, args.silence_db,
                                     args.prior_weight, args.estimate_tuning)
    failures = transcribe_files(recognizer, input_path, Path(args.output), args.probabilities, args.progress,
                                workers=args.workers)
    if failures:
        raise UsageError(f"{failures} file(s) under {input_path} could not be transcribed (see above)")
    return 0


if __name__ == "__main__":
    main_guard(main, USAGE)
