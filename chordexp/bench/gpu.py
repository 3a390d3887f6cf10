"""Benchmark: the training step and transcription on a CUDA GPU.

    python -m chordexp.bench only=gpu [quick=true] [repeats=N]

For the default model and batch of clip mode (32 x 1 s at 44.1 kHz) and song mode
(8 x 15 s at 22.05 kHz), one training step (forward, loss, backward, fused AdamW) in
each of fp32, bf16 autocast, ``torch.compile`` and channels-last memory format: the
median step time, samples per second and the peak of ``torch.cuda.max_memory_allocated``;
then how fast the song-mode model transcribes a 3-minute song (x real time). Without a
GPU it prints one line saying so and adds no rows; ``measure(device="cpu", ...)`` runs
the same code on the CPU (the tests do, in quick mode).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any, Dict, Iterable, List, Tuple

import numpy as np
import torch
from hydra.utils import instantiate

from chordexp.bench.common import Row, echo, ratio
from chordexp.bench.defaults import compose_default
from chordexp.bench.sizes import Sizes
from chordexp.inference import ChordRecognizer

MODES = ("fp32", "bf16", "compile", "channels_last")
TASKS = ("clip", "song")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def task_parts(task: str, quick: bool) -> Dict[str, Any]:
    """The default run's model, loss, optimizer factory, batch size and item length for
    ``task`` (clip or song mode); quick: a batch of 2 and 2-s song excerpts."""
    overrides = ("data.clip_seconds=2.0",) if quick and task == "song" else ()
    cfg = compose_default(*overrides, clip_mode=task == "clip")
    return {
        "model": instantiate(cfg.model, _convert_="all"),
        "criterion": instantiate(cfg.loss, _convert_="all"),
        "optimizer_factory": instantiate(cfg.optimizer, _convert_="all"),
        "batch_size": 2 if quick else int(cfg.data.batch_size),
        "samples": int(round(float(cfg.data.clip_seconds) * int(cfg.data.sample_rate))),
        "sample_rate": int(cfg.data.sample_rate),
    }


def _batch(model, batch_size: int, samples: int, device: str):
    """Random audio and labels shaped like the model's outputs (the cost does not depend on them)."""
    audio = torch.randn(batch_size, samples, device=device) * 0.1
    with torch.no_grad():
        outputs = model(audio)
    targets = {k: torch.randint(0, v.shape[-1], v.shape[:-1], device=device) for k, v in outputs.items()}
    return audio, targets


def step_figures(parts: Dict[str, Any], mode: str, device: str, steps: int, warmup: int) -> Dict[str, Any]:
    """Median step time (s), samples/s and peak memory (bytes, CUDA only; 0 elsewhere)
    of training steps in ``mode``."""
    model = parts["model"].to(device).train()
    criterion = parts["criterion"]
    if mode == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    optimizer = parts["optimizer_factory"](model.parameters())
    forward = torch.compile(model) if mode == "compile" else model
    autocast = (
        torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
        if mode == "bf16"
        else contextlib.nullcontext()
    )
    audio, targets = _batch(model, parts["batch_size"], parts["samples"], device)

    def step() -> None:
        with autocast:
            losses = criterion(forward(audio), targets)
        optimizer.zero_grad(set_to_none=True)
        losses["total_loss"].backward()
        optimizer.step()

    cuda = device.startswith("cuda")
    for _ in range(warmup):
        step()
    _sync(device)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {
        "step_s": seconds,
        "samples_per_s": parts["batch_size"] / seconds,
        "peak_bytes": float(torch.cuda.max_memory_allocated(device)) if cuda else 0.0,
        "times": times,
    }


def transcription_figures(parts: Dict[str, Any], device: str, seconds: float, repeats: int) -> Dict[str, Any]:
    """x real time of ``ChordRecognizer.analyse`` + ``decode`` on ``seconds`` of audio at
    the model's rate (no file: decoding files is a CPU matter)."""
    recognizer = ChordRecognizer(parts["model"], device=device)
    rate = parts["sample_rate"]
    audio = (np.random.default_rng(0).standard_normal(int(seconds * rate)) * 0.1).astype(np.float32)
    recognizer.decode(recognizer.analyse(audio, rate))  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        recognizer.decode(recognizer.analyse(audio, rate))
        _sync(device)
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "x_real_time": seconds / statistics.median(times), "times": times}


def measure(
    device: str,
    quick: bool,
    repeats: int,
    modes: Iterable[str] = MODES,
    tasks: Iterable[str] = TASKS,
    song_seconds: float = 180.0,
) -> List[Row]:
    """The rows of this benchmark on ``device`` (any torch device: CPU in the tests)."""
    rows: List[Row] = []
    steps, warmup = (max(1, repeats), 1) if quick else (max(10, repeats), 3)
    for task in tasks:
        baseline: Tuple[float, float] = (float("nan"), float("nan"))
        for mode in modes:
            torch.manual_seed(0)
            parts = task_parts(task, quick)
            figures = step_figures(parts, mode, device, steps, warmup + (2 if mode == "compile" else 0))
            if mode == "fp32":
                baseline = (figures["step_s"], figures["samples_per_s"])
            peak = figures["peak_bytes"] / 2**20
            echo(
                f"gpu: {task} {mode}: {figures['step_s'] * 1e3:.1f} ms/step, {figures['samples_per_s']:.1f} "
                f"samples/s, peak {peak:.0f} MiB"
            )
            rows.append(
                Row(
                    benchmark="gpu",
                    measure=f"{task} mode training step, {mode}, batch {parts['batch_size']}",
                    value=figures["step_s"],
                    unit="s",
                    baseline_name="fp32 step",
                    baseline=baseline[0],
                    baseline_unit="s",
                    ratio=ratio(baseline[0], figures["step_s"]),
                    ratio_of="speed-up over fp32",
                    note=f"{figures['samples_per_s']:.1f} samples/s; peak {peak:.0f} MiB allocated ({device})",
                    samples={"step_s": figures["times"], "peak_bytes": [figures["peak_bytes"]]},
                )
            )
    parts = task_parts("song", quick)
    figures = transcription_figures(parts, device, 10.0 if quick else song_seconds, max(1, repeats))
    rows.append(
        Row(
            benchmark="gpu",
            measure=f"transcribe {10.0 if quick else song_seconds:.0f} s (song-mode model)",
            value=figures["seconds"],
            unit="s",
            baseline_name="real time",
            baseline=10.0 if quick else song_seconds,
            baseline_unit="s",
            ratio=figures["x_real_time"],
            ratio_of="x real time",
            note=f"analyse + decode on {device}, audio already in memory",
            samples={"seconds": figures["times"]},
        )
    )
    return rows


def run(sizes: Sizes) -> List[Row]:
    if not torch.cuda.is_available():
        echo("gpu: skipped: no CUDA GPU on this machine (torch.cuda.is_available() is False)")
        return []
    name = torch.cuda.get_device_name(0)
    echo(f"gpu: {name}, {', '.join(MODES)} x {', '.join(TASKS)} mode, then transcription")
    quick = sizes.batch_size is not None  # only the quick sizes fix a (small) batch
    return measure("cuda", quick=quick, repeats=sizes.repeats)
