"""Training checkpoint -> a self-contained model file (ONNX or TorchScript), or a slim checkpoint.

    python -m chordexp.export checkpoint=PATH format=onnx|torchscript|checkpoint output=FILE \
        [self_transition=S] [prior_weight=W] [estimate_tuning=true|false] [transpositions=N]

The file holds the whole model, front end included: mono audio samples at the model's
rate in (``audio``, shape ``(1, samples)`` for ONNX, ``(batch, samples)`` for
TorchScript; any length from a quarter of a second), and the tuning offset in cents (``tuning_cents``, 0 for
A440); frame logits out (``chord_type``, ``root``, ``bass_note``: ``(batch, frames,
classes)``). What inference needs beside the weights (sample rate, frame rate, heads,
chord types, the decoder settings the run saved) is stored in the file as JSON: the
ONNX metadata entry ``chordexp``, the TorchScript extra file ``chordexp.json``.
``python -m chordexp.predict checkpoint=FILE ...`` transcribes with it (onnxruntime
or ``torch.jit``). ``format=checkpoint`` writes the training checkpoint without its
resume-only state (optimizer, scheduler, RNG: a third of the size), for ``predict`` and
``finetune.init_from``; the package's ready model is one. An existing output is
refused; the file is written atomically. The decoder settings given replace the ones the
run saved (each left out is kept): the ready model's were chosen on the development sets
after training (docs/ready-model.md).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from chordexp.cli import main_guard, parse_args
from chordexp.decode import decoder_problem, given_decoder
from chordexp.errors import UsageError

USAGE = __doc__.strip()
FORMATS = ("onnx", "torchscript", "checkpoint")


@dataclass
class ExportArgs:
    checkpoint: str = "???"
    format: str = "???"
    output: str = "???"
    # decoder settings written with the model (chordexp.decode.DecoderSettings); null: the checkpoint's
    self_transition: Optional[float] = None
    prior_weight: Optional[float] = None
    estimate_tuning: Optional[bool] = None
    transpositions: Optional[int] = None


def check_args(args: ExportArgs) -> None:
    problem = decoder_problem(given_decoder(args))
    if problem:
        raise UsageError(f"{problem}, or null to keep the checkpoint's")
    if args.format not in FORMATS:
        raise UsageError(f"format={args.format}: unknown format; choose one of {', '.join(FORMATS)}")
    output = Path(args.output)
    if output.exists():
        raise UsageError(f"output={output}: already exists; nothing was written (remove it or choose another name)")
    if output.parent.exists() and not output.parent.is_dir():
        raise UsageError(f"output={output}: {output.parent} is not a folder")
    existing = next((p for p in (output.parent, *output.parent.parents) if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"output={output}: {existing} is not writable; nothing was exported (choose another place)")
    if not Path(args.checkpoint).is_file():
        raise UsageError(f"checkpoint={args.checkpoint}: no such file")


def check_installed(fmt: str) -> None:
    """UsageError naming the extra when the ONNX exporter's packages are missing."""
    if fmt == "onnx":
        missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
        if missing:
            raise UsageError(f"format=onnx needs {' and '.join(missing)}: pip install 'chordexp[export]'")


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(ExportArgs, sys.argv[1:] if argv is None else argv)
    check_args(args)
    check_installed(args.format)
    from chordexp.inference.export_writer import export_model  # torch: after the arguments are checked

    output = export_model(args.checkpoint, args.format, args.output, given_decoder(args))
    print(f"{args.checkpoint} -> {output} ({args.format}, {output.stat().st_size / 1e6:.1f} MB)")
    return 0


def cli() -> None:
    """``chordexp-export`` and ``python -m chordexp.export``: :func:`main` under ``main_guard``
    (``--help``, one-line errors)."""
    main_guard(main, USAGE)


if __name__ == "__main__":
    cli()
