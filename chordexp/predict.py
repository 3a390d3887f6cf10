"""Checkpoint + audio -> MIREX ``.lab`` chord transcriptions.

    python -m chordexp.predict [checkpoint=PATH] input=FILE_OR_DIR output=DIR \
        [self_transition=S] [prior_weight=W] [estimate_tuning=true|false] [transpositions=N] [silence_db=30] \
        [probabilities=false] [device=cpu] [workers=N] [backend=torch|onnx|torchscript]

self_transition, prior_weight, estimate_tuning and transpositions default to the decoder
the model was saved with (the ready model's: docs/ready-model.md); give one to override it.

Without checkpoint=, the model that ships inside the package transcribes
(docs/ready-model.md). One .lab per audio file, in output= with the input's folder structure. Its name is the
audio file's with the extension replaced by .lab, every other dot kept
("01 - Mr. Brightside.wav" -> "01 - Mr. Brightside.lab", "song.v1.wav" -> "song.v1.lab");
where two inputs would get the same name ("a.wav" and "a.flac" in one folder, compared
regardless of case), each keeps its extension ("a.wav.lab", "a.flac.lab"), and
chordexp.evaluate pairs those with the reference "a.lab". Each .lab starts with the line
"# chordexp prediction of <audio file>" (a comment to mir_eval); predict replaces only
files carrying that mark and refuses, before writing anything, to replace any other file
(a reference .lab beside the audio when output= is the input folder).

The Python API does the same for arrays::

    from chordexp.inference import ChordRecognizer

    recognizer = ChordRecognizer.from_checkpoint("outputs/.../checkpoints/best.pt")
    segments = recognizer.transcribe(audio, sample_rate)   # [(start, end, "C:maj"), ...]
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from chordexp.audio_names import find_audio_files
from chordexp.cli import main_guard, parse_args
from chordexp.decode import DECODER_DEFAULTS, decoder_problem, given_decoder
from chordexp.errors import UsageError

USAGE = __doc__.split("The Python API")[0].strip()


@dataclass
class PredictArgs:
    checkpoint: Optional[str] = None  # null: the ready model inside the package
    input: str = "???"
    output: str = "???"
    # decoder settings (chordexp.decode.DecoderSettings); null: the model's saved decoder
    self_transition: Optional[float] = None
    prior_weight: Optional[float] = None
    estimate_tuning: Optional[bool] = None
    transpositions: Optional[int] = None  # also hear it 1..N semitones up and down, average (0: off)
    silence_db: Optional[float] = DECODER_DEFAULTS.silence_db  # frames this far below the loudest are N (null: off)
    probabilities: bool = False
    device: str = "cpu"
    progress: bool = True
    workers: Optional[int] = (
        None  # processes decoding (and analysing) ahead (null: one per core above 2 cores; 0: none)
    )
    backend: Optional[str] = None  # torch | onnx | torchscript (null: by the file; see docs/export.md)


def check_numbers(args: PredictArgs) -> None:
    """UsageError for a number that cannot work: ``silence_db`` must be null (the gate
    off) or a finite number > 0 (NaN would turn the gate off unseen, a negative value
    makes every frame N); the decoder's settings must keep their rules (``DECODER_RULES``)."""
    if args.silence_db is not None and not (math.isfinite(args.silence_db) and args.silence_db > 0):
        raise UsageError(
            f"silence_db={args.silence_db} must be a finite number of dB > 0 (frames that far below "
            f"the loudest are N), or null to turn the gate off"
        )
    if args.workers is not None and args.workers < 0:
        raise UsageError(
            f"workers={args.workers} must be >= 0 (0: everything in this process), or null for one per core (none on 2 cores or fewer)"
        )
    problem = decoder_problem(given_decoder(args))
    if problem:
        raise UsageError(f"{problem}, or null for the checkpoint's")


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(PredictArgs, sys.argv[1:] if argv is None else argv)
    check_numbers(args)
    input_path = Path(args.input)
    find_audio_files(input_path)  # bad input fails before the model loads
    from chordexp.inference import ChordRecognizer, check_finite_weights, transcribe_files
    from chordexp.inference.backends import infer_backend, load_recognizer
    from chordexp.inference.packaged_model import ready_model

    if args.checkpoint is None:
        args.checkpoint = str(ready_model())
    backend = infer_backend(args.checkpoint, args.backend)
    decoder = given_decoder(args)  # the rest: the model's saved decoder
    if backend == "torch":
        recognizer = ChordRecognizer.from_checkpoint(
            args.checkpoint, device=args.device, silence_db=args.silence_db, **decoder
        )
        check_finite_weights(recognizer, args.checkpoint)
    else:  # an exported model (chordexp.export)
        recognizer = load_recognizer(
            args.checkpoint, backend, device=args.device, silence_db=args.silence_db, **decoder
        )
    failures = transcribe_files(
        recognizer, input_path, Path(args.output), args.probabilities, args.progress, workers=args.workers
    )
    if failures:
        raise UsageError(f"{failures} file(s) under {input_path} could not be transcribed (see above)")
    return 0


def cli() -> None:
    """``chordexp-predict`` and ``python -m chordexp.predict``: :func:`main` under ``main_guard``
    (``--help``, one-line errors)."""
    main_guard(main, USAGE)


if __name__ == "__main__":
    cli()
