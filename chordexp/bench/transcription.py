"""Benchmark 4: how fast ``predict`` transcribes a song on one CPU core.

The parent writes a checkpoint of the default model (untrained: the cost does not
depend on the weights) and a 3-minute 44.1 kHz WAV of rendered chords; each
repetition is a fresh child process pinned to one core with one torch thread that
imports the libraries (not timed: that is start-up, benchmark 5), then measures the CPU
time of what ``python -m chordexp.predict`` does: load the checkpoint, read and
resample the file, run the model, decode, write the ``.lab``.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping

from chordexp.bench.common import Row, echo, median, ratio
from chordexp.bench.probe import run_probe
from chordexp.bench.sizes import Sizes

TARGET = 200.0  # x real time
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def write_checkpoint(path: Path) -> None:
    """A real training checkpoint of the default model, written by the Trainer."""
    import torch

    from chordexp.bench.defaults import default_components
    from chordexp.training import Trainer

    config, parts = default_components()
    config.checkpoint_dir = str(path.parent)
    batch = [(torch.zeros(1, parts["model"].sample_rate),
              {key: torch.zeros(1, dtype=torch.long) for key in ("chord_type", "root", "bass_note")})]
    Trainer(model=parts["model"], train_loader=batch, val_loader=batch, config=config,
            criterion=parts["criterion"], optimizer_factory=parts["optimizer_factory"]).save_checkpoint(path)


def write_song(path: Path, seconds: float, sample_rate: int = 44100) -> float:
    """A WAV of rendered chord clips; returns its duration in seconds."""
    import soundfile

    from chordexp.bench.audio import rendered_audio

    audio = rendered_audio(seconds, sample_rate)
    soundfile.write(str(path), audio, sample_rate, subtype="PCM_16")
    return len(audio) / sample_rate


def probe(args: Mapping[str, Any]) -> Dict[str, float]:
    """In the child: one core, one thread, imports first; then the timed transcription."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import torch

    import chordexp.audio  # noqa: F401  (soundfile, soxr)
    import chordexp.decode  # noqa: F401
    import chordexp.model  # noqa: F401
    from chordexp.predict import ChordRecognizer, transcribe_files

    torch.set_num_threads(1)
    wall, start = time.perf_counter(), time.process_time()
    recognizer = ChordRecognizer.from_checkpoint(args["checkpoint"])
    loaded = time.process_time()
    transcribe_files(recognizer, Path(args["input"]), Path(args["output"]), progress=False, echo=lambda *_: None)
    done = time.process_time()
    return {"seconds": done - start, "load_seconds": loaded - start, "wall_seconds": time.perf_counter() - wall}


def run(sizes: Sizes) -> List[Row]:
    with tempfile.TemporaryDirectory(prefix="chordexp-bench-") as tmp:
        folder = Path(tmp)
        write_checkpoint(folder / "model.pt")
        duration = write_song(folder / "song.wav", sizes.song_seconds)
        echo(f"transcribe: {duration:.0f} s song, {sizes.repeats} fresh processes on one core")
        args = {"checkpoint": str(folder / "model.pt"), "input": str(folder / "song.wav"),
                "output": str(folder / "labs")}
        results = [run_probe("transcribe", args, env=ONE_THREAD) for _ in range(sizes.repeats)]
    seconds = [r["seconds"] for r in results]
    loads = [r["load_seconds"] for r in results]
    walls = [r["wall_seconds"] for r in results]
    compute = median(seconds)
    return [Row(
        benchmark="transcribe", measure=f"predict on a {duration:.0f} s WAV, one core", value=compute, unit="s",
        baseline_name="real time", baseline=duration, baseline_unit="s", ratio=ratio(duration, compute),
        ratio_of="x real time", target_op=">=", target=TARGET,
        note=f"CPU time; model load {median(loads):.2f} s included, imports excluded; wall {median(walls):.2f} s",
        samples={"seconds": seconds, "load_seconds": loads, "wall_seconds": walls},
    )]
