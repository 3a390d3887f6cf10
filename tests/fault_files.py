"""Files for the fault tests: good and bad audio, .lab files, checkpoints (real, truncated,
of another shape, crafted to run code) and run folders to resume.

Plain functions, imported by the test modules (``tests/`` is on ``sys.path`` there).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[1]
SR = 16000


def chord_audio(seconds: float, sr: int = SR) -> np.ndarray:
    """A C major triad of sine tones."""
    t = np.arange(int(seconds * sr)) / sr
    return sum(0.2 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)).astype(np.float32)


def write_song(folder: Path, name: str, lab: bytes, seconds: float = 4.0, audio: Optional[bytes] = None) -> Path:
    """``folder/name.wav`` (a chord, or the raw ``audio`` bytes) with ``folder/name.lab``."""
    folder.mkdir(parents=True, exist_ok=True)
    wav = folder / f"{name}.wav"
    if audio is None:
        soundfile.write(wav, chord_audio(seconds), SR)
    else:
        wav.write_bytes(audio)
    (folder / f"{name}.lab").write_bytes(lab)
    return wav


def checkpoint_bytes(**hparams) -> bytes:
    """A real training checkpoint of a tiny untrained 16 kHz ChordRecognitionModel."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from chordexp.model import ChordRecognitionModel
    from chordexp.training import Trainer, TrainingConfig
    from chordexp.training.checkpoint import serialize, training_state

    torch.manual_seed(0)
    options = dict(sample_rate=SR, d_model=32, num_blocks=1, num_heads=2, channels=4)
    options.update(hparams)
    model = ChordRecognitionModel(**options)
    loader = DataLoader(TensorDataset(torch.randn(2, SR)), batch_size=2)
    trainer = Trainer(model, loader, loader, TrainingConfig(num_epochs=1, device="cpu", checkpoint_dir="unused"))
    return serialize(training_state(trainer))


def other_shape_checkpoint_bytes() -> bytes:
    """A checkpoint whose weights do not fit the model its own hparams describe."""
    import torch

    from chordexp.training.checkpoint import serialize

    state = torch.load(io.BytesIO(checkpoint_bytes()), weights_only=True)
    state["model_hparams"] = dict(state["model_hparams"], d_model=48)
    return serialize(state)


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        import builtins

        return builtins.open, (self.marker, "w")


def evil_checkpoint_bytes(marker: Path) -> bytes:
    """A .pt that looks like a checkpoint and creates ``marker`` when loaded with
    ``weights_only=False`` (a pickle with a payload)."""
    import torch

    buffer = io.BytesIO()
    torch.save({"format_version": 1, "model": _Payload(marker), "epoch": 1}, buffer)
    return buffer.getvalue()


def composed_run_config(compose_cfg, *overrides: str) -> str:
    """The YAML a run saves as ``.hydra/config.yaml`` for ``overrides``."""
    from omegaconf import OmegaConf, open_dict

    cfg = compose_cfg(*overrides)
    with open_dict(cfg):
        del cfg["hydra"]
    return OmegaConf.to_yaml(cfg)


def fake_run_folder(folder: Path, config_yaml: str, last_pt: Optional[bytes]) -> Path:
    """A run folder as a killed run leaves it: its config and ``checkpoints/last.pt``."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(config_yaml)
    if last_pt is not None:
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "last.pt").write_bytes(last_pt)
    return folder


def cli_env(**extra: str) -> Dict[str, str]:
    """The environment of a CLI subprocess: one thread, no debug flags."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for name in ("HYDRA_FULL_ERROR", "CHORDEXP_DEBUG"):
        env.pop(name, None)
    env.update(extra)
    return env


def run_module(
    module: str, args: List[str], cwd: Path, env: Optional[Mapping[str, str]] = None, timeout: float = 180
) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS`` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=dict(env or cli_env()),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def kill_process(process: subprocess.Popen) -> None:
    """SIGKILL ``process`` (which we started), unless it has ended, and wait for it."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
