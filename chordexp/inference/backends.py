"""Transcription with an exported model (``chordexp.export``): onnxruntime or ``torch.jit``.

``predict checkpoint=MODEL.onnx`` (or a TorchScript file) gets an
:class:`ExportedRecognizer`: the ``ChordRecognizer`` pipeline (resampling with soxr,
tuning estimate, silence gate, HMM decoding) around the exported graph instead of the
PyTorch model, with the decoder settings stored in the file. So the ``.lab`` files
are those of the PyTorch path, and the file is all that is needed.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from chordexp.audio import AudioError
from chordexp.decode import DECODER_DEFAULTS, DecoderSettings
from chordexp.errors import UsageError
from chordexp.inference.export_format import EXTRA_FILE, METADATA_KEY, ExportError, parse_metadata
from chordexp.inference.recognizer import ChordRecognizer

BACKENDS = ("torch", "onnx", "torchscript")


def torchscript_metadata(path: Path) -> Optional[str]:
    """The ``chordexp.json`` inside a TorchScript archive at ``path``, else None (also
    for training checkpoints, zip files too)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/extra/" + EXTRA_FILE)]
            return archive.read(names[0]).decode("utf-8") if names else None
    except (OSError, zipfile.BadZipFile):
        return None


def infer_backend(path: str | Path, backend: Optional[str]) -> str:
    """``backend`` if given (checked), else by the file: ``.onnx`` -> onnx, a TorchScript
    archive carrying chordexp's metadata -> torchscript, anything else -> torch."""
    if backend is not None:
        if backend not in BACKENDS:
            raise UsageError(f"backend={backend}: unknown backend; choose one of {', '.join(BACKENDS)}")
        return backend
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return "onnx"
    return "torchscript" if path.is_file() and torchscript_metadata(path) is not None else "torch"


class OnnxModel:
    """An exported ``.onnx`` run by onnxruntime on the CPU."""

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise UsageError("backend=onnx needs onnxruntime: pip install 'chordexp[export]'") from None

        try:
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3  # errors only: its constant-folding notes are not the user's business
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own types for unreadable files
            raise ExportError(f"checkpoint {path}: not a readable ONNX model ({first_line(error)})") from None
        meta = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if meta is None:
            raise ExportError(
                f"checkpoint {path}: an ONNX model without chordexp's metadata (not written by chordexp.export)"
            )
        self.metadata = parse_metadata(path, meta)

    def __call__(self, audio: np.ndarray, cents: float) -> Dict[str, np.ndarray]:
        outputs = self.session.run(
            None,
            {"audio": audio[None].astype(np.float32, copy=False), "tuning_cents": np.asarray(cents, dtype=np.float32)},
        )
        return {name: out[0] for name, out in zip(self.metadata["outputs"], outputs)}


class TorchScriptModel:
    """An exported TorchScript file run by ``torch.jit``."""

    def __init__(self, path: Path, device: str = "cpu") -> None:
        extra = {EXTRA_FILE: ""}
        try:
            self.module = torch.jit.load(str(path), map_location=device, _extra_files=extra).eval()
        except Exception as error:  # torch raises RuntimeError/ValueError for foreign files
            raise ExportError(f"checkpoint {path}: not a readable TorchScript model ({first_line(error)})") from None
        if not extra[EXTRA_FILE]:
            raise ExportError(
                f"checkpoint {path}: a TorchScript model without chordexp's metadata (not written by chordexp.export)"
            )
        self.metadata = parse_metadata(path, extra[EXTRA_FILE])
        self.device = device

    def __call__(self, audio: np.ndarray, cents: float) -> Dict[str, np.ndarray]:
        with torch.inference_mode():
            x = torch.as_tensor(audio, dtype=torch.float32, device=self.device)[None]
            outputs = self.module(x, torch.tensor(float(cents), device=self.device))
        return {name: out[0].float().cpu().numpy() for name, out in zip(self.metadata["outputs"], outputs)}


class ExportedRecognizer(ChordRecognizer):
    """``ChordRecognizer`` with an exported graph in place of the PyTorch model."""

    def __init__(
        self,
        exported,
        self_transition: float = DECODER_DEFAULTS.self_transition,
        silence_db: float | None = DECODER_DEFAULTS.silence_db,
        type_prior=None,
        prior_weight: float = DECODER_DEFAULTS.prior_weight,
        estimate_tuning: bool = DECODER_DEFAULTS.estimate_tuning,
        transpositions: int = DECODER_DEFAULTS.transpositions,
    ) -> None:
        meta = exported.metadata
        self.exported = exported
        self.model = None
        self.device = "cpu"
        self.self_transition = self_transition
        self.silence_db = silence_db
        self.sample_rate = int(meta["sample_rate"])
        self.type_log_prior = None if type_prior is None else np.log(np.asarray(type_prior, dtype=np.float64))
        self.prior_weight = float(prior_weight)
        self.estimate_tuning = bool(estimate_tuning)
        self.transpositions = int(transpositions)

    @property
    def frame_rate(self) -> float:
        return float(self.exported.metadata["frame_rate"])

    @property
    def hop_length(self) -> int:
        return int(self.exported.metadata["hop_length"])

    def tuned_posteriors(self, audio: np.ndarray, cents: float) -> Dict[str, np.ndarray]:
        shortest = int(self.exported.metadata.get("min_samples", 1))
        if len(audio) < shortest:
            raise AudioError(
                f"{len(audio)} sample(s) at {self.sample_rate} Hz: shorter than the exported model "
                f"takes ({shortest} samples, {shortest / self.sample_rate:.2f} s); nothing written for it"
            )
        logits = self.exported(np.asarray(audio, dtype=np.float32), cents)
        return {k: torch.log_softmax(torch.from_numpy(v).float(), dim=-1).numpy() for k, v in logits.items()}


def load_recognizer(
    path: str | Path,
    backend: str,
    self_transition: Optional[float] = None,
    device: str = "cpu",
    silence_db: float | None = DECODER_DEFAULTS.silence_db,
    prior_weight: Optional[float] = None,
    estimate_tuning: Optional[bool] = None,
    transpositions: Optional[int] = None,
) -> ExportedRecognizer:
    """An :class:`ExportedRecognizer` for the file at ``path``; settings left None come
    from the decoder settings stored in the file."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"checkpoint {path}: no such file")
    if backend == "onnx":
        if device != "cpu":
            raise UsageError(f"device={device}: backend=onnx runs on the CPU only (leave device=cpu)")
        exported: Any = OnnxModel(path)
    else:
        exported = TorchScriptModel(path, device)
    saved = exported.metadata.get("decoder") or {}
    settings = DecoderSettings.of_model(
        saved,
        self_transition=self_transition,
        prior_weight=prior_weight,
        estimate_tuning=estimate_tuning,
        transpositions=transpositions,
    )
    return ExportedRecognizer(
        exported,
        silence_db=silence_db,
        type_prior=saved.get("type_prior"),
        **settings.saved(),
    )


def first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:160] if lines else type(error).__name__
