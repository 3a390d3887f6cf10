"""Rendering MIDI with FluidSynth: the SoundFont (found, and its Debian licence), the
``fluidsynth`` command line, the rendered file trimmed and peak-normalised; for the
band songs, each part rendered alone (``render_stems``), the stems mixed at set levels
(``mix``) and mastered in numpy (``master``).

The evaluation set is rendered by software we did not write, so a model is not scored
on more of its own synthesiser's sound.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Protocol, Sequence, Tuple

import mido
import numpy as np

from chordexp.errors import UserError
from chordexp.evalset_songs.material import TimedSong, beats_to_ticks

DEBIAN_PACKAGES = "fluidsynth musescore-general-soundfont-small"
#: SoundFonts in order of preference, with the Debian package that installs each.
SOUNDFONTS: Tuple[Tuple[str, str], ...] = (
    ("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3", "musescore-general-soundfont-small"),
    ("/usr/share/sounds/sf3/MuseScore_General.sf3", "musescore-general-soundfont"),
    ("/usr/share/sounds/sf2/MuseScore_General.sf2", "musescore-general-soundfont"),
    ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "fluid-soundfont-gm"),
)


class RendererMissingError(UserError, FileNotFoundError):
    """The fluidsynth command or a General MIDI SoundFont is missing; the message says what
    to install or pass."""


class RenderError(UserError, RuntimeError):
    """FluidSynth failed on a song, or rendered it as silence (not a General MIDI SoundFont?)."""


LICENCE_SUMMARIES = {
    "musescore-general-soundfont-small": "MIT (some samples public domain or CC0), built on FluidR3 Mono (MIT)",
    "musescore-general-soundfont": "MIT (some samples public domain or CC0), built on FluidR3 Mono (MIT)",
    "fluid-soundfont-gm": "MIT (Fluid R3 GM by Frank Wen)",
}


def check_tools(soundfont: Optional[str]) -> Tuple[Path, Optional[str]]:
    if shutil.which("fluidsynth") is None:
        raise RendererMissingError(
            f"the fluidsynth command is missing; install the Debian packages: apt-get install {DEBIAN_PACKAGES}"
        )
    return find_soundfont(soundfont)


def find_soundfont(explicit: Optional[str]) -> Tuple[Path, Optional[str]]:
    """-> (SoundFont path, Debian package or None). Raises FileNotFoundError naming the
    packages to install."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise RendererMissingError(f"soundfont={explicit}: no such file")
        return path, _debian_package(path)
    for candidate, package in SOUNDFONTS:
        if Path(candidate).is_file():
            return Path(candidate), package
    raise RendererMissingError(
        "no General MIDI SoundFont found; install one: apt-get install musescore-general-soundfont-small "
        "(or fluid-soundfont-gm), or pass soundfont=PATH"
    )


def _debian_package(path: Path) -> Optional[str]:
    for candidate in (path, path.resolve()):
        try:
            found = subprocess.run(["dpkg", "-S", str(candidate)], capture_output=True, text=True, check=False)
        except OSError:
            return None
        if found.returncode == 0 and ":" in found.stdout:
            return found.stdout.split(":")[0].strip()
    return None


def licence_text(package: Optional[str]) -> str:
    """The Debian copyright file of the SoundFont's package, verbatim (or a warning)."""
    if package:
        copyright_file = Path("/usr/share/doc") / package / "copyright"
        if copyright_file.is_file():
            return f"From {copyright_file}:\n\n{copyright_file.read_text(errors='replace').strip()}\n"
    return "The SoundFont's licence is unknown: check its documentation before sharing the audio.\n"


def render(midi_path: Path, soundfont: Path, audio_path: Path, sample_rate: int, min_duration: float = 0.0) -> float:
    """Render with the fluidsynth CLI, peak-normalise to -1 dBFS, drop the digital silence
    fluidsynth appends (keeping at least ``min_duration`` s, the MIDI file's length), write
    ``audio_path`` (format from its suffix); -> duration in seconds."""
    import soundfile

    audio, rate = run_fluidsynth(midi_path, soundfont, sample_rate, str(midi_path))
    peak = float(np.abs(audio).max())
    if peak < 1e-4:
        raise RenderError(f"fluidsynth rendered {midi_path} as silence; is {soundfont} a General MIDI SoundFont?")
    audio = audio * (10 ** (-1 / 20) / peak)
    audible = np.flatnonzero(np.abs(audio).max(axis=1) > 1e-4)  # -80 dBFS
    keep = max(int(np.ceil(min_duration * rate)), int(audible[-1]) + 1 + rate // 10)
    audio = audio[:keep]
    soundfile.write(str(audio_path), audio, rate, subtype="PCM_16")
    return audio.shape[0] / rate


def run_fluidsynth(midi_path: Path, soundfont: Path, sample_rate: int, name: str) -> Tuple[np.ndarray, int]:
    """``midi_path`` through the fluidsynth command line (one core, gain 0.5) -> float32
    ``(samples, channels)`` and its rate; RenderError naming ``name`` when it fails."""
    import soundfile

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "render.wav"
        command = [
            "fluidsynth",
            "-n",
            "-i",
            "-q",
            "-g",
            "0.5",
            "-r",
            str(sample_rate),
            "-O",
            "float",
            "-T",
            "wav",
            "-o",
            "synth.cpu-cores=1",
            "-F",
            str(raw),
            str(soundfont),
            str(midi_path),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not raw.is_file():
            message = (result.stderr or result.stdout).strip().splitlines()
            raise RenderError(f"fluidsynth failed on {name}: {message[-1] if message else result.returncode}")
        audio, rate = soundfile.read(str(raw), dtype="float32", always_2d=True)
    return audio, int(rate)


def fluidsynth_version() -> str:
    """The first line of ``fluidsynth --version`` (for a set's README), else ``fluidsynth``."""
    fluid = subprocess.run(["fluidsynth", "--version"], capture_output=True, text=True, check=False).stdout
    return fluid.splitlines()[0] if fluid else "fluidsynth"


# --------------------------------------------------------------------------- stems, mix, master


class NamedSong(TimedSong, Protocol):
    """What :func:`render_stems` reads of a song: its timing, and its name for errors."""

    name: str


def render_stems(
    song: NamedSong, midi, soundfont: Path, sample_rate: int, gap_seconds: float = 8.0
) -> List[np.ndarray]:
    """Each part alone through the fluidsynth CLI -> float stereo arrays of one length.

    FluidSynth is linear, so the stems sum to the full render. Loading the SoundFont
    takes seconds, so the parts are laid one after another in a single MIDI file, each
    on its own channel, ``gap_seconds`` apart (releases and reverb die out in the gap),
    rendered once and cut apart; an event may move by one 64-sample block (1.5 ms)."""
    span_beats = song.total_beats + math.ceil(gap_seconds / song.beat_seconds)
    parts = midi.tracks[1:]
    meta = mido.MidiTrack([m for m in midi.tracks[0] if m.type != "end_of_track"])
    meta.append(mido.MetaMessage("end_of_track", time=beats_to_ticks(span_beats * len(parts))))
    layout = mido.MidiFile(type=1, ticks_per_beat=midi.ticks_per_beat, tracks=[meta])
    for k, track in enumerate(parts):
        shifted = mido.MidiTrack(m.copy() for m in track)
        shifted[0] = shifted[0].copy(time=shifted[0].time + beats_to_ticks(k * span_beats))
        layout.tracks.append(shifted)
    with tempfile.TemporaryDirectory() as tmp:
        midi_path = Path(tmp) / "stems.mid"
        layout.save(str(midi_path))
        audio, _ = run_fluidsynth(midi_path, soundfont, sample_rate, song.name)
    span = span_beats * song.beat_seconds * sample_rate
    length = int(round(span))
    audio = np.pad(audio, ((0, max(0, int(round(len(parts) * span)) + length - len(audio))), (0, 0)))
    return [audio[int(round(k * span)) : int(round(k * span)) + length] for k in range(len(parts))]


def _weighted_level_db(audio: np.ndarray, rate: int) -> float:
    """Loudness of a stem while it plays: RMS (after a 100 Hz high-pass, as ears weigh
    bass less) over the 50 ms frames within 30 dB of its loudest."""
    spectrum = np.fft.rfft(audio.mean(axis=1))
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    spectrum *= freqs**2 / (freqs**2 + 100.0**2)
    x = np.fft.irfft(spectrum, len(audio))
    hop = int(0.05 * rate)
    frames = np.sqrt(np.mean(x[: len(x) // hop * hop].reshape(-1, hop) ** 2, axis=1)) + 1e-12
    loud = frames[frames > frames.max() * 10 ** (-30 / 20)]
    return float(20 * np.log10(np.sqrt(np.mean(loud**2))))


def mix(stems: List[np.ndarray], levels_db: Sequence[float], rate: int) -> np.ndarray:
    """Each stem scaled so its loudness sits at its part's level (dB relative to the lead)."""
    out = np.zeros_like(stems[0], dtype=np.float64)
    for stem, level in zip(stems, levels_db):
        if np.abs(stem).max() < 1e-6:
            continue
        out += stem * 10 ** ((level - _weighted_level_db(stem, rate)) / 20)
    return out


def master(audio: np.ndarray, rate: int, settings: Dict[str, float]) -> np.ndarray:
    """Bus compression (linked stereo, RMS detector, attack/release smoothing), EQ: a
    tilt around 1 kHz, a high-pass and a steep codec-like low-pass (zero phase, in the
    frequency domain), then loudness and a soft limiter below 0 dBFS."""
    mono = audio.mean(axis=1)
    hop, window = 256, 1024
    padded = np.pad(mono, (window // 2, window // 2 + hop))
    frames = len(mono) // hop + 1
    power = np.array([np.mean(padded[i * hop : i * hop + window] ** 2) for i in range(frames)])
    level = 10 * np.log10(power + 1e-12)
    loud = np.percentile(level[level > level.max() - 40], 90)
    threshold = loud + settings["bus_compressor_threshold_db"] * 0.5
    ratio = settings["bus_compressor_ratio"]
    wanted = -np.maximum(level - threshold, 0) * (1 - 1 / ratio)
    attack = math.exp(-hop / (rate * settings["attack_ms"] / 1000))
    release = math.exp(-hop / (rate * settings["release_ms"] / 1000))
    gain = np.empty(frames)
    g = 0.0
    for i, w in enumerate(wanted):
        coefficient = attack if w < g else release
        g = coefficient * g + (1 - coefficient) * w
        gain[i] = g
    sample_gain = 10 ** (np.interp(np.arange(len(mono)), np.arange(frames) * hop, gain) / 20)
    audio = audio * sample_gain[:, None]

    length = len(audio)
    audio = np.pad(audio, ((0, 2 * rate), (0, 0)))  # room for the filters' ringing: no wrap-around
    spectrum = np.fft.rfft(audio, axis=0)
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    f = np.maximum(freqs, 1.0)
    tilt_db = np.clip(settings["tilt_db_per_decade"] * np.log10(f / 1000), -8, 8)
    highpass = (f / settings["highpass_hz"]) ** 4 / (1 + (f / settings["highpass_hz"]) ** 4)
    cutoff, width = settings["lowpass_hz"], settings["lowpass_hz"] * 0.04
    lowpass = np.clip((cutoff - f) / width, 0, 1)
    lowpass = 0.5 - 0.5 * np.cos(np.pi * lowpass)  # raised-cosine edge, then nothing above the cut
    spectrum *= (10 ** (tilt_db / 20) * np.sqrt(highpass) * lowpass)[:, None]
    spectrum[0] = 0
    audio = np.fft.irfft(spectrum, len(audio), axis=0)[:length]

    rms = np.sqrt(np.mean(audio[np.abs(audio).max(axis=1) > 1e-4] ** 2))
    audio = audio * (10 ** (settings["loudness_dbfs"] / 20) / max(rms, 1e-9))
    knee = 0.7
    magnitude = np.abs(audio)
    over = magnitude > knee
    audio[over] = np.sign(audio[over]) * (knee + (0.97 - knee) * np.tanh((magnitude[over] - knee) / (0.97 - knee)))
    return audio.astype(np.float32)
