"""Long recordings streamed through the model (``chordexp.inference.streaming``) give the
whole-file results; a .lab far too large for a chord annotation is refused unread.

Streaming is forced on short files with small chunks (``stream_seconds``,
``chunk_seconds`` and the reader's ``block_frames`` are parameters for that)."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from chordexp import decode
from chordexp.audio import AudioError, load_audio, read_audio_blocks, resampled_blocks, resampled_length
from chordexp.bench.predict_memory import chord_loop_block
from chordexp.inference import ChordRecognizer, ready_model, streaming, transcribe_files
from chordexp.labfile import MAX_LAB_BYTES, MAX_LAB_LINES, LabFileError, load_lab
from chordexp.model import ChordRecognitionModel
from chordexp.tuning_estimate import StreamedTuning, estimate_tuning

#: log-posteriors of streamed chunks against the whole-file run (float rounding: the FFTs
#: and matrix products run over other lengths; 1.4e-5 to 2.7e-5 measured)
TOLERANCE = 2e-4


def write_song(path: Path, seconds: float, rate: int, channels: int = 1, cents: float = 0.0) -> Path:
    """The bench's chord loop, ``cents`` off A440 (through the sample rate it is rendered
    at), a little noise, ``channels`` channels."""
    n = int(seconds * rate)
    audio = chord_loop_block(0, n, int(rate * 2 ** (-cents / 1200)))
    audio = audio + 0.01 * np.random.default_rng(0).standard_normal(n).astype(np.float32)
    audio[: rate // 2] = 0.0  # a silent start for the silence gate
    data = np.stack([audio * (0.5 + 0.5 * c) for c in range(channels)], axis=1)
    soundfile.write(str(path), data, rate, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def small_recognizer():
    """An untrained small song-mode model with 2-s attention windows (22 frames)."""
    torch.manual_seed(0)
    model = ChordRecognitionModel(
        sample_rate=22050, d_model=32, num_blocks=1, num_heads=2, channels=4, context_seconds=2.0, frame_outputs=True
    )
    return ChordRecognizer(model, estimate_tuning=True)


@pytest.fixture(scope="module")
def ready():
    return ChordRecognizer.from_checkpoint(ready_model())


def max_difference(a, b) -> float:
    assert a.log_posteriors.keys() == b.log_posteriors.keys()
    for name in a.log_posteriors:
        assert a.log_posteriors[name].shape == b.log_posteriors[name].shape, name
    return max(float(np.abs(a.log_posteriors[k] - b.log_posteriors[k]).max()) for k in a.log_posteriors)


def test_geometry_keeps_every_frame_once(small_recognizer, ready):
    for recognizer in (small_recognizer, ready):
        shape = streaming.geometry(recognizer)
        assert shape is not None  # the small model: context > hop, the packaged one: context < hop
        chunk = shape.chunk_frames(1.0, recognizer.frame_rate)  # the fewest
        keep_until = shape.keep_until(chunk + 1)
        assert shape.keep_from % shape.hop == 0 and keep_until % shape.hop == 0
        assert keep_until - shape.keep_from >= shape.hop
        # its last window starts on the whole computation's grid: nothing is thrown away for it
        assert (chunk + 1 - shape.window) % shape.hop == 0


@pytest.mark.parametrize("rate,channels", [(22050, 1), (48000, 2)])
def test_streamed_chunks_give_the_whole_file_posteriors(tmp_path, small_recognizer, rate, channels):
    path = write_song(tmp_path / "song.wav", 40.0, rate, channels, cents=20.0)
    whole = small_recognizer.analyse(load_audio(path, 22050), 22050)
    streamed, audio = small_recognizer.analyse_stream(path, chunk_seconds=4.0, block_frames=10_000)
    assert max_difference(streamed, whole) < TOLERANCE
    assert streamed.tuning_cents == whole.tuning_cents != 0.0  # the same frames and votes
    assert streamed.duration == whole.duration and audio.size == round(whole.duration * 22050)
    assert whole.silent is not None and streamed.silent is not None and whole.silent.any()
    assert np.array_equal(streamed.silent, whole.silent)
    assert small_recognizer.decode(streamed).segments == small_recognizer.decode(whole).segments


def test_a_file_within_one_chunk_takes_the_whole_file_path_exactly(tmp_path, small_recognizer):
    path = write_song(tmp_path / "song.wav", 6.0, 22050)
    whole = small_recognizer.analyse(load_audio(path, 22050), 22050)
    streamed, _ = small_recognizer.analyse_stream(path, chunk_seconds=60.0, block_frames=5000)
    assert max_difference(streamed, whole) == 0.0


def test_the_packaged_model_streamed_writes_the_same_lab(tmp_path, ready):
    """100 s in three chunks (the fewest frames the 15-s windows allow) through predict's
    loop: the same segments and posteriors within TOLERANCE."""
    (tmp_path / "in").mkdir()
    song = write_song(tmp_path / "in" / "song.wav", 100.0, 44100)
    whole = ready.analyse(load_audio(song, ready.sample_rate), ready.sample_rate)
    streamed = ready.analyse_file(song, stream_seconds=10.0, chunk_seconds=1.0)
    assert max_difference(streamed, whole) < TOLERANCE
    assert ready.decode(streamed).segments == ready.decode(whole).segments
    assert ready.analyse_file(song).log_posteriors["root"].tobytes() == whole.log_posteriors["root"].tobytes()
    for name, seconds in (("streamed", 10.0), ("whole", None)):
        transcribe_files(ready, tmp_path / "in", tmp_path / name, progress=False, echo=lambda *_: None,
                         stream_seconds=seconds, chunk_seconds=1.0)  # fmt: skip
    assert (tmp_path / "streamed" / "song.lab").read_text() == (tmp_path / "whole" / "song.lab").read_text()


def test_which_files_stream(tmp_path, small_recognizer):
    path = write_song(tmp_path / "song.wav", 3.0, 22050, channels=2)
    assert streaming.should_stream(path, small_recognizer, 2.0)
    assert not streaming.should_stream(path, small_recognizer, 4.0)
    assert not streaming.should_stream(path, small_recognizer, None)
    assert not streaming.should_stream(tmp_path / "absent.wav", small_recognizer, 2.0)
    assert streaming.geometry(type("Exported", (), {"model": None})()) is None  # exported graphs: whole file


def test_blocks_are_the_whole_file_samples(tmp_path):
    path = write_song(tmp_path / "song.wav", 5.0, 44100, channels=2)
    for rate in (22050, 44100, 16000):
        blocks = list(resampled_blocks(path, rate, block_frames=7001))
        assert len(blocks) > 1
        joined = np.concatenate(blocks)
        assert np.array_equal(joined, load_audio(path, rate))
        assert joined.size == resampled_length(5 * 44100, 44100, rate)


def test_block_reader_refuses_what_the_whole_reader_refuses(tmp_path):
    bad = np.zeros(30_000, dtype=np.float32)
    bad[25_000] = np.nan
    soundfile.write(str(tmp_path / "nan.wav"), bad, 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        list(read_audio_blocks(tmp_path / "nan.wav", 10_000))
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="cannot decode audio"):
        list(read_audio_blocks(tmp_path / "junk.wav"))
    soundfile.write(str(tmp_path / "empty.wav"), np.zeros(0, np.float32), 22050)
    with pytest.raises(AudioError, match="no audio samples"):
        list(read_audio_blocks(tmp_path / "empty.wav"))


def test_streamed_tuning_is_the_whole_estimate():
    rate = 22050
    rng = np.random.default_rng(3)
    t = np.arange(rate * 90) / rate
    audio = (np.sin(2 * np.pi * 440 * 2 ** (-23 / 1200) * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    for n in (1000, rate * 2 + 5, audio.size):
        tuning = StreamedTuning(n, rate)
        for start in range(0, n, 12_345):
            tuning.add(audio[start : min(n, start + 12_345)])
        assert tuning.result() == estimate_tuning(audio[:n], rate)


def reference_viterbi(log_likelihoods: np.ndarray, self_transition: float) -> np.ndarray:
    """The decoder before its back-pointers were packed into bits."""
    n_frames, n_states = log_likelihoods.shape
    log_stay, log_switch = np.log(self_transition), np.log((1.0 - self_transition) / (n_states - 1))
    score = log_likelihoods[0] - np.log(n_states)
    came_from_best = np.zeros((n_frames, n_states), dtype=bool)
    best_prev = np.zeros(n_frames, dtype=np.int64)
    for t in range(1, n_frames):
        best = int(score.argmax())
        stay, switch = score + log_stay, score[best] + log_switch
        came_from_best[t], best_prev[t] = switch > stay, best
        score = np.maximum(stay, switch) + log_likelihoods[t]
    path = np.empty(n_frames, dtype=np.int64)
    path[-1] = int(score.argmax())
    for t in range(n_frames - 1, 0, -1):
        path[t - 1] = best_prev[t] if came_from_best[t, path[t]] else path[t]
    return path


def test_blockwise_viterbi_finds_the_same_path(monkeypatch):
    monkeypatch.setattr(decode, "VITERBI_BLOCK", 7)
    rng = np.random.default_rng(1)
    for frames in (1, 2, 50, 301):
        types = np.log(rng.dirichlet(np.full(32, 0.3), frames)).astype(np.float32)
        roots = np.log(rng.dirichlet(np.full(12, 0.3), frames)).astype(np.float32)
        likelihoods = decode.state_log_likelihoods(types, roots)
        silent = rng.random(frames) < 0.2
        expected = likelihoods.copy()
        expected[silent, 1:], expected[silent, 0] = -1e9, 0.0
        for stay in (0.5, 0.99):
            assert np.array_equal(decode.viterbi(likelihoods, stay), reference_viterbi(likelihoods, stay))
            segments = decode.decode_segments(types, roots, roots, 10.0, frames / 10.0, stay, silent)
            path = reference_viterbi(expected, stay)
            assert len(segments) == 1 + int(np.count_nonzero(np.diff(path)))


def test_a_huge_sparse_lab_is_refused_unread(tmp_path):
    path = tmp_path / "huge.lab"
    with open(path, "wb") as handle:
        handle.truncate(1 << 30)  # 1 GiB of holes: nothing written, nothing to read
    tracemalloc.start()
    try:
        with pytest.raises(LabFileError) as raised:
            load_lab(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(raised.value)
    assert "\n" not in message and str(path) in message
    assert "1,073.7 MB" in message and f"{MAX_LAB_BYTES / 1e6:.1f} MB" in message
    assert peak < 1e6


def test_a_lab_of_millions_of_lines_is_refused(tmp_path):
    path = tmp_path / "many.lab"
    path.write_bytes(b"0 1 N\n" * 2_000_000)  # 12 MB: under the size limit, over the line limit
    with pytest.raises(LabFileError, match=f"2,000,000 lines, over the {MAX_LAB_LINES:,}"):
        load_lab(path)
    path.write_bytes(b"0 1 N\n" * 1000)
    assert len(load_lab(path)[1]) == 1000


def test_evaluate_refuses_a_huge_lab_in_one_line(tmp_path):
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    refs.mkdir(), preds.mkdir()
    with open(refs / "a.lab", "wb") as handle:
        handle.truncate(1 << 30)
    (preds / "a.lab").write_text("0 1 N\n")
    done = subprocess.run(
        [sys.executable, "-m", "chordexp.evaluate", f"predictions={preds}", f"references={refs}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "over the 16.0 MB a .lab may hold" in done.stderr
