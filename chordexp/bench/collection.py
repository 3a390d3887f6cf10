"""Benchmark: a real-sized annotated collection on disk (``data=folder_songs``).

A collection of ``hours`` of 44.1 kHz 16-bit WAV songs with ``.lab`` files, in
``artist/song`` folders, is written to a temporary folder: a few distinct synthetic band
songs (``SyntheticSongDataset.song``) written many times at different gains, so that
decoding, resampling and caching cost what real files of that length cost. Then:

* **first run / second run**: wall time to build the train and val datasets of a run
  (decode, resample to 22.05 kHz, check, cache) with an empty audio cache, then again
  with the cache the first run wrote (``data.cache_dir``); target: the second < 10 %
  of the first;
* **peak RSS**: a short ``python -m chordexp.run data=folder_songs`` in a child process
  on each collection size; target: under 2 GB, and the same at every size;
* **loader**: train excerpts per second (pitch shift on) read from the mapped cache on
  one core, against what a song-mode training step consumes on all cores (target 2x).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, cast

import numpy as np

from chordexp.bench.common import Row, cpu_timed, echo, median, one_core, ratio, timed
from chordexp.bench.probe import run_probe
from chordexp.bench.sizes import Sizes
from chordexp.bench.song_data import training_consumption
from chordexp.data import SyntheticSongDataset
from chordexp.data.folder_songs import FolderSongDataset
from chordexp.labfile import write_lab

STARTUP_TARGET = 0.10  # second run's start-up / first run's
PEAK_BUDGET_MB = 2000.0
SAME_PEAK = 1.10  # peak RSS at the largest size / at the smallest
LOADER_HEADROOM = 2.0
FILE_RATE = 44100  # what collections hold
DISTINCT = 6  # distinct songs rendered; the collection repeats them at other gains


def write_collection(root: Path, hours: float, song_seconds: float, distinct: int = DISTINCT) -> int:
    """``hours`` of songs as ``root/artistNN/songNNNN.wav`` + ``.lab``; returns the song count."""
    import soundfile
    import soxr

    renderer = SyntheticSongDataset(1, split="test", sample_rate=22050)
    songs = []
    for i in range(distinct):
        song = renderer.song(i, song_seconds)
        audio = soxr.resample(song.audio, 22050, FILE_RATE).astype(np.float32)
        songs.append((audio / max(float(np.max(np.abs(audio))), 1e-6), song.labelled()))
    count = max(int(round(hours * 3600 / song_seconds)), 2)
    gains = np.random.default_rng(0).uniform(0.3, 0.9, count)
    for k in range(count):
        audio, segments = songs[k % distinct]
        folder = root / f"artist{k % 40:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        soundfile.write(folder / f"song{k:04d}.wav", audio * gains[k], FILE_RATE, subtype="PCM_16")
        write_lab(folder / f"song{k:04d}.lab", segments)
    return count


def build_datasets(root: Path, cache: Path) -> float:
    """Seconds to build a run's train and val datasets over ``root`` with ``cache``."""

    def build() -> None:
        for split in ("train", "val"):
            FolderSongDataset(64, split=split, root=root, sample_rate=22050, cache_dir=cache)

    return timed(build)


def loader_rates(root: Path, cache: Path, excerpts: int, repeats: int) -> List[float]:
    dataset = FolderSongDataset(excerpts * repeats, split="train", root=root, sample_rate=22050, cache_dir=cache)
    with one_core():
        # cast: mypy cannot type a lambda that binds r as a default argument
        return [
            excerpts
            / cpu_timed(cast(Callable[[], Any], lambda r=r: [dataset[r * excerpts + i] for i in range(excerpts)]))
            for r in range(repeats)
        ]


def train_peak(root: Path, cache: Path, folder: Path) -> Dict[str, Any]:
    """A short song-mode run on the collection in a child process: its peak RSS."""
    folder.mkdir(parents=True, exist_ok=True)
    overrides = [
        "data=folder_songs",
        f"data.dataset.root={root}",
        f"data.cache_dir={cache}",
        "trainer.num_epochs=2",
        "data.train_size=32",
        "data.val_size=8",
        "data.val_songs=1",
        "scheduler.warmup_epochs=0",
        "trainer.save_every=0",
        f"hydra.run.dir={folder / 'run'}",
    ]
    return run_probe("train", {"overrides": overrides}, cwd=str(folder), timeout=3600)


def run(sizes: Sizes) -> List[Row]:
    rows: List[Row] = []
    peaks: Dict[float, float] = {}
    with tempfile.TemporaryDirectory(prefix="chordexp-bench-collection-") as tmp:
        for hours in sizes.collection_hours:
            root, cache = Path(tmp) / f"songs-{hours:g}h", Path(tmp) / f"cache-{hours:g}h"
            echo(f"collection: writing {hours:g} h of 44.1 kHz WAV songs")
            started = time.perf_counter()
            count = write_collection(root, hours, sizes.collection_song_seconds)
            echo(f"collection: {count} songs written in {time.perf_counter() - started:.0f} s; first run (empty cache)")
            first = build_datasets(root, cache)
            echo(f"collection: second run (cache of {sum(p.stat().st_size for p in cache.glob('*.npy')) / 1e9:.2f} GB)")
            second = build_datasets(root, cache)
            rows.append(
                Row(
                    benchmark="collection",
                    measure=f"second-run start-up, {hours:g} h ({count} songs)",
                    value=second,
                    unit="s",
                    baseline_name="first run (decode, resample, cache)",
                    baseline=first,
                    baseline_unit="s",
                    ratio=ratio(second, first),
                    ratio_of="second / first",
                    target_op="<",
                    target=STARTUP_TARGET,
                    note=f"first run {first / (hours * 3600) * 3600:.0f} s per hour of audio",
                    samples={"first_s": [first], "second_s": [second]},
                )
            )
            echo(f"collection: a short training run on {hours:g} h in a child process")
            peak = train_peak(root, cache, Path(tmp) / f"run-{hours:g}h")
            peaks[hours] = peak["peak_rss_mb"]
            rows.append(
                Row(
                    benchmark="collection",
                    measure=f"peak RSS, training on {hours:g} h",
                    value=peak["peak_rss_mb"],
                    unit="MB",
                    baseline_name="budget",
                    baseline=PEAK_BUDGET_MB,
                    baseline_unit="MB",
                    ratio=ratio(peak["peak_rss_mb"], PEAK_BUDGET_MB),
                    ratio_of="peak / 2 GB",
                    target_op="<",
                    target=1.0,
                    samples={"epoch_rss_mb": peak["epoch_rss_mb"]},
                )
            )
            if hours == sizes.collection_hours[-1]:
                echo("collection: loader on one core")
                loaded = loader_rates(root, cache, sizes.song_excerpts, sizes.repeats)
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
    smallest, largest = min(peaks), max(peaks)
    if largest != smallest:
        rows.append(
            Row(
                benchmark="collection",
                measure=f"peak RSS at {largest:g} h vs {smallest:g} h",
                value=peaks[largest],
                unit="MB",
                baseline_name=f"at {smallest:g} h",
                baseline=peaks[smallest],
                baseline_unit="MB",
                ratio=ratio(peaks[largest], peaks[smallest]),
                ratio_of="largest / smallest",
                target_op="<=",
                target=SAME_PEAK,
                samples={"peak_rss_mb": [peaks[h] for h in sorted(peaks)]},
            )
        )
    consumption, steps = training_consumption(sizes)
    rate = median(loaded)
    rows.append(
        Row(
            benchmark="collection",
            measure="loader excerpts/s from the cache (pitch shift), one core",
            value=rate,
            unit="excerpts/s",
            baseline_name="training consumption",
            baseline=consumption,
            baseline_unit="excerpts/s",
            ratio=ratio(rate, consumption),
            ratio_of="loaded / consumed",
            target_op=">=",
            target=LOADER_HEADROOM,
            samples={"excerpts_per_s": loaded, "step_s": steps},
        )
    )
    return rows
