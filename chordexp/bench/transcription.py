"""Benchmark 4: how fast ``predict`` transcribes a song on one CPU core.

The parent writes a checkpoint of the default model (untrained: the cost does not
depend on the weights) and a 3-minute 44.1 kHz WAV of rendered chords; each
repetition is a fresh child process that imports the libraries with this module (not
timed: that is start-up, benchmark 5), pins itself to one core with one torch thread,
then measures the CPU time of what ``python -m chordexp.predict`` does: load the
checkpoint, read and resample the file, run the model, decode, write the ``.lab``.

The folder figure: ``folder_files`` copies of a song in one folder, transcribed by one
fresh process on (at most) 2 cores with its default decode workers, wall time from
loading the checkpoint to the last ``.lab``, against the same process with
``workers=0`` (decoding and the model in turn) on the first ``folder_serial_files``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping

import torch

from chordexp.bench.audio import rendered_audio
from chordexp.bench.common import Row, echo, median, ratio
from chordexp.bench.defaults import default_components
from chordexp.bench.probe import run_probe
from chordexp.bench.sizes import Sizes
from chordexp.inference import ChordRecognizer, transcribe_files
from chordexp.training import Trainer

TARGET = 200.0  # x real time
FOLDER_TARGET = 1000.0  # x real time, 2 cores
SONG_TARGET_S = 0.35  # one 3-minute song on one core, model load included
FOLDER_CORES = 2
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def write_checkpoint(path: Path) -> None:
    """A real training checkpoint of the default model, written by the Trainer."""
    config, parts = default_components()
    config.checkpoint_dir = str(path.parent)
    batch = [
        (
            torch.zeros(1, parts["model"].sample_rate),
            {key: torch.zeros(1, dtype=torch.long) for key in ("chord_type", "root", "bass_note")},
        )
    ]
    Trainer(
        model=parts["model"],
        train_loader=batch,
        val_loader=batch,
        config=config,
        criterion=parts["criterion"],
        optimizer_factory=parts["optimizer_factory"],
    ).save_checkpoint(path)


def write_song(path: Path, seconds: float, sample_rate: int = 44100) -> float:
    """A WAV of rendered chord clips; returns its duration in seconds."""
    import soundfile

    audio = rendered_audio(seconds, sample_rate)
    soundfile.write(str(path), audio, sample_rate, subtype="PCM_16")
    return len(audio) / sample_rate


def probe(args: Mapping[str, Any]) -> Dict[str, float]:
    """In the child (the libraries imported with this module): one core, one thread; then
    the timed transcription."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    torch.set_num_threads(1)
    wall, start = time.perf_counter(), time.process_time()
    recognizer = ChordRecognizer.from_checkpoint(args["checkpoint"])
    loaded = time.process_time()
    transcribe_files(recognizer, Path(args["input"]), Path(args["output"]), progress=False, echo=lambda *_: None)
    done = time.process_time()
    return {"seconds": done - start, "load_seconds": loaded - start, "wall_seconds": time.perf_counter() - wall}


def folder_probe(args: Mapping[str, Any]) -> Dict[str, float]:
    """In the child (the libraries imported with this module): ``cores`` cores, as many
    torch threads; then the wall time of loading the checkpoint and transcribing the
    folder with ``workers``."""
    cores = sorted(os.sched_getaffinity(0))[: int(args["cores"])] if hasattr(os, "sched_getaffinity") else []
    if cores:
        os.sched_setaffinity(0, set(cores))
    torch.set_num_threads(max(1, len(cores) or int(args["cores"])))
    start = time.perf_counter()
    recognizer = ChordRecognizer.from_checkpoint(args["checkpoint"])
    failures = transcribe_files(
        recognizer,
        Path(args["input"]),
        Path(args["output"]),
        progress=False,
        echo=lambda *_: None,
        workers=args["workers"],
    )
    return {"wall_seconds": time.perf_counter() - start, "failures": failures, "cores": len(cores)}


def write_folder(folder: Path, song: Path, files: int) -> None:
    """``files`` copies of ``song`` (hard links where the file system has them)."""
    folder.mkdir()
    for i in range(files):
        target = folder / f"song{i:03d}{song.suffix}"
        try:
            os.link(song, target)
        except OSError:
            shutil.copyfile(song, target)


def folder_rows(folder: Path, checkpoint: Path, sizes: Sizes) -> List[Row]:
    """Throughput of predict over a folder on 2 cores, with and without decode workers."""
    song = folder / "folder-song.wav"
    duration = write_song(song, sizes.folder_seconds)
    write_folder(folder / "all", song, sizes.folder_files)
    write_folder(folder / "some", song, min(sizes.folder_serial_files, sizes.folder_files))
    echo(
        f"transcribe: folder of {sizes.folder_files} x {duration:.0f} s on {FOLDER_CORES} cores "
        f"(workers default), and {sizes.folder_serial_files} files with workers=0"
    )
    base = {"checkpoint": str(checkpoint), "cores": FOLDER_CORES}
    parallel = run_probe(
        "transcribe_folder", {**base, "input": str(folder / "all"), "output": str(folder / "p"), "workers": None}
    )
    serial = run_probe(
        "transcribe_folder", {**base, "input": str(folder / "some"), "output": str(folder / "s"), "workers": 0}
    )
    total = duration * sizes.folder_files
    speed = total / parallel["wall_seconds"]
    serial_speed = duration * min(sizes.folder_serial_files, sizes.folder_files) / serial["wall_seconds"]
    return [
        Row(
            benchmark="transcribe",
            measure=f"predict on a folder of {sizes.folder_files} x {duration:.0f} s, {parallel['cores']} cores",
            value=speed,
            unit="x real time",
            baseline_name="workers=0 (one process)",
            baseline=serial_speed,
            baseline_unit="x real time",
            ratio=speed,
            ratio_of="x real time",
            target_op=">=",
            target=FOLDER_TARGET,
            note=f"wall {parallel['wall_seconds']:.1f} s, model load included; speed-up over workers=0 "
            f"{ratio(speed, serial_speed):.2f}",
            samples={"wall_seconds": [parallel["wall_seconds"]], "serial_wall_seconds": [serial["wall_seconds"]]},
        ),
    ]


def run(sizes: Sizes) -> List[Row]:
    with tempfile.TemporaryDirectory(prefix="chordexp-bench-") as tmp:
        folder = Path(tmp)
        write_checkpoint(folder / "model.pt")
        duration = write_song(folder / "song.wav", sizes.song_seconds)
        echo(f"transcribe: {duration:.0f} s song, {sizes.repeats} fresh processes on one core")
        args = {
            "checkpoint": str(folder / "model.pt"),
            "input": str(folder / "song.wav"),
            "output": str(folder / "labs"),
        }
        results = [run_probe("transcribe", args, env=ONE_THREAD) for _ in range(sizes.repeats)]
        folder_result = folder_rows(folder, folder / "model.pt", sizes)
    seconds = [r["seconds"] for r in results]
    loads = [r["load_seconds"] for r in results]
    walls = [r["wall_seconds"] for r in results]
    compute = median(seconds)
    song_row = Row(
        benchmark="transcribe",
        measure=f"predict on a {duration:.0f} s WAV, one core, time",
        value=compute,
        unit="s",
        baseline_name="real time",
        baseline=duration,
        baseline_unit="s",
        ratio=compute,
        ratio_of="CPU seconds",
        target_op="<",
        target=SONG_TARGET_S,
        note=f"the row above as seconds; model load {median(loads):.2f} s included",
        samples={"seconds": seconds},
    )
    return [
        Row(
            benchmark="transcribe",
            measure=f"predict on a {duration:.0f} s WAV, one core",
            value=compute,
            unit="s",
            baseline_name="real time",
            baseline=duration,
            baseline_unit="s",
            ratio=ratio(duration, compute),
            ratio_of="x real time",
            target_op=">=",
            target=TARGET,
            note=f"CPU time; model load {median(loads):.2f} s included, imports excluded; wall {median(walls):.2f} s",
            samples={"seconds": seconds, "load_seconds": loads, "wall_seconds": walls},
        ),
        song_row,
        *folder_result,
    ]
