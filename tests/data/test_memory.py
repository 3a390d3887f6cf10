"""InMemoryDataset: the same items as the dataset it renders, from memory."""
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
    assert torch.equal(InMemoryDataset(source, num_workers=2, batch_size=2).audio,
                       InMemoryDataset(source, num_workers=0, batch_size=4).audio)
