"""Band songs for the evaluation set (``python -m chordexp.evalset style=band``).

The clean songs of :mod:`chordexp.evalset` are one or two instruments playing chords in
full; real recordings are not like that, so scores on them flatter a model. A band song
is closer to a pop record: ~60 s at 70-160 bpm in a key, a verse and a chorus
progression (mostly major and minor triads, like real pop; the rest sevenths, sus,
added and extended chords and inversions), chords changing on beats after 1-8 beats;
2-3 chord instruments in different playing styles (piano comping, guitar strums or
picking, organ or pad sustains, arpeggios), a bass line on the chord's bass note with
passing notes, a General MIDI drum kit on channel 10 (grooves, fills, crashes), and a
lead melody at a vocal-like level with passing and neighbour notes on weak beats. The
whole band is detuned off A440 by up to +-50 cents (a pitch bend on every channel at
t=0 under an explicit 2-semitone bend range); each instrument is rendered alone by
FluidSynth and the stems are mixed at set levels, then mastered in numpy (bus
compression, EQ tilt, a codec-like low-pass at 8-16 kHz, a high-pass, loudness and a
soft limiter). ``N`` covers the drums-alone count-in, drum breaks and the ringing
end. Labels are exact: the MIDI file's own beat times under its constant tempo.

This module builds the set; each step has its own: ``band_plan`` (the song's plan),
``band_parts`` (each part's notes), ``band_midi`` (the MIDI file), ``rendering`` (the
stems, the mix and the master) and ``band_manifest`` (manifest.json and README.txt).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import numpy as np

from chordexp.chords import PITCH_NAMES
from chordexp.evalset_songs.band_manifest import band_readme, manifest_record
from chordexp.evalset_songs.band_midi import band_song_to_midi
from chordexp.evalset_songs.band_plan import BandSong, plan_band_song
from chordexp.evalset_songs.material import song_segments
from chordexp.evalset_songs.rendering import RenderError, master, mix, render_stems
from chordexp.labfile import write_lab


def render_band_song(song: BandSong, midi, soundfont: Path, audio_path: Path, sample_rate: int) -> float:
    """Stems -> mix -> master -> ``audio_path``, trimmed after the last audible sample
    (never before the MIDI file's end); -> duration in seconds."""
    import soundfile

    stems = render_stems(song, midi, soundfont, sample_rate)
    mixed = mix(stems, [p.level_db for p in song.parts], sample_rate)
    if np.abs(mixed).max() < 1e-5:
        raise RenderError(f"fluidsynth rendered {song.name} as silence; is {soundfont} a General MIDI SoundFont?")
    audio = master(mixed, sample_rate, song.mastering)
    audible = np.flatnonzero(np.abs(audio).max(axis=1) > 10 ** (-70 / 20))
    midi_seconds = song.total_beats * song.beat_seconds
    keep = min(len(audio), max(int(np.ceil(midi_seconds * sample_rate)), int(audible[-1]) + 1 + sample_rate // 10))
    audio = audio[:keep]
    if len(audio) < int(np.ceil(midi_seconds * sample_rate)):
        audio = np.pad(audio, ((0, int(np.ceil(midi_seconds * sample_rate)) - len(audio)), (0, 0)))
    soundfile.write(str(audio_path), audio, sample_rate, subtype="PCM_16")
    return audio.shape[0] / sample_rate


def build_band(
    output: Path,
    count: int,
    seed: int,
    split: str,
    seconds: Optional[float],
    soundfont: Path,
    package: Optional[str],
    audio_format: str,
    sample_rate: int,
) -> List[BandSong]:
    """Plan, write MIDI and labels, render and master ``count`` band songs into ``output``."""
    songs = [plan_band_song(i, seed, split, seconds) for i in range(count)]
    manifest = []
    for song in songs:
        midi = band_song_to_midi(song)
        midi.save(str(output / f"{song.name}.mid"))
        duration = render_band_song(song, midi, soundfont, output / f"{song.name}.{audio_format}", sample_rate)
        write_lab(output / f"{song.name}.lab", song_segments(song, duration), decimals=6)
        manifest.append(manifest_record(song, duration))
        styles = ", ".join(p.style for p in song.parts if p.role == "chords")
        print(
            f"{song.name}: {duration:.1f} s, {round(60e6 / song.tempo_us)} bpm, {PITCH_NAMES[song.key]} {song.mode}, "
            f"{song.tuning_cents:+.1f} cents, {styles}, {song.groove}, "
            f"{song.progressions['verse'].split(':')[0]} / {song.progressions['chorus'].split(':')[0]}"
        )
    (output / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (output / "README.txt").write_text(band_readme(songs, soundfont, package, seed, split))
    return songs
