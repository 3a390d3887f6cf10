"""``data=folder``: composition against its schema, and the composed node building real loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from chordexp.data import FolderChordDataset, build_loaders
from chordexp.experiment.components import build_datasets
from chordexp.experiment.schemas import FolderDataConfig, FolderDatasetConfig, to_training_config
from chordexp.experiment.task import train

torch.set_num_threads(1)

#: Two songs, 6 s each: (start, end, label, MIDI notes).
SONGS = {
    "a/first.wav": [(0, 3, "C:maj", (60, 64, 67)), (3, 6, "A:min", (57, 60, 64))],
    "b/second.flac": [(0, 2, "N", ()), (2, 6, "G:7", (55, 59, 62, 65))],
}


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("songs")
    rate = 22050
    for name, spec in SONGS.items():
        t = np.arange(int(spec[-1][1] * rate)) / rate
        audio = np.zeros_like(t)
        for start, end, _, notes in spec:
            part = (t >= start) & (t < end)
            for note in notes:
                audio[part] += 0.1 * np.sin(2 * np.pi * 440 * 2 ** ((note - 69) / 12) * t[part])
        path = root / name
        path.parent.mkdir(parents=True)
        soundfile.write(path, audio.astype(np.float32), rate)
        path.with_suffix(".lab").write_text("".join(f"{s} {e} {label}\n" for s, e, label, _ in spec))
    return root


def test_folder_option_composes_typed_by_its_schema(compose_cfg, songs):
    cfg = compose_cfg("data=folder", f"data.dataset.root={songs}")
    assert OmegaConf.get_type(cfg.data) is FolderDataConfig
    assert OmegaConf.get_type(cfg.data.dataset) is FolderDatasetConfig
    assert cfg.data.dataset._target_ == "chordexp.data.FolderChordDataset"
    assert (cfg.data.train_size, cfg.data.val_size, cfg.data.batch_size, cfg.data.num_workers, cfg.data.cache) == (
        8000,
        1000,
        32,
        0,
        False,
    )
    assert cfg.model.sample_rate == cfg.data.sample_rate == cfg.data.dataset.sample_rate == 44100
    assert cfg.model.context_seconds == cfg.data.clip_seconds == cfg.data.dataset.clip_seconds
    assert not OmegaConf.missing_keys({k: cfg[k] for k in cfg if k != "hydra"})
    assert to_training_config(cfg).batch_size == 32


def test_without_a_root_composition_leaves_hydras_missing_value(compose_cfg):
    cfg = compose_cfg("data=folder")
    assert OmegaConf.missing_keys(cfg.data) == {"data.dataset.root"}
    with pytest.raises(MissingMandatoryValue, match="data.dataset.root"):
        cfg.data.dataset.root


@pytest.mark.parametrize(
    "override", ["data.dataset.rooot=/x", "data.dataset.pitch_shift=many", "data.dataset.val_fraction=lots"]
)
def test_a_misspelt_key_or_wrong_type_fails_at_composition(compose_cfg, override):
    with pytest.raises(ConfigCompositionException):
        compose_cfg("data=folder", "data.dataset.root=/x", override)


def test_the_composed_node_builds_datasets_that_feed_a_batch(compose_cfg, songs):
    cfg = compose_cfg("data=folder", f"data.dataset.root={songs}", "experiment=smoke", "data.dataset.val_fraction=0.5")
    train_set, val_set = build_datasets(cfg)
    assert isinstance(train_set, FolderChordDataset) and isinstance(val_set, FolderChordDataset)
    assert (len(train_set), len(val_set)) == (cfg.data.train_size, cfg.data.val_size)
    assert set(train_set.song_paths).isdisjoint(val_set.song_paths)
    assert max(train_set.shifts) == 6 and val_set.shifts == (0,)
    train_loader, val_loader = build_loaders(train_set, val_set, batch_size=cfg.data.batch_size, seed=cfg.seed)
    for loader in (train_loader, val_loader):
        audio, targets = next(iter(loader))
        num_samples = int(cfg.data.sample_rate * cfg.data.clip_seconds)
        assert audio.shape == (cfg.data.batch_size, num_samples) and audio.dtype == torch.float32
        assert set(targets) == {"chord_type", "root", "bass_note"}
        assert all(t.shape == (cfg.data.batch_size,) and t.dtype == torch.long for t in targets.values())
        assert torch.isfinite(audio).all() and audio.abs().max() > 0.01


def test_train_runs_on_a_folder_of_songs(compose_cfg, as_job, songs, tmp_path):
    cfg = as_job(
        compose_cfg(
            "data=folder",
            f"data.dataset.root={songs}",
            "experiment=smoke",
            "data.dataset.val_fraction=0.5",
            "trainer.num_epochs=2",
            "trainer.num_threads=1",
            "data.train_size=16",
            "data.val_size=8",
        )
    )
    metrics = train(cfg)
    assert metrics["epochs_run"] == 2 and np.isfinite(metrics["best_val_loss"])
    assert (tmp_path / "history.json").is_file()


def test_folder_without_root_is_one_line_naming_the_key(compose_cfg):
    from chordexp.errors import ConfigValueError

    with pytest.raises(ConfigValueError, match=r"^data\.dataset\.root is required"):
        to_training_config(compose_cfg("data=folder"))
