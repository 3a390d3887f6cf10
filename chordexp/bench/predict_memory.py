"""Benchmark: peak memory of ``predict`` on a song and on a very long recording.

    python -m chordexp.bench.predict_memory [short_seconds=180] [long_seconds=7200] [sample_rate=44100]

The parent writes two WAVs of synthetic chords (a loop of four triads of sine tones,
16-bit mono, written block by block: the 2-hour one is a 635 MB file at 44.1 kHz) into
a temporary folder, then runs ``python -m chordexp.predict`` (the packaged model, its
default settings) on each in a fresh child process and reads that child's peak
resident set size from ``wait4`` (``ru_maxrss``) and its wall time. The short file is
the baseline measured in the same run: a long recording should cost time, not memory
(``predict`` streams files longer than ``chordexp.inference.streaming``'s threshold in
windows). Also ``python -m chordexp.bench only=predict_memory``.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from chordexp.bench.common import Row, echo, ratio
from chordexp.bench.sizes import Sizes

#: the long file's peak RSS over the short file's: a 40x longer file, under twice the memory
GROWTH_TARGET = 2.0
#: the chord loop: four triads (Hz of the three tones), two seconds each
CHORDS = (
    (261.63, 329.63, 392.00),  # C
    (196.00, 246.94, 293.66),  # G
    (220.00, 261.63, 329.63),  # Am
    (174.61, 220.00, 261.63),  # F
)
CHORD_SECONDS = 2.0


def chord_loop_block(start: int, length: int, sample_rate: int) -> np.ndarray:
    """Samples ``start .. start + length`` of the chord loop, float32 in [-0.6, 0.6]."""
    n = start + np.arange(length, dtype=np.int64)
    per_chord = int(CHORD_SECONDS * sample_rate)
    chord = (n // per_chord) % len(CHORDS)
    into = (n % per_chord) / sample_rate
    t = n / sample_rate
    envelope = 0.2 * np.exp(-1.5 * into) + 0.05  # a struck-then-held level per chord
    out = np.zeros(length, dtype=np.float64)
    for k, tones in enumerate(CHORDS):
        mask = chord == k
        if mask.any():
            out[mask] = sum(np.sin(2 * math.pi * f * t[mask]) for f in tones)
    return (envelope * out).astype(np.float32)


def write_chord_loop(path: Path, seconds: float, sample_rate: int = 44100, block_seconds: float = 30.0) -> float:
    """A 16-bit mono WAV of the chord loop, written in blocks (bounded memory); returns
    its duration in seconds."""
    import soundfile

    total = int(round(seconds * sample_rate))
    block = int(block_seconds * sample_rate)
    with soundfile.SoundFile(str(path), "w", sample_rate, 1, subtype="PCM_16") as out:
        for start in range(0, total, block):
            out.write(chord_loop_block(start, min(block, total - start), sample_rate))
    return total / sample_rate


@dataclass
class Measured:
    peak_rss_mb: float
    wall_seconds: float
    returncode: int


def measure_predict(audio: Path, output: Path, extra: Optional[List[str]] = None) -> Measured:
    """``python -m chordexp.predict input=AUDIO output=OUTPUT`` in a child process: its peak
    RSS (``wait4``'s ``ru_maxrss``, that child alone) and wall time."""
    command = [sys.executable, "-m", "chordexp.predict", f"input={audio}", f"output={output}", "progress=false"]
    start = time.perf_counter()
    child = subprocess.Popen(command + list(extra or []), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    error = child.stderr.read().decode(errors="replace") if child.stderr else ""
    if child.returncode:
        echo(f"predict_memory: predict on {audio.name} exited {child.returncode}: {error.strip()[-400:]}")
    return Measured(usage.ru_maxrss / 1024.0, wall, child.returncode)  # ru_maxrss: KiB on Linux


def measure(short_seconds: float, long_seconds: float, sample_rate: int = 44100) -> Dict[str, Measured]:
    """Write both files into a temporary folder and measure predict on each."""
    results: Dict[str, Measured] = {}
    with tempfile.TemporaryDirectory(prefix="chordexp-bench-") as tmp:
        folder = Path(tmp)
        for name, seconds in (("short", short_seconds), ("long", long_seconds)):
            song = folder / f"{name}.wav"
            started = time.perf_counter()
            duration = write_chord_loop(song, seconds, sample_rate)
            echo(
                f"predict_memory: wrote {duration:.0f} s at {sample_rate} Hz ({song.stat().st_size / 1e6:.0f} MB) "
                f"in {time.perf_counter() - started:.1f} s; running predict"
            )
            results[name] = measure_predict(song, folder / f"labs-{name}")
            echo(
                f"predict_memory: {name} ({duration:.0f} s): peak RSS {results[name].peak_rss_mb:.0f} MB, "
                f"wall {results[name].wall_seconds:.1f} s, exit {results[name].returncode}"
            )
            song.unlink()
    return results


def run(sizes: Sizes) -> List[Row]:
    short, long = sizes.memory_song_seconds
    results = measure(short, long)
    s, lg = results["short"], results["long"]
    return [
        Row(
            benchmark="predict_memory",
            measure=f"predict on a {_length(long)} WAV, peak RSS",
            value=lg.peak_rss_mb,
            unit="MB",
            baseline_name=f"a {_length(short)} WAV",
            baseline=s.peak_rss_mb,
            baseline_unit="MB",
            ratio=ratio(lg.peak_rss_mb, s.peak_rss_mb),
            ratio_of="long / short",
            target_op="<=",
            target=GROWTH_TARGET,
            note=f"wall {lg.wall_seconds:.1f} s against {s.wall_seconds:.1f} s; exit codes {lg.returncode}, {s.returncode}",
            samples={
                "peak_rss_mb": [s.peak_rss_mb, lg.peak_rss_mb],
                "wall_seconds": [s.wall_seconds, lg.wall_seconds],
            },
        )
    ]


def _length(seconds: float) -> str:
    return f"{seconds / 60:g}-minute" if seconds >= 60 else f"{seconds:g}-s"


def main(argv: Optional[List[str]] = None) -> int:
    options = {"short_seconds": 180.0, "long_seconds": 7200.0, "sample_rate": 44100.0}
    for arg in sys.argv[1:] if argv is None else argv:
        key, _, value = arg.partition("=")
        if key not in options or not value:
            print(f"usage: python -m chordexp.bench.predict_memory {' '.join(f'[{k}=N]' for k in options)}")
            return 2
        options[key] = float(value)
    results = measure(options["short_seconds"], options["long_seconds"], int(options["sample_rate"]))
    for name, seconds in (("short", options["short_seconds"]), ("long", options["long_seconds"])):
        m = results[name]
        print(
            f"{name:5s} {seconds:7.0f} s: peak RSS {m.peak_rss_mb:7.0f} MB  wall {m.wall_seconds:7.1f} s  exit {m.returncode}"
        )
    growth = ratio(results["long"].peak_rss_mb, results["short"].peak_rss_mb)
    print(f"long / short peak RSS: {growth:.2f} (target <= {GROWTH_TARGET})")
    return 0 if all(m.returncode == 0 for m in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
