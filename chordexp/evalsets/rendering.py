"""Rendering MIDI with FluidSynth: the SoundFont (found, and its Debian licence), the
``fluidsynth`` command line, the rendered file trimmed and peak-normalised.

The evaluation set is rendered by software we did not write, so a model is not scored
on more of its own synthesiser's sound.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from chordexp.errors import UserError

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
