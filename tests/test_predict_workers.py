"""``predict`` over a folder with worker processes decoding ahead writes exactly what
the one-process path writes, reports unreadable files the same way, and refuses a
negative ``workers=`` in one line."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from chordexp.inference import ChordRecognizer, transcribe_files
from chordexp.inference.prefetch import decoded_files, default_workers
from tests.test_predict import write_tiny_checkpoint

SR = 16000


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """Five songs at 22.05 and 44.1 kHz (resampled to the model's 16 kHz), one in a
    subfolder, and one file that is not audio."""
    folder = tmp_path_factory.mktemp("songs")
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir()
    for i, (name, rate) in enumerate(
        [("a.wav", 22050), ("b.flac", 44100), ("sub/c.wav", 44100), ("d.wav", 22050), ("e.wav", 44100)]
    ):
        t = np.arange(int((2 + i) * rate)) / rate
        freqs = 220.0 * 2 ** (rng.integers(0, 12, 3) / 12)
        audio = sum(0.2 * np.sin(2 * np.pi * f * t) for f in freqs) + 0.01 * rng.standard_normal(t.size)
        soundfile.write(str(folder / name), audio.astype(np.float32), rate)
    (folder / "broken.wav").write_bytes(b"not audio at all")
    return folder


def test_workers_write_the_same_labs_as_one_process(checkpoint, songs, tmp_path, capsys):
    recognizer = ChordRecognizer.from_checkpoint(checkpoint)
    outputs = {}
    for workers in (0, 2):
        out = tmp_path / f"w{workers}"
        failures = transcribe_files(recognizer, songs, out, progress=False, echo=lambda *_: None, workers=workers)
        assert failures == 1
        assert "broken.wav" in capsys.readouterr().err
        outputs[workers] = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*.lab"))}
    assert len(outputs[0]) == 5
    assert outputs[2] == outputs[0]


def test_decoded_files_come_back_in_order_with_errors_as_values(songs):
    files = sorted(songs.rglob("*.*"))
    results = list(decoded_files(files, SR, workers=2, analyse=lambda audio: audio.size))
    assert [path for path, _ in results] == files
    kinds = {path.name: type(item).__name__ for path, item in results}
    assert kinds["broken.wav"] == "AudioError" and kinds["a.wav"] == "tuple"
    serial = dict(decoded_files(files, SR, workers=0, analyse=lambda audio: audio.size))
    for path, item in results:
        if isinstance(item, tuple):
            audio, size = item
            np.testing.assert_array_equal(audio, serial[path][0])
            assert size == audio.size and serial[path][1] is None  # workers=0: the caller analyses


def test_default_workers_one_per_core_and_none_for_one_file_or_two_cores(monkeypatch):
    from chordexp.inference import prefetch

    assert default_workers(1) == 0
    monkeypatch.setattr(prefetch, "usable_cores", lambda: 2)
    assert default_workers(100) == 0  # two cores: faster without workers (the bench)
    monkeypatch.setattr(prefetch, "usable_cores", lambda: 16)
    assert default_workers(100) == 8 and default_workers(3) == 3


def test_too_many_workers_are_cut_to_the_files_and_cores_with_a_line(capsys):
    from chordexp.inference.prefetch import MAX_WORKERS, bounded_workers, usable_cores

    assert bounded_workers(1000, 3) == min(3, 2 * usable_cores()) and "workers=1000: using" in capsys.readouterr().err
    assert bounded_workers(1000, 500) == min(MAX_WORKERS, 2 * usable_cores())
    capsys.readouterr()
    assert bounded_workers(1, 3) == 1 and capsys.readouterr().err == ""


def test_a_negative_number_of_workers_is_refused_in_one_line(checkpoint, songs, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "chordexp.predict",
            f"checkpoint={checkpoint}",
            f"input={songs}",
            f"output={out}",
            "workers=-1",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and "workers=-1" in lines[0], done.stderr
    assert not out.exists()


def _children(pid: int) -> list:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_sigterm_to_predict_leaves_no_worker_and_no_partial_file(checkpoint, tmp_path):
    """Kill predict while its workers analyse long songs: the workers go with it (they
    once ran on for minutes as orphans) and no half-written file is left."""
    import signal
    import time

    songs = tmp_path / "songs"
    songs.mkdir()
    for i in range(6):
        soundfile.write(songs / f"s{i}.wav", np.zeros(SR * 240, np.float32) + 0.01, SR)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chordexp.predict",
            f"checkpoint={checkpoint}",
            f"input={songs}",
            f"output={out}",
            "workers=2",
            "progress=false",
            "probabilities=true",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    workers: list = []
    while time.time() < deadline and len(workers) < 2:
        time.sleep(0.2)
        workers = _children(proc.pid)
    assert len(workers) >= 2, "the workers never started"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) != 0
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.1)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
    assert alive == [], f"orphaned workers {alive}"
    partial = [p.name for p in out.rglob("*") if p.name.endswith(".tmp")] if out.exists() else []
    assert partial == []


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
