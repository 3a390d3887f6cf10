"""AudioCache: decoded once, mapped afterwards; keyed by path, size, mtime and rate; never
read half-written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

from chordexp.data.audio_cache import AudioCache, default_cache_dir


def _tone(path: Path, freq: float = 440.0, seconds: float = 1.0, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
    return path


class CountingDecode:
    def __init__(self):
        from chordexp.audio import load_audio

        self.calls = []
        self._load = load_audio

    def __call__(self, path, rate):
        self.calls.append((Path(path).name, rate))
        return self._load(path, rate)


def test_first_load_decodes_later_loads_map_the_same_samples(tmp_path):
    song = _tone(tmp_path / "a.wav")
    decode = CountingDecode()
    cache = AudioCache(tmp_path / "cache", decode)
    first = cache.load(song, 22050)
    second = AudioCache(tmp_path / "cache", decode).load(song, 22050)  # another run / worker
    assert decode.calls == [("a.wav", 22050)]
    assert isinstance(second, np.memmap) and not second.flags.writeable
    assert second.dtype == np.float32 and len(second) == 22050
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
    from chordexp.audio import load_audio

    np.testing.assert_array_equal(np.asarray(second), load_audio(song, 22050))
    assert cache.size_bytes() > 22050 * 4


def test_a_changed_file_and_another_rate_are_decoded_again(tmp_path):
    song = _tone(tmp_path / "a.wav")
    decode = CountingDecode()
    cache = AudioCache(tmp_path / "cache", decode)
    cache.load(song, 22050)
    cache.load(song, 16000)  # another rate: its own entry, the first kept
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2
    _tone(song, freq=660.0, seconds=1.5)  # replaced: new size and mtime
    os.utime(song, ns=(song.stat().st_atime_ns, song.stat().st_mtime_ns + 10**9))
    changed = cache.load(song, 22050)
    assert len(changed) == int(1.5 * 22050)
    assert decode.calls == [("a.wav", 22050), ("a.wav", 16000), ("a.wav", 22050)]
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2  # the stale 22050 entry is gone


def test_same_size_edit_is_caught_by_the_modification_time(tmp_path):
    song = _tone(tmp_path / "a.wav")
    decode = CountingDecode()
    cache = AudioCache(tmp_path / "cache", decode)
    before = np.asarray(cache.load(song, 16000)).copy()
    _tone(song, freq=880.0)  # same length, same size
    os.utime(song, ns=(song.stat().st_atime_ns, song.stat().st_mtime_ns + 10**9))
    after = np.asarray(cache.load(song, 16000))
    assert len(decode.calls) == 2 and not np.allclose(before, after)


def test_a_truncated_entry_from_a_killed_writer_is_never_read(tmp_path, caplog):
    song = _tone(tmp_path / "a.wav")
    decode = CountingDecode()
    cache = AudioCache(tmp_path / "cache", decode)
    good = np.asarray(cache.load(song, 16000)).copy()
    entry = cache.entry(song, 16000)
    with open(entry, "r+b") as handle:  # what a writer killed mid-write without the rename would leave
        handle.truncate(entry.stat().st_size // 2)
    (tmp_path / "cache" / f".{entry.stem}.x1.tmp").write_bytes(b"partial")
    again = cache.load(song, 16000)
    np.testing.assert_array_equal(np.asarray(again), good)
    assert len(decode.calls) == 2 and "not a whole entry" in caplog.text
    assert not list((tmp_path / "cache").glob("*.tmp"))


def test_a_failed_write_leaves_no_entry_and_no_temporary_file(tmp_path, monkeypatch):
    song = _tone(tmp_path / "a.wav")
    cache = AudioCache(tmp_path / "cache")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        cache.load(song, 16000)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_full_disk_keeps_the_decoded_audio_in_memory_with_one_warning(tmp_path, monkeypatch, caplog):
    import errno

    songs = [_tone(tmp_path / f"{name}.wav", freq) for name, freq in (("a", 440.0), ("b", 330.0))]
    cache = AudioCache(tmp_path / "cache")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with caplog.at_level("WARNING"):
        audio = [cache.load(song, 16000) for song in songs]
    assert all(isinstance(a, np.ndarray) and not isinstance(a, np.memmap) and len(a) == 16000 for a in audio)
    warnings = [r.getMessage() for r in caplog.records if "audio cache" in r.getMessage()]
    assert len(warnings) == 1 and "data.cache_dir" in warnings[0] and "No space left on device" in warnings[0]
    assert list((tmp_path / "cache").iterdir()) == []  # no temporary file left


def test_a_cache_folder_that_is_a_file_is_refused_naming_the_key(tmp_path):
    from chordexp.data.folder import audio_cache_at
    from chordexp.errors import ConfigValueError

    (tmp_path / "cachefile").write_text("not a folder")
    with pytest.raises(
        ConfigValueError, match=r"^data\.cache_dir=\S*cachefile: the audio cache folder is a file, not a folder"
    ):
        audio_cache_at(tmp_path / "cachefile")
    assert (tmp_path / "cachefile").read_text() == "not a folder"


def test_an_unwritable_default_cache_falls_back_to_memory(tmp_path, monkeypatch, caplog):
    from chordexp.data.folder import audio_cache_at

    (tmp_path / "blocked").write_text("a file where the cache folder would go")
    monkeypatch.setenv("CHORDEXP_CACHE", str(tmp_path / "blocked"))
    with caplog.at_level("WARNING"):
        assert audio_cache_at("auto") is None
    assert any("kept decoded in memory" in r.getMessage() for r in caplog.records)


def test_the_default_folder_is_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("CHORDEXP_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "chordexp" / "audio"
    monkeypatch.setenv("CHORDEXP_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


def test_folder_datasets_read_the_same_items_through_the_cache_and_pickle_small(tmp_path):
    import pickle

    from chordexp.data import FolderChordDataset
    from chordexp.data.folder_songs import FolderSongDataset
    from tests.data.test_folder_dataset import write_good_songs

    root = write_good_songs(tmp_path / "songs")
    for cls, kwargs in ((FolderChordDataset, {}), (FolderSongDataset, {"clip_seconds": 2.0})):
        plain = cls(16, split="train", root=root, sample_rate=16000, **kwargs)
        cached = cls(16, split="train", root=root, sample_rate=16000, cache_dir=tmp_path / "cache", **kwargs)
        again = cls(16, split="train", root=root, sample_rate=16000, cache_dir=tmp_path / "cache", **kwargs)
        for i in range(16):
            a, ta = plain[i]
            for other in (cached, again):
                b, tb = other[i]
                assert torch_equal(a, b) and all(torch_equal(ta[k], tb[k]) for k in ta)
        in_memory = len(pickle.dumps(plain))
        assert len(pickle.dumps(cached)) < in_memory / 20  # a worker gets paths, not songs
    # one entry per decoded song of the split (both datasets read the same files at one rate)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == len(plain.songs)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(torch.as_tensor(a), torch.as_tensor(b)))


@pytest.mark.slow  # two torchrun processes and a single-process twin: ~30-60 s on 2 cores
def test_two_ddp_ranks_map_one_cache_and_a_later_run_decodes_nothing(tmp_path, run_cli):
    """torchrun, 2 CPU processes: both ranks build their datasets from one cache folder (one
    entry per song, no temporary file left); a later single-process run maps the same
    entries (their files untouched) and computes the DDP run's history."""
    import json
    import subprocess
    import sys

    from tests.data.test_folder_songs import RATE, SONGS, sine_song

    root = tmp_path / "songs"
    for name, spec in SONGS.items():
        for copy in ("", "_2"):
            path = root / name.replace(".wav", f"{copy}.wav")
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(str(path), sine_song(spec), RATE)
            path.with_suffix(".lab").write_text("".join(f"{s} {e} {label}\n" for s, e, label, _ in spec))
    cache = tmp_path / "cache"
    settings = [
        "data=folder_songs",
        f"data.dataset.root={root}",
        f"data.cache_dir={cache}",
        f"data.sample_rate={RATE}",
        "data.clip_seconds=4.0",
        "model=small",
        "data.train_size=8",
        "data.val_size=4",
        "data.batch_size=4",
        "data.val_songs=1",
        "data.dataset.val_fraction=0.5",
        "trainer.num_epochs=2",
        "scheduler.warmup_epochs=0",
        "trainer.save_every=0",
        "trainer.deterministic=true",
        "logger=[]",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "chordexp.run",
            *settings,
            f"hydra.run.dir={tmp_path / 'ddp'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ddp.returncode == 0, (ddp.stdout + ddp.stderr)[-3000:]
    entries = sorted(cache.glob("*.npy"))
    assert len(entries) == 2 * len(SONGS) and not list(cache.glob("*.tmp"))
    written = {entry: entry.stat().st_mtime_ns for entry in entries}
    single = run_cli([*settings, f"hydra.run.dir={tmp_path / 'single'}"], cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]
    assert {entry: entry.stat().st_mtime_ns for entry in sorted(cache.glob("*.npy"))} == written
    histories = [json.loads((tmp_path / name / "history.json").read_text()) for name in ("ddp", "single")]
    for key, values in histories[1].items():
        assert histories[0][key] == pytest.approx(values, rel=1e-5), key
