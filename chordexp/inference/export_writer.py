"""Training checkpoint -> a self-contained model file (ONNX or TorchScript), as bytes.

The graph is :class:`~chordexp.inference.export_graph.PortableChordModel` (every length
and tuning in one file); the decoder settings and everything else inference needs go
in beside it as the description of ``chordexp.inference.export_format``. The file
format is described in ``python -m chordexp.export --help`` and docs/export.md.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch

from chordexp.atomic import atomic_write_bytes
from chordexp.chords import CHORD_TYPES
from chordexp.decode import DecoderSettings
from chordexp.errors import UsageError
from chordexp.inference.export_format import EXTRA_FILE, FORMAT_VERSION, METADATA_KEY
from chordexp.inference.export_graph import INPUT_NAMES, OUTPUT_NAMES, PortableChordModel
from chordexp.inference.recognizer import ChordRecognizer, check_finite_weights
from chordexp.model.chord_model import HEADS
from chordexp.training.checkpoint import load_checkpoint_file

#: the example input's length in seconds (any length runs afterwards)
EXAMPLE_SECONDS = 4.0
#: shortest input of an ONNX export, in seconds: ``torch.export`` proves the graph's
#: shape arithmetic for lengths from ~0.1 s up, and predict refuses shorter audio
MIN_SECONDS = 0.25
ONNX_OPSET = 18


def describe(model, decoder: Dict[str, Any]) -> Dict[str, Any]:
    """The JSON stored with an exported model: everything ``predict`` needs besides it."""
    fe = model.frontend
    settings = DecoderSettings.of_model(decoder)
    return {
        "format_version": FORMAT_VERSION,
        "sample_rate": int(model.sample_rate),
        "frame_rate": float(model.frame_rate),
        "hop_length": int(fe.hop_length),
        "min_samples": min_samples(model),
        "inputs": list(INPUT_NAMES),
        "outputs": list(OUTPUT_NAMES),
        "heads": {name: int(HEADS[name]) for name in OUTPUT_NAMES},
        "chord_types": [str(t) for t in CHORD_TYPES],
        "decoder": {
            **settings.saved(),
            "type_prior": None if decoder.get("type_prior") is None else [float(p) for p in decoder["type_prior"]],
        },
        "model_hparams": dict(model.hparams),
    }


def load_for_export(checkpoint: str):
    """(model in eval mode, saved decoder settings) of a training checkpoint."""
    recognizer = ChordRecognizer.from_checkpoint(checkpoint)
    check_finite_weights(recognizer, checkpoint)
    decoder = (load_checkpoint_file(checkpoint).get("extra") or {}).get("decoder") or {}
    return recognizer.model.eval(), dict(decoder)


def min_samples(model) -> int:
    return int(MIN_SECONDS * model.sample_rate)


def example_seconds(model) -> float:
    """Long enough for three attention windows: with one, the exporter fixes the window
    count at 1 (torch.export specialises sizes 0 and 1), and every longer input fails
    in a Reshape (the default 15-s model could not be used through ONNX)."""
    window = getattr(model, "context_frames", None)
    if not window:
        return EXAMPLE_SECONDS
    return max(EXAMPLE_SECONDS, 2.5 * float(window) / float(model.frame_rate))


def example_inputs(model):
    generator = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(1, int(example_seconds(model) * model.sample_rate), generator=generator)
    return audio, torch.tensor(0.0)


def onnx_bytes(model, metadata: Dict[str, Any]) -> bytes:
    """The model as ONNX (opset 18, dynamic ``samples``), metadata included.

    The dynamo exporter (``torch.export`` + onnxscript): it keeps the number of samples
    symbolic through the arithmetic on it and translates the FFTs; the TorchScript-based
    exporter has no ``fft_rfft``."""
    portable = PortableChordModel(model).eval()
    samples = torch.export.Dim("samples", min=min_samples(model))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            portable,
            example_inputs(model),
            dynamo=True,
            optimize=False,
            opset_version=ONNX_OPSET,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=({1: samples}, None),
            verbose=False,
        )
    assert program is not None  # dynamo=True returns the ONNXProgram
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    return proto.SerializeToString()


def torchscript_bytes(model, metadata: Dict[str, Any]) -> bytes:
    """The model traced (``torch.jit.trace``; sizes stay symbolic in the trace), with the
    metadata as the extra file ``chordexp.json``."""
    portable = PortableChordModel(model).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about sizes: they are traced
        traced = torch.jit.trace(portable, example_inputs(model), check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer, _extra_files={EXTRA_FILE: json.dumps(metadata)})
    return buffer.getvalue()


#: What a slim checkpoint keeps of a training checkpoint: enough to transcribe, to
#: fine-tune from and to know where it came from; the optimizer, scheduler and RNG
#: states (two thirds of the file) only serve ``resume=`` and are emptied.
SLIM_EMPTIED = ("optimizer", "scheduler", "rng", "scaler", "loader_rng")


def slim_checkpoint_bytes(checkpoint: str, decoder: Optional[Mapping[str, Any]] = None) -> bytes:
    """``checkpoint`` without its resume-only state (``SLIM_EMPTIED``) and without the
    training machine's checkpoint folder, still loadable by
    ``ChordRecognizer.from_checkpoint`` and ``finetune.init_from``; the ``decoder``
    settings given replace the saved ones."""
    load_for_export(checkpoint)  # refuses non-finite weights and checkpoints that build no model
    state = load_checkpoint_file(checkpoint)
    slim = {key: ({} if key in SLIM_EMPTIED else value) for key, value in state.items()}
    if decoder:
        extra = dict(slim.get("extra") or {})
        extra["decoder"] = {**(extra.get("decoder") or {}), **decoder}
        slim["extra"] = extra
    if isinstance(slim.get("config"), dict) and "checkpoint_dir" in slim["config"]:
        # where the run kept its checkpoints on the machine that trained it: nobody else's business
        slim["config"] = {**slim["config"], "checkpoint_dir": Path(str(slim["config"]["checkpoint_dir"])).name}
    buffer = io.BytesIO()
    torch.save(slim, buffer)
    return buffer.getvalue()


def export_model(checkpoint: str, fmt: str, output: str | Path, decoder: Optional[Mapping[str, Any]] = None) -> Path:
    """Write ``checkpoint``'s model as ``fmt`` to ``output`` (atomically), with the
    ``decoder`` settings given in place of the saved ones."""
    output = Path(output)
    if fmt == "checkpoint":
        data = slim_checkpoint_bytes(checkpoint, decoder)
    else:
        model, saved = load_for_export(checkpoint)
        metadata = describe(model, {**saved, **(decoder or {})})
        metadata["source"] = Path(checkpoint).name
        data = onnx_bytes(model, metadata) if fmt == "onnx" else torchscript_bytes(model, metadata)
    if output.exists():  # checked again: the export takes a while
        raise UsageError(f"output={output}: already exists; nothing was written (remove it or choose another name)")
    atomic_write_bytes(output, data)
    return output
