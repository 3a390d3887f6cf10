"""Checkpoints are data, not code: a pickle with a payload is refused by every loader.

The crafted file is a torch ``.pt`` whose pickle calls ``open(MARKER, "w")`` when
unpickled; with ``weights_only=False`` that creates the marker file (the first test
shows the payload is live). Every way the project loads a checkpoint must refuse it
with one line and leave no marker behind.
"""

from __future__ import annotations

import re
from pathlib import Path

import fault_files as ff
import pytest
import torch

REFUSED = r"refused: it holds Python objects beyond tensors and plain containers \(GLOBAL (builtins|io)\.open\)"
PACKAGE = Path(__file__).resolve().parents[1] / "chordexp"


@pytest.fixture
def evil(tmp_path) -> Path:
    path = tmp_path / "evil.pt"
    path.write_bytes(ff.evil_checkpoint_bytes(tmp_path / "MARKER"))
    return path


def test_the_crafted_file_runs_its_payload_when_loaded_unsafely(tmp_path):
    path = tmp_path / "control.pt"
    path.write_bytes(ff.evil_checkpoint_bytes(tmp_path / "CONTROL_MARKER"))
    torch.load(path, weights_only=False)  # what the project never does
    assert (tmp_path / "CONTROL_MARKER").exists()


def _load_file(path: Path) -> None:
    from chordexp.training.checkpoint import load_checkpoint_file

    load_checkpoint_file(path)


def _trainer_load(path: Path) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    from chordexp.model import ChordRecognitionModel
    from chordexp.training import Trainer, TrainingConfig

    loader = DataLoader(TensorDataset(torch.randn(2, ff.SR)), batch_size=2)
    model = ChordRecognitionModel(sample_rate=ff.SR, d_model=32, num_blocks=1, num_heads=2, channels=4)
    Trainer(
        model, loader, loader, TrainingConfig(num_epochs=1, device="cpu", checkpoint_dir=str(path.parent / "ck"))
    ).load_checkpoint(path)


def _recognizer(path: Path) -> None:
    from chordexp.inference import ChordRecognizer

    ChordRecognizer.from_checkpoint(path)


@pytest.mark.parametrize(
    "load",
    [_load_file, _trainer_load, _recognizer],
    ids=["load_checkpoint_file", "Trainer.load_checkpoint", "ChordRecognizer.from_checkpoint"],
)
def test_python_loaders_refuse_the_payload(evil, load):
    from chordexp.training.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match=REFUSED) as caught:
        load(evil)
    assert "\n" not in str(caught.value)
    assert not (evil.parent / "MARKER").exists()


def test_predict_refuses_the_payload_with_one_line(evil, tmp_path):
    import soundfile

    soundfile.write(tmp_path / "ok.wav", ff.chord_audio(1.0), ff.SR)
    done = ff.run_module(
        "chordexp.predict",
        [f"checkpoint={evil}", f"input={tmp_path / 'ok.wav'}", f"output={tmp_path / 'out'}"],
        cwd=tmp_path,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(REFUSED, lines[0]), done.stderr
    assert not (tmp_path / "MARKER").exists()


def test_resume_refuses_a_run_folder_with_a_crafted_last_pt(evil, tmp_path, compose_cfg):
    config = ff.composed_run_config(compose_cfg, "experiment=smoke", "data=dummy")
    folder = ff.fake_run_folder(tmp_path / "run", config, evil.read_bytes())
    done = ff.run_module("chordexp.run", [f"resume={folder}"], cwd=tmp_path)
    assert done.returncode == 2
    errors = re.findall(r"\[ERROR\] - (.*)", done.stdout + done.stderr)
    assert len(errors) == 1 and re.search(REFUSED, errors[0]), done.stdout[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "MARKER").exists()


def test_every_torch_load_in_the_package_is_weights_only():
    calls = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for match in re.finditer(r"torch\.load\(", text):
            depth, end = 0, match.end() - 1
            for end in range(match.end() - 1, len(text)):  # to the matching parenthesis
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            calls.append((path.name, text[match.start() : end + 1]))
    assert calls, "no torch.load found: the scan is broken"
    assert all("weights_only=True" in call for _, call in calls), calls


def test_no_config_string_is_ever_evaluated():
    """Configs are data: no eval/exec anywhere in the package (``model.eval()`` is fine)."""
    offenders = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in PACKAGE.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"(?<![\w.])(eval|exec|compile)\(", line.split("#")[0])
    ]
    assert offenders == []


def test_a_file_that_is_plainly_not_a_checkpoint_is_named_for_what_it_is(tmp_path):
    import pytest as _pytest
    import torch as _torch

    from chordexp.training.checkpoint import CheckpointError, load_checkpoint_file

    text = tmp_path / "notes.pt"
    text.write_text("these are my notes\n")
    scripted = tmp_path / "model.ts"
    _torch.jit.save(_torch.jit.script(_torch.nn.Linear(2, 2)), str(scripted))
    onnx_like = tmp_path / "model.onnx"
    onnx_like.write_bytes(b"\x08\x08\x12\x07pytorch\x1a\x032.0" + bytes(64))
    for path, kind in ((text, "a text file"), (scripted, "a TorchScript model"), (onnx_like, "an ONNX model")):
        with _pytest.raises(CheckpointError, match=f"{kind}.*not a chordexp training checkpoint") as error:
            load_checkpoint_file(path)
        assert "unpickling" not in str(error.value)
