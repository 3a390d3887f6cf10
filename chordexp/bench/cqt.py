"""Benchmark 3: the model's constant-Q style front end against librosa's CQT.

Both transform the same audio (rendered chord clips, back to back) with the same bins
(``fmin``, bins per octave, octaves) and hop, on one core. Agreement is the Pearson
correlation of their log magnitudes (80 dB floor), the front end's loudness
normalisation applied to both (it is a per-frame gain: an offset in log). Speed is
one front-end pass (its filterbank is built once, with the model) against one
``librosa.cqt`` call (which builds its filters every call: its normal use), in CPU
seconds of the pinned thread.
"""

from __future__ import annotations

import warnings
from typing import Dict, List, Tuple

import numpy as np
import torch

from chordexp.bench.audio import rendered_audio
from chordexp.bench.common import Row, cpu_timed, echo, median, one_core, ratio
from chordexp.bench.defaults import default_batch_size, default_components
from chordexp.bench.sizes import Sizes
from chordexp.errors import UsageError
from chordexp.model.multirate import fft_decimate

TARGET = 10.0
FLOOR_DB = 80.0


def _librosa():
    try:
        import librosa
    except ImportError:
        raise UsageError(
            "the front-end benchmark needs librosa: .venv/bin/pip install -e '.[bench]' "
            "(or run with only=... without frontend)"
        ) from None
    return librosa


def log_correlation(ours: np.ndarray, reference: np.ndarray) -> float:
    """Pearson correlation of two ``(bins, frames)`` magnitude arrays in dB, each floored
    ``FLOOR_DB`` below its maximum; frames are cropped to the shorter, edges dropped."""
    frames = min(ours.shape[1], reference.shape[1])
    inner = slice(1, frames - 1) if frames > 2 else slice(0, frames)
    logs = []
    for mag in (ours[:, inner], reference[:, inner]):
        mag = np.maximum(mag, mag.max() * 10.0 ** (-FLOOR_DB / 20.0) + 1e-30)
        logs.append(20.0 * np.log10(mag).ravel())
    return float(np.corrcoef(logs[0], logs[1])[0, 1])


def transforms(frontend, grid: Dict[str, float], audio: np.ndarray, librosa) -> Tuple[np.ndarray, np.ndarray]:
    """``(ours, reference)`` normalised magnitudes, ``(bins, frames)`` each."""
    with torch.inference_mode():
        ours = torch.expm1(frontend(torch.from_numpy(audio)[None]))[0] / frontend.compression
        reference = torch.from_numpy(np.abs(reference_cqt(frontend, grid, audio, librosa))).float()[None]
        reference = (reference / frontend.local_level(reference))[0]
    return ours.numpy(), reference.numpy()


def reference_cqt(frontend, grid: Dict[str, float], audio: np.ndarray, librosa) -> np.ndarray:
    """librosa's CQT on the front end's bins and hop (complex, ``(bins, frames)``)."""
    return librosa.cqt(
        audio,
        sr=frontend.sample_rate,
        hop_length=frontend.hop_length,
        fmin=grid["fmin"],
        n_bins=frontend.n_bins,
        bins_per_octave=int(grid["bins_per_octave"]),
    )


def speed(frontend, grid: Dict[str, float], inputs: np.ndarray, repeats: int, librosa) -> Tuple[list, list]:
    """Seconds of the front end on ``inputs`` ``(items, samples)`` in one call, and of
    librosa's CQT over the items one by one, ``repeats`` times each on one core."""
    x = torch.from_numpy(np.ascontiguousarray(inputs))
    reference = lambda: [reference_cqt(frontend, grid, item, librosa) for item in inputs]  # noqa: E731
    with one_core(), torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa: the lowest filters are longer than a 1-s clip
        frontend(x), reference()
        ours = [cpu_timed(lambda: frontend(x)) for _ in range(repeats)]
        theirs = [cpu_timed(reference) for _ in range(repeats)]
    return ours, theirs


def previous_decimation(frontend, song: np.ndarray, repeats: int, seconds: float) -> List[Row]:
    """The front end against itself with its earlier decimation (one FFT of the whole
    signal, ``multirate.fft_decimate``) on the song: speed on one core, and how well the
    outputs agree (what keeps older checkpoints valid)."""
    x = torch.from_numpy(song)[None]
    with one_core(), torch.inference_mode():
        new = frontend(x)
        ours = [cpu_timed(lambda: frontend(x)) for _ in range(repeats)]
        frontend.decimate = lambda audio: fft_decimate(audio, frontend.decimation)  # this instance only
        try:
            old = frontend(x)
            theirs = [cpu_timed(lambda: frontend(x)) for _ in range(repeats)]
        finally:
            del frontend.decimate  # the class's method again
    inner = slice(1, -1) if new.shape[-1] > 2 else slice(None)  # the edge frames: zero-padded vs circular
    r = float(np.corrcoef(new[..., inner].flatten().numpy(), old[..., inner].flatten().numpy())[0, 1])
    ours_s, theirs_s = median(ours), median(theirs)
    return [
        Row(
            benchmark="frontend",
            measure=f"{seconds:.0f} s song, multirate decimation, one core",
            value=ours_s,
            unit="s",
            baseline_name="whole-signal FFT decimation (before)",
            baseline=theirs_s,
            baseline_unit="s",
            ratio=ratio(theirs_s, ours_s),
            ratio_of="speed-up",
            note="the front end with each decimation",
            samples={"ours_s": ours, "previous_s": theirs},
        ),
        Row(
            benchmark="frontend",
            measure=f"agreement with the previous front end ({seconds:.0f} s)",
            value=r,
            unit="r",
            baseline_name="identical output",
            baseline=1.0,
            baseline_unit="r",
            ratio=r,
            ratio_of="correlation of the outputs",
            target_op=">=",
            target=0.999,
            note="first and last frame left out, as for the CQT",
        ),
    ]


def run(sizes: Sizes) -> List[Row]:
    librosa = _librosa()
    model = default_components()[1]["model"]
    frontend = model.frontend.eval()
    grid = {key: model.hparams[key] for key in ("fmin", "bins_per_octave")}
    rate = frontend.sample_rate
    batch_size = sizes.batch_size or default_batch_size()
    song = rendered_audio(sizes.frontend_seconds, rate)
    clips = rendered_audio(batch_size, rate).reshape(batch_size, -1)
    seconds = len(song) / rate
    echo(f"frontend: a batch of {batch_size} x 1 s and {seconds:.0f} s of audio, {sizes.repeats} runs each, one core")
    ours, reference = transforms(frontend, grid, song, librosa)
    octave = int(grid["bins_per_octave"])
    by_octave = [log_correlation(ours[i : i + octave], reference[i : i + octave]) for i in range(0, len(ours), octave)]
    agreement = log_correlation(ours, reference)
    rows = []
    for name, inputs in ((f"batch of {batch_size} x 1 s clips", clips), (f"{seconds:.0f} s song", song[None])):
        ours_times, reference_times = speed(frontend, grid, inputs, sizes.repeats, librosa)
        ours_s, reference_s = median(ours_times), median(reference_times)
        rows.append(
            Row(
                benchmark="frontend",
                measure=f"{name}, one core",
                value=ours_s,
                unit="s",
                baseline_name=f"librosa {librosa.__version__} cqt",
                baseline=reference_s,
                baseline_unit="s",
                ratio=ratio(reference_s, ours_s),
                ratio_of="speed-up",
                target_op=">=",
                target=TARGET,
                note=f"{frontend.n_bins} bins, hop {frontend.hop_length}; librosa one call per clip",
                samples={"ours_s": ours_times, "reference_s": reference_times},
            )
        )
    rows.extend(previous_decimation(frontend, song, sizes.repeats, seconds))
    rows.append(
        Row(
            benchmark="frontend",
            measure=f"agreement with the CQT ({seconds:.0f} s)",
            value=agreement,
            unit="r",
            baseline_name="identical transform",
            baseline=1.0,
            baseline_unit="r",
            ratio=agreement,
            ratio_of=f"correlation of log magnitudes, {FLOOR_DB:.0f} dB floor",
            note="by octave C1..C6: " + ", ".join(f"{r:.2f}" for r in by_octave),
            samples={"octave_r": by_octave},
        )
    )
    return rows
