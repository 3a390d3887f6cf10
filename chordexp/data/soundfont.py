"""Sample-based rendering of chords with a General MIDI SoundFont.

Real instruments are recordings of real strings, pipes and reeds, which no additive
synth matches; rendering with SoundFont samples is what makes a model trained on
synthetic data transfer to recordings. The default SoundFont is TimGM6mb (GPL-2.0,
by Tim Brechbill), which the ``pretty_midi`` package ships; ``tinysoundfont`` (MIT)
plays it. Both are installed by the project's set-up (``make install``);
``tinysoundfont`` is installed without its ``pyaudio`` dependency, which only serves
live playback (without tinysoundfont, as after a plain ``pip install``, the default
font falls back to :class:`AdditiveRenderer`, with a warning). Evaluation must use a *different* SoundFont (see ``chordexp.evalset``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from chordexp.errors import UserError

#: General MIDI programs (0-based) worth playing chords on, grouped by family.
CHORD_PROGRAMS: Dict[str, Tuple[int, ...]] = {
    "piano": (0, 1, 2, 3, 4, 5, 6, 7),
    "chromatic": (8, 11, 12, 15),
    "organ": (16, 17, 18, 19, 20, 21, 22, 23),
    "guitar": (24, 25, 26, 27, 29),
    "strings": (40, 41, 42, 48, 49, 50, 51),
    "brass": (56, 57, 59, 61, 62, 63),
    "reed": (64, 65, 66, 68, 71),
    "pipe": (73, 74),
    "synth": (80, 81, 88, 89, 90, 91, 92, 94, 95),
}
#: Bass programs (acoustic, fingered, picked, fretless, synth bass).
BASS_PROGRAMS: Tuple[int, ...] = (32, 33, 34, 35, 38, 39)
#: Lead programs for a melody over the chord (voice, winds, brass, violin, leads, vibes).
MELODY_PROGRAMS: Tuple[int, ...] = (11, 40, 52, 53, 56, 60, 65, 66, 68, 71, 72, 73, 75, 80, 81)


class SoundFontUnavailable(UserError, RuntimeError):
    """The SoundFont renderer's packages or file are missing; the message says how to fix it."""


def default_soundfont() -> Path:
    """Path of the TimGM6mb SoundFont shipped inside ``pretty_midi``."""
    try:
        import pretty_midi
    except ImportError:
        raise SoundFontUnavailable(
            "the SoundFont renderer needs pretty_midi (it ships TimGM6mb.sf2): run `make install`"
        ) from None
    path = Path(pretty_midi.__file__).with_name("TimGM6mb.sf2")
    if not path.is_file():
        raise SoundFontUnavailable(f"{path} is missing: reinstall pretty_midi")
    return path


@dataclass(frozen=True)
class Note:
    """One note to render: MIDI key, velocity in (0, 1], onset in seconds, GM program,
    and how long it is held (None: to the end of the clip or the clip's release)."""

    key: int
    velocity: float
    onset: float
    program: int
    duration: Optional[float] = None
    bank: int = 0  # 128: the percussion bank (program = kit, key = drum sound)


class SoundFontRenderer:
    """Renders a handful of notes into a mono float32 clip (~2 ms per 1 s clip)."""

    def __init__(self, path: Optional[str | Path] = None, sample_rate: int = 44100) -> None:
        try:
            from tinysoundfont import _tinysoundfont
        except ImportError:
            raise SoundFontUnavailable(
                "the SoundFont renderer needs tinysoundfont: run `make install` "
                "(or `pip install --no-deps tinysoundfont`)"
            ) from None
        self.path = Path(path) if path else default_soundfont()
        if not self.path.is_file():
            raise SoundFontUnavailable(f"soundfont {self.path}: no such file")
        self._module = _tinysoundfont
        self._font = _tinysoundfont.SoundFont(str(self.path))
        self.sample_rate = sample_rate
        self._preset_of_program = self._map_programs()
        self._scratch = np.zeros(int(0.025 * sample_rate), dtype=np.float32)

    def _map_programs(self) -> Dict[int, int]:
        """GM program number -> preset index in this font (bank 0)."""
        mapping = {}
        for program in range(128):
            index = self._font.get_preset_index(0, program)
            if index >= 0:
                mapping[program] = index
        if not mapping:
            raise SoundFontUnavailable(f"soundfont {self.path}: has no melodic presets in bank 0")
        return mapping

    def has_program(self, program: int) -> bool:
        return program in self._preset_of_program

    def render(self, notes: Sequence[Note], num_samples: int, release: float = 0.0) -> np.ndarray:
        """Render ``notes`` into ``num_samples`` samples.

        A note sounds from its onset for its ``duration``, or, without one, to the end
        of the clip; ``release`` > 0 releases those held notes that many seconds before
        the end.
        """
        font, module = self._font, self._module
        font.reset()
        font.set_output(module.OutputMode.Mono, self.sample_rate, 0.0)
        # reset() fades the previous clip's voices out over ~10 ms instead of cutting
        # them; render that fade into a scratch buffer so every clip starts silent and
        # the output depends on this clip's notes alone (determinism per item).
        self._render_into(self._scratch, 0, len(self._scratch))
        out = np.zeros(num_samples, dtype=np.float32)
        release_at = num_samples - int(release * self.sample_rate) if release > 0 else num_samples
        events = []  # (sample, order, on?, note): note-offs first at equal times
        for note in notes:
            start = min(max(0, int(note.onset * self.sample_rate)), num_samples)
            events.append((start, 1, True, note))
            stop = release_at if note.duration is None else start + int(note.duration * self.sample_rate)
            if stop < num_samples:
                events.append((max(stop, start), 0, False, note))
        position = 0
        for time, _, on, note in sorted(events, key=lambda e: (e[0], e[1])):
            self._render_into(out, position, time)
            position = time
            preset = self._preset(note)
            if on:
                font.note_on(preset, int(note.key), float(np.clip(note.velocity, 0.05, 1.0)))
            else:
                font.note_off(preset, int(note.key))
        self._render_into(out, position, num_samples)
        return out

    def _preset(self, note: Note) -> int:
        """The font's preset for a note: its program in bank 0, or a drum kit (bank 128,
        falling back to the standard kit); an absent program plays the first preset."""
        if note.bank:
            index = self._font.get_preset_index(note.bank, note.program)
            return index if index >= 0 else max(self._font.get_preset_index(note.bank, 0), 0)
        return self._preset_of_program.get(note.program, next(iter(self._preset_of_program.values())))

    def _render_into(self, out: np.ndarray, start: int, stop: int) -> None:
        if stop > start:
            block = np.zeros(stop - start, dtype=np.float32)
            # numpy declares ndarray.__buffer__ only for Python >= 3.12
            self._font.render(memoryview(block).cast("B"))  # type: ignore[arg-type]
            out[start:stop] = block


class AdditiveRenderer:
    """Stands in for the default SoundFont when ``tinysoundfont`` is not installed (a plain
    ``pip install chordexp``: its ``pyaudio`` dependency does not build without the
    PortAudio headers), so the default run still trains. Pitched notes are decaying
    harmonic tones, drum notes (bank 128) noise bursts: poorer than sampled instruments,
    and :func:`shared_renderer` warns so. Same ``render`` contract, deterministic."""

    #: A note rings at most this long (its decay has faded by then).
    MAX_SECONDS = 4.0

    def __init__(self, sample_rate: int = 44100) -> None:
        self.path = None
        self.sample_rate = sample_rate

    def has_program(self, program: int) -> bool:
        return True

    def render(self, notes: Sequence[Note], num_samples: int, release: float = 0.0) -> np.ndarray:
        sr = self.sample_rate
        out = np.zeros(num_samples, dtype=np.float32)
        release_at = num_samples - int(release * sr) if release > 0 else num_samples
        for note in notes:
            start = min(max(0, int(note.onset * sr)), num_samples)
            stop = release_at if note.duration is None else start + int(note.duration * sr)
            stop = min(stop, num_samples, start + int(self.MAX_SECONDS * sr))
            if stop > start:
                out[start:stop] += np.float32(np.clip(note.velocity, 0.05, 1.0)) * self._tone(note, stop - start)
        return out

    def _tone(self, note: Note, length: int) -> np.ndarray:
        t = np.arange(length, dtype=np.float32) / np.float32(self.sample_rate)
        if note.bank:  # a drum: noise, seeded by the sound so every hit of it is the same
            tone = np.random.default_rng(note.key).standard_normal(length).astype(np.float32) * np.exp(-25 * t)
        else:
            f0 = 440.0 * 2 ** ((note.key - 69) / 12)
            brightness = 1.0 + note.program % 8 / 4  # programs differ in how fast the partials fall
            tone = sum(
                np.sin(2 * np.pi * h * f0 * t) / h**brightness for h in range(1, 9) if h * f0 < self.sample_rate / 2
            ).astype(np.float32)
            tone *= np.exp(-(1.0 + note.program % 5 / 2) * t)
        edge = min(length, int(0.005 * self.sample_rate))  # 5 ms in and out: no clicks
        ramp = np.linspace(0.0, 1.0, edge, dtype=np.float32)
        tone[:edge] *= ramp
        tone[length - edge :] *= ramp[::-1]
        return tone


def tinysoundfont_installed() -> bool:
    try:
        from tinysoundfont import _tinysoundfont  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=4)
def shared_renderer(path: Optional[str] = None, sample_rate: int = 44100) -> "SoundFontRenderer | AdditiveRenderer":
    """One renderer per (process, font, rate): DataLoader workers each load their own.

    Without ``tinysoundfont`` the default font (``path`` None) falls back to
    :class:`AdditiveRenderer`, with a warning; a font the config names explicitly
    still needs the player (``SoundFontUnavailable``)."""
    if path is None and not tinysoundfont_installed():
        logging.getLogger(__name__).warning(
            "tinysoundfont is not installed: the SoundFont instruments of the training data are played by "
            "a plain additive synth instead (poorer data); install the player with "
            "`pip install --no-deps tinysoundfont==0.3.7` (docs/install.md)"
        )
        return AdditiveRenderer(sample_rate)
    return SoundFontRenderer(path, sample_rate)


class SampledChordPlayer:
    """Plays a voiced chord (MIDI notes, lowest = bass) on SoundFont instruments.

    Per clip it draws an instrument family and program, optionally a bass instrument
    for the lowest note, per-note velocities, block/strummed/arpeggiated onsets, a
    pre-roll (so some clips start mid-note, as windows cut from songs do), an early
    release, and a gentle spectral tilt. All draws come from the ``rng`` passed in.
    """

    def __init__(self, options, sample_rate: int, num_samples: int) -> None:
        self.o = options
        self.sample_rate = sample_rate
        self.n = num_samples
        self._soundfont = options.soundfont
        # Fail early if the renderer is missing, but keep no reference to it: the player
        # must pickle (spawned DataLoader workers, joblib jobs); each process loads its own.
        shared_renderer(self._soundfont, sample_rate)
        self._families = tuple(CHORD_PROGRAMS)

    def play(self, rng: np.random.Generator, midi: np.ndarray) -> np.ndarray:
        o, sr = self.o, self.sample_rate
        family = self._families[int(rng.integers(len(self._families)))]
        program = CHORD_PROGRAMS[family][int(rng.integers(len(CHORD_PROGRAMS[family])))]
        bass_program = program
        if rng.random() < max(o.bass_instrument_prob, 0.5):
            bass_program = BASS_PROGRAMS[int(rng.integers(len(BASS_PROGRAMS)))]
        keys = [int(k) for k in midi]
        onsets = self._onsets(rng, len(keys))
        pre_roll = rng.uniform(0.05, 0.6) if rng.random() < 0.4 else 0.0
        velocities = np.clip(rng.uniform(0.45, 1.0) + rng.normal(0.0, 0.08, len(keys)), 0.2, 1.0)
        notes = [
            Note(key, float(v), float(onset), bass_program if i == 0 else program)
            for i, (key, v, onset) in enumerate(zip(keys, velocities, onsets))
        ]
        if rng.random() < o.melody_prob:
            notes += self._melody(rng, midi, (self.n + int(pre_roll * sr)) / sr)
        total = self.n + int(pre_roll * sr)
        release = rng.uniform(0.1, 0.4) * self.n / sr if rng.random() < o.release_prob else 0.0
        audio = shared_renderer(self._soundfont, sr).render(notes, total, release=release)[total - self.n :]
        if o.eq_tilt_db > 0 and rng.random() < 0.5:
            audio = tilt(audio, sr, rng.uniform(-o.eq_tilt_db, o.eq_tilt_db))
        return np.ascontiguousarray(audio, dtype=np.float32)

    def _melody(self, rng: np.random.Generator, midi: np.ndarray, seconds: float) -> list:
        """1-4 lead notes over the chord, above it: mostly chord tones, some passing
        tones a step away (real songs put non-chord tones over chords all the time)."""
        program = MELODY_PROGRAMS[int(rng.integers(len(MELODY_PROGRAMS)))]
        pitch_classes = sorted({int(k) % 12 for k in midi})
        count = int(rng.integers(1, 5))
        starts = np.sort(rng.uniform(0.0, seconds * 0.9, count))
        notes = []
        for i, start in enumerate(starts):
            pc = pitch_classes[int(rng.integers(len(pitch_classes)))]
            if rng.random() < 0.3:
                pc = (pc + int(rng.choice([-2, -1, 1, 2]))) % 12
            key = 72 + (pc - 72) % 12 + 12 * int(rng.integers(0, 2)) - 12 * int(rng.random() < 0.3)
            end = starts[i + 1] if i + 1 < count else seconds
            duration = float(rng.uniform(0.5, 1.0) * (end - start))
            notes.append(Note(key, float(rng.uniform(0.4, 0.9)), float(start), program, max(duration, 0.05)))
        return notes

    def _onsets(self, rng: np.random.Generator, count: int) -> np.ndarray:
        o = self.o
        draw = rng.random()
        if draw < o.strum_prob:  # strum up or down, 8-40 ms between strings
            order = np.arange(count) if rng.random() < 0.7 else np.arange(count)[::-1]
            return order * rng.uniform(0.008, 0.04)
        if draw < o.strum_prob + o.arpeggio_prob:  # arpeggio over part of the clip
            step = rng.uniform(0.05, 0.6 * self.n / self.sample_rate / max(count - 1, 1))
            return np.arange(count) * step
        return rng.uniform(0.0, 0.012, count)


def tilt(audio: np.ndarray, sample_rate: int, db_per_octave: float) -> np.ndarray:
    """Spectral tilt around 500 Hz by ``db_per_octave`` (a crude tone control)."""
    size = fft_size(len(audio))
    spectrum = np.fft.rfft(audio, size)
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    gain = (np.maximum(freqs, 30.0) / 500.0) ** (db_per_octave / 6.02)
    return np.fft.irfft(spectrum * gain, n=size)[: len(audio)].astype(np.float32)


def fft_size(n: int) -> int:
    """The smallest ``2**a * 3**b * 5**c >= n``: an FFT of a length with a large prime
    factor is several times slower, and zero-padding also keeps filters from wrapping."""
    best = 1 << max(0, int(n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            size = p35 << max(0, int(math.ceil(math.log2(n / p35))) if p35 < n else 0)
            best = min(best, size)
            p35 *= 3
        p5 *= 5
    return best
