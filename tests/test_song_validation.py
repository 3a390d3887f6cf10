"""Song-level validation equals predict + evaluate on the same files; decoder priors
are the training labels' statistics."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from chordexp.data import SyntheticSongDataset
from chordexp.decode import estimate_decoder_priors
from chordexp.inference import ChordRecognizer, transcribe_files
from chordexp.inference.song_validation import SongValidator
from chordexp.labfile import write_lab
from chordexp.model import ChordRecognitionModel
from chordexp.scoring import SONG_METRICS, evaluate_dirs


def test_song_validation_equals_chordexp_evaluate_on_the_same_files(tmp_path):
    dataset = SyntheticSongDataset(size=2, split="val", seed=1, sample_rate=11025, clip_seconds=5.0)
    torch.manual_seed(0)
    model = ChordRecognitionModel(
        sample_rate=11025, d_model=32, num_blocks=1, channels=4, context_seconds=5.0, frame_outputs=True
    ).eval()
    decoder = {"self_transition": 0.9, "type_prior": list(np.full(32, 1 / 32)), "prior_weight": 0.5}
    validator = SongValidator.from_dataset(dataset, count=2, seconds=12.0, decoder=decoder)
    scores = validator(model)
    assert set(scores) == set(SONG_METRICS)

    songs, predictions = tmp_path / "songs", tmp_path / "predictions"
    songs.mkdir()
    for i in range(2):
        song = dataset.song(i, 12.0)
        sf.write(songs / f"song{i}.wav", song.audio, 11025, subtype="FLOAT")
        write_lab(songs / f"song{i}.lab", song.labelled(), decimals=6)
    recognizer = ChordRecognizer(model, **decoder)
    transcribe_files(recognizer, songs, predictions, progress=False, echo=lambda *_: None)
    result = evaluate_dirs(predictions, songs)
    for name in SONG_METRICS:
        assert scores[name] == pytest.approx(result["aggregate"][name] or 0.0, abs=2e-3), name


def test_decoder_priors_are_counted_from_valid_frames():
    chord_type = np.array([[1, 1, 1, 2, 2, 0], [3, 3, 3, 3, 0, 0]])
    root = np.array([[0, 0, 0, 0, 5, 0], [2, 2, 2, 2, 0, 0]])
    bass = np.zeros_like(root)
    mask = np.array([[True] * 6, [True, True, True, True, False, False]])
    priors = estimate_decoder_priors(chord_type, root, bass, mask)
    # valid pairs: 5 in the first row (changes at 2->3, 3->4 by root, 4->5), 3 in the second (none change)
    assert priors["self_transition"] == pytest.approx((2 + 3) / 8)
    counts = np.bincount([1, 1, 1, 2, 2, 0, 3, 3, 3, 3], minlength=32) + 1.0
    assert priors["type_prior"] == pytest.approx((counts / counts.sum()).tolist())
