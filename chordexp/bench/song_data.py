"""Benchmark: can the synthetic song renderer feed song-mode training (the default run)?

Excerpts per second rendered on one core (the calling thread pinned, CPU time of that
thread) at the default excerpt (15 s at 22.05 kHz, ``data=songs``), against what a
song-mode training step of the default model and batch consumes on all cores. A
DataLoader worker is one core, so ``num_workers=1`` with ``data.cache=false`` keeps up
when rendering >= consumption; the target asks 2x headroom. The main job does not render
while it trains: ``data.cache=true`` renders every excerpt once and serves float16 copies
from memory, so the second row measures what a training step really waits for.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Tuple, cast

import torch
from hydra.utils import instantiate
from torch.utils.data import TensorDataset

from chordexp.bench.common import Row, cpu_timed, echo, median, one_core, ratio, timed
from chordexp.bench.defaults import compose_default
from chordexp.bench.plainloop import plain_step
from chordexp.bench.sizes import Sizes
from chordexp.data import SyntheticSongDataset
from chordexp.data.memory import InMemoryDataset

HEADROOM = 2.0  # rendering on one core / consumption on all cores


def song_components(seconds: float) -> Tuple[Any, Dict[str, Any]]:
    """``(composed config, {model, criterion, optimizer_factory, dataset})`` of the default
    song-mode run with excerpts of ``seconds``."""
    cfg = compose_default(f"data.clip_seconds={seconds}", clip_mode=False)
    torch.manual_seed(int(cfg.seed))
    return cfg, {
        "model": instantiate(cfg.model, _convert_="all"),
        "criterion": instantiate(cfg.loss, _convert_="all"),
        "optimizer_factory": instantiate(cfg.optimizer, _convert_="all"),
        "dataset": instantiate(cfg.data.dataset, size=max(int(cfg.data.batch_size), 1), split="train", _convert_="all"),
    }


#: The record-like factors of the song generator (docs/realism.md), all off: the
#: renderer as it was before them, the baseline of their cost.
REALISM_OFF = {
    "voice_prob": 0.0,
    "backing_prob": 0.0,
    "instrument_fx_prob": 0.0,
    "arrangement_prob": 0.0,
    "power_chord_prob": 0.0,
    "record_chain_prob": 0.0,
    "codec_prob": 0.0,
    "tuning_drift_cents": 0.0,
}


def rendering_rates(dataset: Any, excerpts: int, repeats: int, **overrides: Any) -> List[float]:
    """Excerpts/s on one core, one figure per repetition (different excerpts each time:
    songs differ in parts and length of notes, so cost varies by song)."""
    renderer = SyntheticSongDataset(
        excerpts * repeats,
        split="train",
        sample_rate=dataset.sample_rate,
        clip_seconds=dataset.clip_seconds,
        **overrides,
    )
    renderer[0]  # loads the SoundFont: once per worker, not per excerpt
    with one_core():
        # cast: mypy cannot type a lambda that binds r as a default argument
        return [
            excerpts
            / cpu_timed(cast(Callable[[], Any], lambda r=r: [renderer[r * excerpts + i] for i in range(excerpts)]))
            for r in range(repeats)
        ]


def cached_rates(batch: Any, repeats: int) -> List[float]:
    """Excerpts/s served on one core by the in-memory cache (``data.cache=true``)."""
    audio, targets = batch
    keys = list(targets)

    class Items(TensorDataset):
        def __getitem__(self, i):  # (audio, {targets}) as the song dataset gives them
            values = super().__getitem__(i)
            return values[0], dict(zip(keys, values[1:]))

    cache = InMemoryDataset(Items(audio, *[targets[k] for k in keys]), num_workers=0)
    count = len(cache)
    with one_core():
        return [50 * count / cpu_timed(lambda: [cache[i % count] for i in range(50 * count)]) for _ in range(repeats)]


def training_batch(sizes: Sizes) -> Tuple[Any, Dict[str, Any], Any]:
    """``(composed config, components, one rendered batch)`` of the default song-mode run."""
    cfg, parts = song_components(sizes.song_excerpt_seconds)
    batch_size = int(sizes.batch_size or cfg.data.batch_size)
    echo(f"songs: rendering a batch of {batch_size} x {sizes.song_excerpt_seconds:g} s excerpts")
    items = [parts["dataset"][i % len(parts["dataset"])] for i in range(batch_size)]
    batch = (torch.stack([a for a, _ in items]), {k: torch.stack([t[k] for _, t in items]) for k in items[0][1]})
    return cfg, parts, batch


def training_consumption(sizes: Sizes, prepared: Any = None) -> Tuple[float, List[float]]:
    """``(excerpts/s, step seconds)``: what song-mode training steps of the default model,
    loss, optimizer and batch consume on all of torch's threads."""
    cfg, parts, batch = prepared or training_batch(sizes)
    batch_size = len(batch[0])
    echo(f"songs: training consumption ({sizes.consumption_steps} steps, batch {batch_size})")
    model = copy.deepcopy(parts["model"]).train()
    optimizer = parts["optimizer_factory"](model.parameters())
    clip = float(cfg.trainer.gradient_clip)
    step = lambda: plain_step(model, parts["criterion"], optimizer, batch, clip)  # noqa: E731
    for _ in range(2):
        step()
    steps = [timed(step) for _ in range(sizes.consumption_steps)]
    return batch_size / median(steps), steps


def run(sizes: Sizes) -> List[Row]:
    seconds = sizes.song_excerpt_seconds
    cfg, parts, batch = prepared = training_batch(sizes)
    batch_size = len(batch[0])
    consumption, steps = training_consumption(sizes, prepared)
    echo(f"songs: rendering, {sizes.repeats} x {sizes.song_excerpts} excerpts on one core")
    rendered = rendering_rates(parts["dataset"], sizes.song_excerpts, sizes.repeats)
    echo("songs: rendering with the record-like factors off (the renderer before them)")
    plain = rendering_rates(parts["dataset"], sizes.song_excerpts, sizes.repeats, **REALISM_OFF)
    echo("songs: the in-memory cache on one core")
    cached = cached_rates(batch, sizes.repeats)
    render_rate, cache_rate = median(rendered), median(cached)
    step_note = f"training step {median(steps):.2f} s at batch {batch_size} x {seconds:g} s, all cores"
    return [
        Row(
            benchmark="songs",
            measure=f"rendered excerpts/s ({seconds:g} s), one core",
            value=render_rate,
            unit="excerpts/s",
            baseline_name="training consumption",
            baseline=consumption,
            baseline_unit="excerpts/s",
            ratio=ratio(render_rate, consumption),
            ratio_of="rendered / consumed",
            target_op=">=",
            target=HEADROOM,
            note=step_note,
            samples={"excerpts_per_s": rendered, "step_s": steps},
        ),
        Row(
            benchmark="songs",
            measure="cached excerpts/s (data.cache=true), one core",
            value=cache_rate,
            unit="excerpts/s",
            baseline_name="training consumption",
            baseline=consumption,
            baseline_unit="excerpts/s",
            ratio=ratio(cache_rate, consumption),
            ratio_of="served / consumed",
            target_op=">=",
            target=HEADROOM,
            note="float16 in memory, 0.66 MB per 15-s excerpt",
            samples={"excerpts_per_s": cached},
        ),
        Row(
            benchmark="songs",
            measure=f"render s per excerpt ({seconds:g} s), one core, record-like factors on",
            value=1.0 / render_rate,
            unit="s",
            baseline_name="the same, factors off",
            baseline=1.0 / median(plain),
            baseline_unit="s",
            ratio=ratio(median(plain), render_rate),
            ratio_of="cost on / off",
            target_op="<=",
            target=2.0,
            note="voices, amp/rotary, arrangements, record chain, MP3 codec, tuning drift (docs/realism.md)",
            samples={"excerpts_per_s_off": plain},
        ),
    ]
