"""Atomic writes: fsync of file and folder, a full disk or a crash mid-write leaves the
previous file whole, and the error is one line naming the file."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest
import torch

from chordexp import atomic
from chordexp.atomic import DiskFullError, atomic_write_bytes
from chordexp.errors import is_user_error, one_line
from chordexp.experiment import run_folder


def _is_temp(fd: int) -> bool:
    return os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp")


@pytest.fixture
def disk_full_after(monkeypatch):
    """``disk_full_after(n, code)``: writes to a temporary file get ``n`` bytes through, then
    fail with ``code`` (ENOSPC by default), as a file system that fills up does."""
    real_write = os.write

    def install(n: int, code: int = errno.ENOSPC) -> None:
        room = [n]

        def write(fd: int, data) -> int:
            if not _is_temp(fd):
                return real_write(fd, data)
            if room[0] <= 0:
                raise OSError(code, os.strerror(code))
            written = real_write(fd, bytes(data[: room[0]]))
            room[0] -= written
            return written

        monkeypatch.setattr(os, "write", write)

    return install


def test_a_write_fsyncs_the_file_and_then_its_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)), real_fsync(fd)))
    atomic_write_bytes(tmp_path / "f.bin", b"data")
    assert synced == [False, True]  # the data, then the rename
    assert (tmp_path / "f.bin").read_bytes() == b"data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT], ids=["ENOSPC", "EDQUOT"])
def test_a_full_disk_keeps_the_previous_file_and_says_so(tmp_path, disk_full_after, code):
    target = tmp_path / "metrics.json"
    run_folder.write_json(target, {"epoch": 1})
    disk_full_after(3, code)
    with pytest.raises(DiskFullError) as caught:
        run_folder.write_json(target, {"epoch": 2, "padding": "x" * 100})
    assert str(caught.value) == (
        f"cannot write {target}: no space left on device ({errno.errorcode[code]}); "
        f"the previous metrics.json is intact; free some space and try again"
    )
    assert caught.value.errno == code and is_user_error(caught.value)
    assert json.loads(target.read_text()) == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # the partial temp file is gone


def test_a_full_disk_at_fsync_is_caught_too(tmp_path, monkeypatch):
    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(DiskFullError, match=r"new\.bin: no space left on device \(ENOSPC\); no new\.bin was written"):
        atomic_write_bytes(tmp_path / "new.bin", b"data")
    assert list(tmp_path.iterdir()) == []


def test_a_crash_before_the_rename_leaves_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "history.json"
    target.write_text("old")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write_text(target, "new")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["history.json"]


def test_temp_files_a_killed_writer_left_are_removed_by_the_next_write(tmp_path):
    stale = tmp_path / ".last.pt.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / ".best.pt.abc.tmp"
    other.write_bytes(b"another file's")
    atomic_write_bytes(tmp_path / "last.pt", b"whole")
    assert not stale.exists() and other.exists()


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_last_pt(make_tiny_trainer, disk_full_after):
    trainer, folder = make_tiny_trainer(num_epochs=2)
    trainer.config.num_epochs = 1
    trainer.train()
    before = torch.load(folder / "last.pt", weights_only=True)
    trainer.config.num_epochs = 2
    disk_full_after(1000)
    with pytest.raises(DiskFullError) as caught:
        trainer.train()
    name = Path(caught.value.filename).name  # best.pt (epoch 2 improved) is written before last.pt
    assert name in ("best.pt", "last.pt") and Path(caught.value.filename).parent == folder
    assert one_line(caught.value) == (
        f"cannot write {folder / name}: no space left on device (ENOSPC); "
        f"the previous {name} is intact; free some space and try again"
    )
    after = torch.load(folder / "last.pt", weights_only=True)  # still whole, still epoch 1
    assert after["epoch"] == before["epoch"] == 1
    assert all(torch.equal(after["model"][k], before["model"][k]) for k in before["model"])
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_last_pt_is_written_after_best_and_periodic_checkpoints(make_tiny_trainer, monkeypatch):
    """last.pt commits an epoch: a crash before it redoes the epoch, rewriting the others."""
    from chordexp.training import checkpoint as checkpoint_module

    written = []
    real = checkpoint_module.atomic_write_bytes
    monkeypatch.setattr(
        checkpoint_module, "atomic_write_bytes", lambda path, data: (written.append(Path(path).name), real(path, data))
    )
    trainer, _ = make_tiny_trainer(num_epochs=2, save_every=1)
    trainer.train()
    assert written == ["best.pt", "epoch_001.pt", "last.pt", *written[3:]] and written[-1] == "last.pt"


@pytest.fixture
def make_tiny_trainer(tmp_path):
    """``make_tiny_trainer(**config) -> (trainer, checkpoint folder)`` on dummy data."""
    from torch.utils.data import DataLoader

    from chordexp.data import DummyChordDataset
    from chordexp.model import ChordRecognitionModel
    from chordexp.training import Trainer, TrainingConfig

    def make(**config):
        torch.manual_seed(0)
        loader = DataLoader(DummyChordDataset(4, num_samples=8000), batch_size=2)
        model = ChordRecognitionModel(sample_rate=8000, d_model=16, num_blocks=1, num_heads=2, channels=2)
        options = dict(
            device="cpu",
            checkpoint_dir=str(tmp_path / "ck"),
            save_every=0,
            log_every=0,
            warmup_epochs=0,
            scheduler="constant",
        )
        options.update(config)
        return Trainer(model, loader, loader, TrainingConfig(**options)), tmp_path / "ck"

    return make
