"""Export: checkpoint -> ONNX / TorchScript with the front end inside; predict with them."""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import soundfile
import torch
from torch.utils.data import DataLoader, TensorDataset

from chordexp import export, predict
from chordexp.cli import main_guard
from chordexp.inference.backends import infer_backend, load_recognizer
from chordexp.inference.export_format import EXTRA_FILE
from chordexp.model import ChordRecognitionModel
from chordexp.training import Trainer, TrainingConfig

SR = 16000
#: lengths in samples: shorter than one attention window, a few windows, many windows
LENGTHS = (4001, 3 * SR + 5, 11 * SR)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny 16 kHz song-mode checkpoint with decoder settings saved (tuning estimate on)."""
    folder = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    model = ChordRecognitionModel(sample_rate=SR, d_model=32, num_blocks=1, num_heads=2, channels=4, frame_outputs=True)
    data = TensorDataset(torch.randn(4, SR), torch.zeros(4, dtype=torch.long))
    loader = DataLoader(data, batch_size=2)
    trainer = Trainer(model, loader, loader, TrainingConfig(num_epochs=1, checkpoint_dir=str(folder)))
    trainer.checkpoint_extra = {
        "decoder": {"self_transition": 0.9, "prior_weight": 0.5, "estimate_tuning": True, "type_prior": [1 / 32] * 32}
    }
    path = folder / "model.pt"
    trainer.save_checkpoint(path)
    return path, model.eval()


@pytest.fixture(scope="module")
def exported(checkpoint):
    """The checkpoint, its model, and its ONNX and TorchScript exports written by the CLI's
    main (the ONNX export is most of this file's time)."""
    path, model = checkpoint
    paths = {"onnx": path.with_name("model.onnx"), "torchscript": path.with_name("model.ts.pt")}
    for fmt, target in paths.items():
        assert export.main([f"checkpoint={path}", f"format={fmt}", f"output={target}"]) == 0
    return path, model, paths


def reference_logits(model, audio, cents):
    with torch.no_grad(), model.frontend.tuned(cents):
        return {k: v[0].numpy() for k, v in model.forward_frames(torch.from_numpy(audio)[None]).items()}


def test_onnx_logits_equal_pytorch_at_several_lengths_and_tunings(exported):
    _, model, paths = exported
    session = onnxruntime.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["audio", "tuning_cents"]
    rng = np.random.default_rng(0)
    for length in LENGTHS:
        audio = (0.1 * rng.standard_normal(length)).astype(np.float32)
        for cents in (0.0, -37.0):
            ref = reference_logits(model, audio, cents)
            out = session.run(None, {"audio": audio[None], "tuning_cents": np.array(cents, dtype=np.float32)})
            for name, got in zip(["chord_type", "root", "bass_note"], out):
                assert got.shape == (1,) + ref[name].shape
                assert np.abs(got[0] - ref[name]).max() < 1e-4, (length, cents, name)


def test_torchscript_logits_equal_pytorch_at_several_lengths(exported):
    _, model, paths = exported
    extra = {EXTRA_FILE: ""}
    module = torch.jit.load(str(paths["torchscript"]), _extra_files=extra)
    assert json.loads(extra[EXTRA_FILE])["sample_rate"] == SR
    rng = np.random.default_rng(1)
    for length in LENGTHS:
        audio = (0.1 * rng.standard_normal(length)).astype(np.float32)
        ref = reference_logits(model, audio, 23.0)
        with torch.no_grad():
            out = module(torch.from_numpy(audio)[None], torch.tensor(23.0))
        for name, got in zip(["chord_type", "root", "bass_note"], out):
            assert got.shape == (1,) + ref[name].shape
            assert np.abs(got[0].numpy() - ref[name]).max() < 1e-4, (length, name)


def test_onnx_file_carries_what_inference_needs(exported):
    _, model, paths = exported
    meta = {p.key: p.value for p in onnx.load(str(paths["onnx"])).metadata_props}
    info = json.loads(meta["chordexp"])
    assert info["sample_rate"] == SR and info["hop_length"] == model.frontend.hop_length
    assert info["frame_rate"] == pytest.approx(model.frame_rate)
    assert info["heads"] == {"chord_type": 32, "root": 12, "bass_note": 12}
    assert info["decoder"]["self_transition"] == 0.9 and info["decoder"]["estimate_tuning"] is True
    assert len(info["chord_types"]) == 32 and info["source"] == "model.pt"


def test_backend_is_inferred_from_the_file(exported):
    checkpoint, _, paths = exported
    assert infer_backend(paths["onnx"], None) == "onnx"
    assert infer_backend(paths["torchscript"], None) == "torchscript"
    assert infer_backend(checkpoint, None) == "torch"
    assert infer_backend(checkpoint, "onnx") == "onnx"


def test_predict_with_onnx_and_torchscript_writes_the_same_labs_as_pytorch(exported, tmp_path):
    """Songs of several lengths at other rates than the model's (resampled by predict)
    and out of tune (the tuning estimate is on in the checkpoint's decoder settings)."""
    checkpoint, _, paths = exported
    songs = tmp_path / "songs"
    songs.mkdir()
    for name, seconds, rate in (("a", 2.3, 44100), ("b", 7.0, 22050), ("c", 4.5, SR)):
        t = np.arange(int(seconds * rate)) / rate
        freqs = (261.6, 329.6, 392.0) if name != "b" else (220.0 * 1.01, 277.2 * 1.01, 329.6 * 1.01)
        audio = sum(0.2 * np.sin(2 * np.pi * f * t) for f in freqs) + 0.01 * np.sin(2 * np.pi * 3 * t)
        soundfile.write(songs / f"{name}.wav", audio.astype(np.float32), rate)
    outputs = {}
    for backend, model_file in (("torch", checkpoint), ("onnx", paths["onnx"]), ("torchscript", paths["torchscript"])):
        out = tmp_path / backend
        assert (
            predict.main(
                [
                    f"checkpoint={model_file}",
                    f"input={songs}",
                    f"output={out}",
                    f"backend={backend}",
                    "probabilities=true",
                    "progress=false",
                    "workers=0",
                ]
            )
            == 0
        )
        outputs[backend] = out
    for name in ("a", "b", "c"):
        torch_lab = (outputs["torch"] / f"{name}.lab").read_text()
        assert len(torch_lab.splitlines()) > 1
        torch_probs = np.load(outputs["torch"] / f"{name}.probs.npz")
        for backend in ("onnx", "torchscript"):
            assert (outputs[backend] / f"{name}.lab").read_text() == torch_lab, (backend, name)
            probs = np.load(outputs[backend] / f"{name}.probs.npz")
            assert np.abs(probs["chord_type"] - torch_probs["chord_type"]).max() < 1e-4


def test_exported_recognizer_uses_the_saved_decoder_settings(exported):
    _, _, paths = exported
    recognizer = load_recognizer(paths["onnx"], "onnx")
    assert recognizer.self_transition == 0.9 and recognizer.prior_weight == 0.5 and recognizer.estimate_tuning
    assert load_recognizer(paths["torchscript"], "torchscript", self_transition=0.5).self_transition == 0.5


def run_guarded(module, argv, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["prog", *argv])
    with pytest.raises(SystemExit) as stop:
        main_guard(module.main, module.USAGE)
    err = capsys.readouterr().err.strip()
    return stop.value.code, err


@pytest.mark.parametrize("case", ["missing checkpoint", "unknown format", "existing output"])
def test_bad_export_input_is_one_line_and_exit_2(case, checkpoint, tmp_path, monkeypatch, capsys):
    checkpoint, _ = checkpoint
    existing = tmp_path / "taken.onnx"
    existing.write_bytes(b"keep me")
    argv = {
        "missing checkpoint": [f"checkpoint={tmp_path / 'nope.pt'}", "format=onnx", f"output={tmp_path / 'm.onnx'}"],
        "unknown format": [f"checkpoint={checkpoint}", "format=tflite", f"output={tmp_path / 'm.onnx'}"],
        "existing output": [f"checkpoint={checkpoint}", "format=onnx", f"output={existing}"],
    }[case]
    code, err = run_guarded(export, argv, monkeypatch, capsys)
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert {"missing checkpoint": "nope.pt", "unknown format": "tflite", "existing output": "already exists"}[
        case
    ] in err
    assert existing.read_bytes() == b"keep me"
    assert not (tmp_path / "m.onnx").exists()


def test_predict_with_a_bad_backend_or_model_file_is_one_line(checkpoint, tmp_path, monkeypatch, capsys):
    checkpoint, _ = checkpoint
    soundfile.write(tmp_path / "a.wav", np.zeros(SR, dtype=np.float32), SR)
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    for argv, expected in (
        ([f"checkpoint={checkpoint}", "backend=tflite"], "backend=tflite"),
        ([f"checkpoint={bogus}"], "bogus.onnx"),
        ([f"checkpoint={tmp_path / 'missing.onnx'}"], "missing.onnx"),
    ):
        code, err = run_guarded(
            predict, [*argv, f"input={tmp_path / 'a.wav'}", f"output={tmp_path / 'out'}"], monkeypatch, capsys
        )
        assert code == 2 and len(err.splitlines()) == 1 and expected in err, err


def test_audio_shorter_than_the_onnx_graph_takes_is_one_line(exported, tmp_path, monkeypatch, capsys):
    _, _, paths = exported
    soundfile.write(tmp_path / "short.wav", np.zeros(SR // 10, dtype=np.float32), SR)
    code, err = run_guarded(
        predict,
        [f"checkpoint={paths['onnx']}", f"input={tmp_path / 'short.wav'}", f"output={tmp_path / 'out'}"],
        monkeypatch,
        capsys,
    )
    assert code == 2 and len(err.splitlines()) == 1 and "shorter than the exported model takes" in err, err
    assert not (tmp_path / "out" / "short.lab").exists()


def test_the_default_song_model_exports_to_onnx_and_runs_at_any_length(tmp_path):
    """The main job's architecture (15-s attention windows, 22.05 kHz): the ONNX graph
    takes one window, several, and a 40-s song (the exporter once fixed the window
    count at one, and every input longer than a window failed in onnxruntime)."""
    from chordexp.inference.export_writer import onnx_bytes

    torch.manual_seed(0)
    model = ChordRecognitionModel(sample_rate=22050, context_seconds=15.0, frame_outputs=True).eval()
    path = tmp_path / "default.onnx"
    path.write_bytes(onnx_bytes(model, {"sample_rate": 22050}))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for seconds in (2.0, 15.0, 40.0):
        audio = (0.1 * rng.standard_normal(int(seconds * 22050))).astype(np.float32)
        ref = reference_logits(model, audio, -12.0)
        out = session.run(None, {"audio": audio[None], "tuning_cents": np.array(-12.0, dtype=np.float32)})
        for name, got in zip(["chord_type", "root", "bass_note"], out):
            assert got.shape == (1,) + ref[name].shape
            assert np.abs(got[0] - ref[name]).max() < 1e-3, (seconds, name)


@pytest.mark.parametrize(
    "change, key",
    [
        ({"sample_rate": 0}, "sample_rate"),
        ({"frame_rate": -5}, "frame_rate"),
        ({"hop_length": 0}, "hop_length"),
        ({"inputs": ["x", "y"]}, "inputs"),
    ],
)
def test_an_exported_model_with_impossible_metadata_is_refused(exported, tmp_path, change, key):
    from chordexp.inference.export_format import METADATA_KEY, ExportError

    _, _, paths = exported
    proto = onnx.load(str(paths["onnx"]))
    entry = next(e for e in proto.metadata_props if e.key == METADATA_KEY)
    entry.value = json.dumps({**json.loads(entry.value), **change})
    edited = tmp_path / "edited.onnx"
    onnx.save(proto, str(edited))
    with pytest.raises(ExportError, match=f"metadata {key}=.* must be") as error:
        load_recognizer(edited, "onnx")
    assert "\n" not in str(error.value)


def test_an_unwritable_output_folder_is_refused_before_the_export(checkpoint, tmp_path, monkeypatch, capsys):
    """Checked first (it failed after the work, naming a temporary file); the tests run as
    root, whom no permission stops, so the folder's answer is given here."""
    checkpoint, _ = checkpoint
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = export.os.access
    monkeypatch.setattr(export.os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    code, err = run_guarded(
        export, [f"checkpoint={checkpoint}", "format=onnx", f"output={locked / 'm.onnx'}"], monkeypatch, capsys
    )
    assert (
        code == 2
        and err
        == f"error: output={locked / 'm.onnx'}: {locked} is not writable; nothing was exported (choose another place)"
    )
