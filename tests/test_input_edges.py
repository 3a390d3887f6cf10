"""Edges found by the red team: a byte-order mark in a .lab, empty lists given to
tune_decoder, NaN weights given to tune_decoder."""

from __future__ import annotations

import pytest
import soundfile
import torch

from chordexp.errors import UsageError
from chordexp.labfile import load_lab
from chordexp.training.checkpoint import CheckpointError
from chordexp.tune_decoder import main as tune_decoder
from tests.test_predict import chord_audio, write_tiny_checkpoint


def test_a_lab_with_a_utf8_byte_order_mark_reads_like_one_without(tmp_path):
    plain, marked = tmp_path / "a.lab", tmp_path / "b.lab"
    text = "0.000 1.500 C:maj\n1.500 3.000 A:min\n"
    plain.write_text(text, encoding="utf-8")
    marked.write_text(text, encoding="utf-8-sig")
    assert marked.read_bytes()[:3] == b"\xef\xbb\xbf"
    (a_intervals, a_labels), (b_intervals, b_labels) = load_lab(plain), load_lab(marked)
    assert a_labels == b_labels == ["C:maj", "A:min"] and (a_intervals == b_intervals).all()


@pytest.mark.parametrize("key", ["self_transitions", "prior_weights", "estimate_tuning"])
def test_tune_decoder_refuses_an_empty_list_before_any_work(tmp_path, key):
    with pytest.raises(UsageError, match=f"{key}: an empty list") as error:
        tune_decoder([f"checkpoint={tmp_path / 'absent.pt'}", f"songs={tmp_path}", f"{key}=[]"])
    assert "\n" not in str(error.value)


def test_tune_decoder_refuses_a_checkpoint_of_nan_weights(tmp_path):
    path = write_tiny_checkpoint(tmp_path)
    state = torch.load(path, weights_only=True)
    first = next(k for k, v in state["model"].items() if torch.is_floating_point(v))
    state["model"][first] = torch.full_like(state["model"][first], float("nan"))
    torch.save(state, path)
    (tmp_path / "songs").mkdir()
    soundfile.write(tmp_path / "songs" / "s.wav", chord_audio(2.0, 16000), 16000)
    (tmp_path / "songs" / "s.lab").write_text("0.0 2.0 C:maj\n")
    with pytest.raises(CheckpointError, match="NaN or inf"):
        tune_decoder([f"checkpoint={path}", f"songs={tmp_path / 'songs'}"])


def test_an_existing_path_of_the_wrong_kind_is_not_called_missing(tmp_path):
    from chordexp.data.collection_check import check_collection
    from chordexp.scoring import find_labs
    from chordexp.training.checkpoint import load_checkpoint_file

    lab = tmp_path / "a.lab"
    lab.write_text("0 1 C:maj\n")
    with pytest.raises(UsageError, match="a file, not a folder of .lab files"):
        find_labs(lab, "predictions")
    with pytest.raises(UsageError, match="a file, not a folder of songs"):
        check_collection(lab)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"a folder, not a checkpoint file \(the run's model is .*best.pt\)"):
        load_checkpoint_file(run)
