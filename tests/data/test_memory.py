"""InMemoryDataset: the same items as the dataset it renders, from memory."""

import pytest
import torch

from chordexp.data import InMemoryDataset, SyntheticChordDataset


def test_cached_items_equal_the_rendered_ones_to_float16_precision():
    source = SyntheticChordDataset(10, seed=3, sample_rate=16000, clip_seconds=0.5, realism="plain")
    cached = InMemoryDataset(source, num_workers=0, batch_size=4)
    assert len(cached) == 10 and cached.audio.dtype == torch.float16
    for i in range(10):
        audio, targets = cached[i]
        expected_audio, expected_targets = source[i]
        assert audio.dtype == torch.float32 and audio.shape == expected_audio.shape
        assert torch.allclose(audio, expected_audio, atol=1e-3)
        assert {k: int(v) for k, v in targets.items()} == {k: int(v) for k, v in expected_targets.items()}


def test_rendering_in_worker_processes_gives_the_same_cache():
    source = SyntheticChordDataset(6, seed=4, sample_rate=16000, clip_seconds=0.25, realism="plain")
    assert torch.equal(
        InMemoryDataset(source, num_workers=2, batch_size=2).audio,
        InMemoryDataset(source, num_workers=0, batch_size=4).audio,
    )


class _FrameItems(torch.utils.data.Dataset):
    """Song-mode items: audio (8,) and frame targets (T=5,) with a bool mask (padding at the end)."""

    def __len__(self) -> int:
        return 5

    def __getitem__(self, i: int):
        audio = torch.arange(8, dtype=torch.float32) * 0.25 + i  # exact in float16
        frames = torch.arange(5)
        return audio, {
            "chord_type": (frames + i) % 32,
            "root": (frames * i) % 12,
            "bass_note": torch.full((5,), i % 12),
            "mask": frames < 5 - i,
        }


def test_frame_targets_and_masks_are_stored_per_item_with_their_dtype():
    source = _FrameItems()
    cached = InMemoryDataset(source, num_workers=0, batch_size=2)  # 2 + 2 + 1 items
    assert cached.targets["chord_type"].shape == (5, 5) and cached.targets["mask"].dtype == torch.bool
    for i in range(5):
        audio, targets = cached[i]
        expected_audio, expected = source[i]
        assert torch.equal(audio, expected_audio)
        assert targets.keys() == expected.keys()
        for key, value in expected.items():
            assert targets[key].dtype == value.dtype and torch.equal(targets[key], value), (i, key)
    assert cached[3][1]["mask"].tolist() == [True, True, False, False, False]
    batch = next(iter(torch.utils.data.DataLoader(cached, batch_size=5)))[1]
    assert batch["mask"].sum().item() == 5 + 4 + 3 + 2 + 1


def test_a_long_render_logs_its_progress_when_not_on_a_terminal(caplog, monkeypatch):
    import logging

    from chordexp.data import memory

    monkeypatch.setattr(memory.sys.stderr, "isatty", lambda: False)
    progress = memory.Progress("rendering", 100, "clips", every=0.0)
    with caplog.at_level(logging.INFO, logger="chordexp.data.memory"):
        for done in (10, 50, 100):
            progress.update(done)
        progress.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and lines[1].startswith("rendering: 50 of 100 clips")
    assert lines[0].startswith("rendering: 10 of 100 clips") and "to go" in lines[0]
    assert not any(m.startswith("rendering: 100 of 100") for m in lines)  # the end has its own line


def test_a_stop_signal_while_rendering_is_acted_on_between_batches_by_the_handler_it_replaced():
    """A handler that raises inside a DataLoader's queue operations can leave a queue lock
    held and the loader's shutdown waiting on it for ever: the render notes the signal,
    finishes the batch, shuts the loader down, then hands the signal on."""
    import os
    import signal

    import torch
    from torch.utils.data import Dataset

    from chordexp.data.memory import InMemoryDataset

    seen = []

    class SignalsAtItem(Dataset):
        def __len__(self):
            return 64

        def __getitem__(self, index):
            seen.append(index)
            if index == 5:
                os.kill(os.getpid(), signal.SIGTERM)
            return torch.zeros(4), {"chord_type": torch.tensor(0)}

    def run_folder_handler(signum, frame):  # as the run's: end with 128 + the signal
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, run_folder_handler)
    try:
        with pytest.raises(SystemExit) as stopped:
            InMemoryDataset(SignalsAtItem(), num_workers=0, batch_size=8)
        assert stopped.value.code == 143
        assert seen == list(range(8))  # the batch in progress finished, no later one started
        assert signal.getsignal(signal.SIGTERM) is run_folder_handler  # restored
    finally:
        signal.signal(signal.SIGTERM, previous)
