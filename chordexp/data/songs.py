"""``SyntheticSongDataset``: excerpts of synthetic songs with a chord label per frame.

Song mode trains on what a transcriber meets: 10-20 s of a song in which chords change
on beats at a harmonic rhythm, a band plays them (chord instruments, bass, drums, a
lead melody with non-chord tones), the whole band may be tuned off A440, and the mix is
mastered. Each item is a pure function of ``(seed, split, index)``: its generator is
seeded from ``SeedSequence([seed, SONG_TAG, split_id, stream, index])``, so any process or
worker renders the same audio, and the splits are disjoint streams.

Item: ``(audio float32 (num_samples,), targets)`` with frame targets (see
``chordexp.data.frames``): one label per model frame, read from the score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from chordexp.audio import SAMPLE_RATE_RULE, sample_rate_ok
from chordexp.chords import format_label
from chordexp.data.band_render import BandRenderer
from chordexp.data.dataset_contract import SONG_TAG, SPLITS, check_common, check_index, item_rng
from chordexp.data.frames import FrameGrid, frame_targets
from chordexp.data.harmony import plan_song
from chordexp.data.item_errors import item_error
from chordexp.data.production import lossy_codec, master, record_chain
from chordexp.errors import ConfigValueError

#: An excerpt's length, the context a song-mode model attends over (a folder's songs too).
EXCERPT_SECONDS = 15.0
_WHOLE_SONG = 1  # a second stream per split for whole songs (validation by transcription)

Segment = Tuple[float, float, str]


def song_rng(seed: int, split_id: int, index: int, stream: int = 0) -> np.random.Generator:
    return item_rng(seed, SONG_TAG, split_id, stream, index)


@dataclass
class RenderedSong:
    """Audio and its chord timeline: ``segments`` are ``(start s, end s, (type, root, bass))``."""

    audio: np.ndarray
    segments: List[Tuple[float, float, Tuple[int, int, int]]]
    tuning_cents: float

    def labelled(self) -> List[Segment]:
        """The timeline as Harte-labelled segments (contiguous from 0: the plan has no gaps)."""
        return [
            (start, end, format_label(root, chord_type, bass)) for start, end, (chord_type, root, bass) in self.segments
        ]


class SyntheticSongDataset(Dataset):
    """``size`` excerpts of ``clip_seconds`` (10-20 s is what song models train on).

    ``tuning_cents``: the whole band is tuned off A440 by up to this much (real
    recordings are often tens of cents off); ``n_prob`` scales how often songs hold
    stretches without harmony (intros on drums alone, breaks).
    ``sample_rate`` 22050 keeps everything the model's front end uses (it reads
    nothing above ~2.1 kHz) at half the cost of 44.1 kHz.
    """

    sequence = True  # items carry frame targets

    def __init__(
        self,
        size: int,
        split: str = "train",
        seed: int = 0,
        sample_rate: int = 22050,  # the front end reads nothing above ~2.1 kHz: 44.1 kHz would only cost time
        clip_seconds: float = EXCERPT_SECONDS,
        tuning_cents: float = 50.0,
        n_prob: float = 0.5,
        soundfont: Optional[str] = None,
        voice_prob: float = 0.7,
        backing_prob: float = 0.3,
        instrument_fx_prob: float = 0.5,
        arrangement_prob: float = 0.7,  # real dev set, two seeds: +1.4 majmin, +1.0 mirex over 0.35 (docs/realism.md)
        power_chord_prob: float = 0.0,
        record_chain_prob: float = 0.7,
        codec_prob: float = 0.5,
        tuning_drift_cents: float = 10.0,
    ) -> None:
        check_common(size, seed)
        if split not in SPLITS:
            raise ConfigValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not sample_rate_ok(sample_rate):
            raise ConfigValueError(f"sample_rate must be {SAMPLE_RATE_RULE}, got {sample_rate!r}")
        if not _finite_in(clip_seconds, 1.0, 120.0):
            raise ConfigValueError(f"clip_seconds must be in 1..120 s for songs, got {clip_seconds!r}")
        if not _finite_in(tuning_cents, 0.0, 50.0):  # labels keep the written chord: beyond 50 it is the next one
            raise ConfigValueError(
                f"tuning_cents (the most the band is tuned off A440) must be in 0..50: further off, "
                f"the written chords sound a semitone away; got {tuning_cents!r}"
            )
        for name, value in (
            ("n_prob", n_prob),
            ("voice_prob", voice_prob),
            ("backing_prob", backing_prob),
            ("instrument_fx_prob", instrument_fx_prob),
            ("arrangement_prob", arrangement_prob),
            ("power_chord_prob", power_chord_prob),
            ("record_chain_prob", record_chain_prob),
            ("codec_prob", codec_prob),
        ):
            if not _finite_in(value, 0.0, 1.0):
                raise ConfigValueError(f"{name} must be in 0..1, got {value!r}")
        if not _finite_in(tuning_drift_cents, 0.0, 50.0):
            raise ConfigValueError(f"tuning_drift_cents must be in 0..50, got {tuning_drift_cents!r}")
        self.size, self.split, self.seed = int(size), split, int(seed)
        self.sample_rate = int(sample_rate)
        self.clip_seconds = float(clip_seconds)
        self.num_samples = int(round(self.clip_seconds * self.sample_rate))
        self.tuning_cents, self.n_prob = float(tuning_cents), float(n_prob)
        self.soundfont = soundfont
        self.grid = FrameGrid.for_model(self.sample_rate)
        self._split_id = SPLITS.index(split)
        self.record_chain_prob, self.codec_prob = float(record_chain_prob), float(codec_prob)
        self.tuning_drift_cents = float(tuning_drift_cents)
        self._band = BandRenderer(
            self.sample_rate,
            soundfont,
            voice_prob=voice_prob,
            backing_prob=backing_prob,
            instrument_fx_prob=instrument_fx_prob,
            arrangement_prob=arrangement_prob,
            power_chord_prob=power_chord_prob,
        )

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        index = check_index(index, self.size)
        try:
            song = self.render(song_rng(self.seed, self._split_id, index), self.clip_seconds, excerpt=True)
        except Exception as error:  # name the item: the DataLoader would not
            raise item_error(self, index, error) from error
        times = self.grid.times(self.grid.num_frames(self.num_samples))
        starts, ends, triples = zip(*song.segments) if song.segments else ((), (), ())
        targets = frame_targets(starts, ends, triples, times, valid_until=self.clip_seconds)
        return torch.from_numpy(song.audio), targets

    def song(self, index: int, seconds: float = 60.0) -> RenderedSong:
        """A whole song (from its start, ``seconds`` long) of this split's song stream,
        for validation by transcription; disjoint from the excerpts' streams."""
        rng = song_rng(self.seed, self._split_id, index, stream=_WHOLE_SONG)
        return self.render(rng, seconds, excerpt=False)

    def render(self, rng: np.random.Generator, seconds: float, excerpt: bool) -> RenderedSong:
        """Draw a song and render ``seconds`` of it; an excerpt starts 0-4 s into the song
        (mid-chord, mid-note, the reverb of earlier notes still ringing)."""
        sr = self.sample_rate
        cents = float(rng.uniform(-self.tuning_cents, self.tuning_cents))
        ratio = 2.0 ** (cents / 1200.0)  # playing the render faster by ratio raises it by cents
        offset = float(rng.uniform(0.0, 4.0)) if excerpt else 0.0
        drift = _Drift.draw(rng, self.tuning_drift_cents, seconds) if self.tuning_drift_cents > 0 else None
        reach = 2.0 ** (self.tuning_drift_cents / 1200.0)  # the most a drift can speed the tape up
        nominal = offset + seconds * ratio * reach + 0.05
        plan = plan_song(rng, nominal, self.n_prob)
        mix = self._band.render(rng, plan, nominal)
        mix = master(rng, mix, sr, rng.standard_normal(int(2.0 * sr)).astype(np.float32))
        if self.record_chain_prob > 0 and rng.random() < self.record_chain_prob:
            mix = record_chain(rng, mix, sr)
        first = int(offset * sr)
        num_samples = int(round(seconds * sr))
        if drift is None:
            piece = mix[first : first + int(math.ceil(seconds * ratio * sr)) + 2]
            audio = _fit(_retune(piece, sr, ratio), num_samples)
            source_time = None
        else:  # the tape runs at a speed that wanders: each output sample reads the source at its own rate
            source_time = drift.source_times(num_samples, sr, ratio)
            audio = _fit(np.interp(source_time * sr, np.arange(len(mix) - first), mix[first:]), num_samples)
        if self.codec_prob > 0 and rng.random() < self.codec_prob:
            audio = lossy_codec(rng, audio, sr)
        segments = []
        grid = np.arange(num_samples) / sr if source_time is not None else np.empty(0)  # output sample times
        for start, end, triple in plan.segments():
            if source_time is None:
                start, end = (start - offset) / ratio, (end - offset) / ratio
            else:
                start, end = (
                    float(np.interp(x - offset, source_time, grid, left=-1.0, right=seconds + 1.0))
                    for x in (start, end)
                )
            if end > 0 and start < seconds:
                segments.append((max(start, 0.0), min(end, seconds), triple))
        return RenderedSong(audio, segments, cents)

    def __repr__(self) -> str:
        return (
            f"SyntheticSongDataset(size={self.size}, split={self.split!r}, seed={self.seed}, "
            f"sample_rate={self.sample_rate}, clip_seconds={self.clip_seconds})"
        )


@dataclass(frozen=True)
class _Drift:
    """A tuning that wanders within a song (tape speed, a band drifting): ``cents`` off
    the song's tuning as the sum of two slow sinusoids, at most ``amplitude`` cents."""

    amplitude: float
    periods: Tuple[float, float]
    phases: Tuple[float, float]
    share: float

    @classmethod
    def draw(cls, rng: np.random.Generator, max_cents: float, seconds: float) -> "_Drift":
        amplitude = float(rng.uniform(0.0, max_cents))
        periods = (float(rng.uniform(6.0, 20.0)), float(rng.uniform(20.0, 90.0)))
        phases = (float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0, 2 * np.pi)))
        return cls(amplitude, periods, phases, float(rng.uniform(0.0, 1.0)))

    def cents(self, t: np.ndarray) -> np.ndarray:
        a, b = self.share, 1.0 - self.share
        return self.amplitude * (
            a * np.sin(2 * np.pi * t / self.periods[0] + self.phases[0])
            + b * np.sin(2 * np.pi * t / self.periods[1] + self.phases[1])
        )

    def source_times(self, num_samples: int, sample_rate: int, ratio: float) -> np.ndarray:
        """For each output sample, the time in the source it plays (seconds, increasing)."""
        t = np.arange(num_samples) / sample_rate
        rate = ratio * np.exp2(self.cents(t) / 1200.0)
        return np.concatenate(([0.0], np.cumsum(rate[:-1]) / sample_rate))


def _retune(audio: np.ndarray, sample_rate: int, ratio: float) -> np.ndarray:
    """Play ``audio`` ``ratio`` times faster (pitch up by ``1200 * log2(ratio)`` cents)."""
    if abs(ratio - 1.0) < 1e-9:
        return audio
    import soxr

    return soxr.resample(audio, sample_rate * ratio, sample_rate).astype(np.float32)


def _fit(audio: np.ndarray, num_samples: int) -> np.ndarray:
    if len(audio) >= num_samples:
        return np.ascontiguousarray(audio[:num_samples], dtype=np.float32)
    return np.pad(audio, (0, num_samples - len(audio))).astype(np.float32)


def _finite_in(value: object, low: float, high: float) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )
