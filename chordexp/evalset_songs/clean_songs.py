"""The clean songs of the evaluation set (``python -m chordexp.evalset``, style=clean).

Short songs (30-60 s) of common pop, rock, blues and jazz progressions covering all 31
chord types, voiced in full, with 1-2 accompaniment parts, a bass on the chord's bass
note, sometimes drums and a melody, and ``N`` stretches; written as General MIDI with
``mido`` and rendered by FluidSynth (``chordexp.evalset_songs.rendering``).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import mido
import numpy as np

from chordexp.evalset_songs.material import (
    BEATS_PER_BAR,
    DRUM_CHANNEL,
    MINOR_PROGRESSIONS,
    PROGRESSIONS,
    TICKS_PER_BEAT,
    BeatTimeline,
    ChordEvent,
    Note,
    bass_pitch,
    beats_to_ticks,
    merge_repeats,
    song_segments,
    split_seed,
    tempo_track,
    transpose,
    voicing,
)
from chordexp.evalset_songs.rendering import LICENCE_SUMMARIES, fluidsynth_version, licence_text, render
from chordexp.labfile import write_lab

#: General MIDI programs (0-based) by family, with the playing patterns each family uses.
FAMILIES: Dict[str, Tuple[Tuple[int, ...], Tuple[str, ...]]] = {
    "piano": ((0, 1, 2), ("block", "comp", "arpeggio")),
    "guitar": ((24, 25, 26, 27), ("strum", "arpeggio")),
    "organ": ((16, 17, 18), ("sustain", "comp")),
    "electric_piano": ((4, 5), ("comp", "block", "arpeggio")),
    "strings": ((48, 49, 50, 89), ("sustain",)),
}
BASS_PROGRAMS = (32, 33, 34, 35, 38)
MELODY_PROGRAMS = (73, 65, 11, 71, 56)


@dataclass
class Part:
    program: int
    family: str
    pattern: str
    channel: int
    velocity: int


@dataclass
class Song(BeatTimeline):
    name: str
    tempo_us: int  # microseconds per beat, as in the MIDI file
    key: int
    progressions: List[str]
    chords: List[ChordEvent]
    parts: List[Part]
    bass_program: int
    bass_pattern: str
    drums: bool
    melody_program: Optional[int]
    tail_beats: int = 4  # N after the last chord: release tails and reverb
    seed: List[int] = field(default_factory=list)


def plan_song(index: int, seed: int, progression_names: Sequence[str], split: str = "test") -> Song:
    """A song's tempo, key, chord timeline and arrangement, from ``(seed, split, index)`` alone."""
    words = split_seed([seed, index], split)
    rng = np.random.default_rng(words)
    bpm = int(rng.integers(72, 141))
    tempo_us = round(60e6 / bpm)
    key = int(rng.integers(12))
    target_seconds = float(rng.uniform(32, 53))
    beat = tempo_us / 1e6
    sections = [(name, int(rng.choice(PROGRESSIONS[name][1]))) for name in progression_names]

    chords: List[ChordEvent] = []
    position = 0
    intro = int(rng.choice([1, 2, 4]))  # N before the first chord (silence or a count-in)
    chords.append(ChordEvent(0, intro, "N"))
    position = intro
    break_done = rng.random() < 0.5  # half the songs get one N bar mid-song
    order = [0, 1, 0, 1, 0, 1] if len(sections) > 1 else [0] * 6
    for repeat, section in enumerate(order):
        name, length = sections[section]
        labels = PROGRESSIONS[name][0].split()
        for label in labels:
            chords.append(ChordEvent(position, length, transpose(label, key)))
            position += length
            if position * beat >= target_seconds - 2 * BEATS_PER_BAR * beat:
                break
        if position * beat >= target_seconds - 2 * BEATS_PER_BAR * beat:
            break
        if not break_done and repeat >= 1:
            chords.append(ChordEvent(position, BEATS_PER_BAR, "N"))
            position += BEATS_PER_BAR
            break_done = True
    first = transpose(PROGRESSIONS[sections[0][0]][0].split()[0], key)
    chords.append(ChordEvent(position, 2 * BEATS_PER_BAR, first))  # end on the tonic, held

    families = list(FAMILIES)
    primary = families[index % len(families)]
    chosen = [primary]
    if rng.random() < 0.7:
        chosen.append(str(rng.choice([f for f in families if f != primary])))
    parts = []
    for channel, family in enumerate(chosen):
        programs, patterns = FAMILIES[family]
        parts.append(
            Part(
                int(rng.choice(programs)),
                family,
                str(rng.choice(patterns)),
                channel,
                int(rng.integers(70, 100) if channel == 0 else rng.integers(55, 80)),
            )
        )
    return Song(
        name=f"eval{'' if split == 'test' else split}{index:02d}",
        tempo_us=tempo_us,
        key=key,
        progressions=[f"{name} x{length} beats" for name, length in sections],
        chords=merge_repeats(chords),
        parts=parts,
        bass_program=int(rng.choice(BASS_PROGRAMS)),
        bass_pattern=str(rng.choice(["sustain", "quarters", "octaves"])),
        drums=bool(rng.random() < 0.5),
        melody_program=int(rng.choice(MELODY_PROGRAMS)) if rng.random() < 0.4 else None,
        seed=words,
    )


def choose_progressions(songs: int, seed: int, split: str = "test") -> List[List[str]]:
    """Two different progressions per song (verse and chorus, in relative keys), dealt from
    a shuffled deck of all of them, so twelve songs use every progression at least once."""
    rng = np.random.default_rng(split_seed([seed, 10_000], split))
    deck: List[str] = []
    out = []
    for _ in range(songs):
        pair: List[str] = []
        while len(pair) < 2:
            if not deck:
                deck = [str(name) for name in rng.permutation(list(PROGRESSIONS))]
            name = deck.pop()
            if name in pair:
                deck.insert(0, name)
                continue
            pair.append(name)
        out.append(pair)
    return out


def harmony_notes(song: Song, part: Part, rng: np.random.Generator) -> List[Note]:
    """One accompaniment part, playing every chord in its pattern; notes end by the chord's end."""
    notes: List[Note] = []
    ms_in_ticks = TICKS_PER_BEAT / (song.tempo_us / 1000)
    beat: float  # a position in beats: whole in some patterns, fractional in others
    for event in song.chords:
        if event.label == "N":
            continue
        start, end = beats_to_ticks(event.start), beats_to_ticks(event.start + event.beats)
        pitches = voicing(event.label, low=int(rng.choice([45, 48, 50])))

        def vel() -> int:
            return int(np.clip(part.velocity + rng.integers(-8, 9), 30, 127))

        if part.pattern == "sustain":
            notes += [(start, end, p, vel(), part.channel) for p in pitches]
        elif part.pattern == "block":
            hits = [0, 2] if event.beats >= 4 else [0]
            for i, beat in enumerate(hits):
                off = end if i == len(hits) - 1 else start + beats_to_ticks(hits[i + 1])
                notes += [(start + beats_to_ticks(beat), off, p, vel(), part.channel) for p in pitches]
        elif part.pattern == "comp":
            grid = [0, 1.5, 2, 3.5] if event.beats >= 4 else [0, 1]
            for beat in grid:
                if beat >= event.beats:
                    continue
                on = start + beats_to_ticks(beat)
                notes += [(on, min(end, on + beats_to_ticks(0.45)), p, vel(), part.channel) for p in pitches]
        elif part.pattern == "strum":
            voiced = sorted(set(pitches + [pitches[0] + 12]))
            grid = [0, 1, 1.5, 2.5, 3, 3.5] if event.beats >= 4 else [0, 1, 1.5]
            for i, beat in enumerate(grid):
                on = start + beats_to_ticks(beat)
                off = end if i == len(grid) - 1 else start + beats_to_ticks(grid[i + 1])
                order = voiced if i % 2 == 0 else voiced[::-1]  # down- and up-strokes
                spread = float(rng.uniform(8, 20)) * ms_in_ticks
                for k, p in enumerate(order):
                    notes.append((min(on + int(k * spread), off - 1), off, p, vel() - 4 * (i % 2), part.channel))
        elif part.pattern == "arpeggio":
            steps = 0.5 if song.tempo_us > 500_000 else 0.5 * (1 + (rng.random() < 0.5))
            up_down = pitches + pitches[-2:0:-1]
            k = 0
            beat = 0.0
            while beat < event.beats - 1e-9:
                on = start + beats_to_ticks(beat)
                notes.append(
                    (on, min(end, on + beats_to_ticks(2 * steps)), up_down[k % len(up_down)], vel(), part.channel)
                )
                beat += steps
                k += 1
        else:
            raise ValueError(f"unknown pattern {part.pattern!r}")
    return notes


def bass_notes(song: Song, rng: np.random.Generator, channel: int = 2) -> List[Note]:
    """The bass instrument plays each chord's bass note (sustained, in quarters, or in octaves)."""
    notes: List[Note] = []
    for event in song.chords:
        if event.label == "N":
            continue
        start, end = beats_to_ticks(event.start), beats_to_ticks(event.start + event.beats)
        pitch = bass_pitch(event.label) + (12 if rng.random() < 0.3 else 0)
        if song.bass_pattern == "sustain":
            notes.append((start, end, pitch, int(rng.integers(85, 105)), channel))
            continue
        for beat in range(event.beats):
            octave = 12 if song.bass_pattern == "octaves" and beat % 2 else 0
            on = start + beats_to_ticks(beat)
            notes.append((on, min(end, on + beats_to_ticks(0.9)), pitch + octave, int(rng.integers(80, 105)), channel))
    return notes


def drum_notes(song: Song, rng: np.random.Generator) -> List[Note]:
    """Kick on 1 and 3, snare on 2 and 4, hi-hat eighths while chords play; a side-stick
    count-in over the intro; drums carry on through half the mid-song breaks."""
    notes: List[Note] = []
    keep_through_break = rng.random() < 0.5
    first_chord = song.chords[1].start if song.chords[0].label == "N" else 0
    for beat in range(max(0, first_chord - 4), first_chord):
        notes.append((beats_to_ticks(beat), beats_to_ticks(beat + 0.25), 37, 70, DRUM_CHANNEL))
    last = song.chords[-1].start + song.chords[-1].beats
    for event in song.chords:
        if event.label == "N" and not (keep_through_break and 0 < event.start < last - event.beats):
            continue
        for beat in range(event.start, event.start + event.beats):
            if beat < first_chord:
                continue
            b = beat % BEATS_PER_BAR
            kick_or_snare = 36 if b in (0, 2) else 38
            notes.append(
                (
                    beats_to_ticks(beat),
                    beats_to_ticks(beat + 0.25),
                    kick_or_snare,
                    int(rng.integers(80, 110)),
                    DRUM_CHANNEL,
                )
            )
            for half in (0, 0.5):
                hat = (
                    beats_to_ticks(beat + half),
                    beats_to_ticks(beat + half + 0.25),
                    42,
                    int(rng.integers(50, 80)),
                    DRUM_CHANNEL,
                )
                notes.append(hat)
    notes.append((beats_to_ticks(last), beats_to_ticks(last + 1), 49, 90, DRUM_CHANNEL))
    return notes


def melody_notes(song: Song, rng: np.random.Generator, channel: int = 3) -> List[Note]:
    """A simple tune: chord tones on the beats, scale tones between, some rests."""
    notes: List[Note] = []
    minor = song.progressions[0].split()[0] in MINOR_PROGRESSIONS
    scale = (0, 2, 3, 5, 7, 8, 10) if minor else (0, 2, 4, 5, 7, 9, 11)
    tonic = (song.key + (9 if minor else 0)) % 12
    scale_pcs = {(tonic + s) % 12 for s in scale}
    for event in song.chords:
        if event.label == "N":
            continue
        tones = [p for p in range(67, 85) if p % 12 in {x % 12 for x in voicing(event.label)}]
        passing = [p for p in range(67, 85) if p % 12 in scale_pcs]
        beat = 0.0
        while beat < event.beats - 1e-9:
            length = float(rng.choice([0.5, 1.0, 1.0, 2.0]))
            length = min(length, event.beats - beat)
            if rng.random() > 0.25:
                pool = tones if beat == int(beat) else passing
                on = beats_to_ticks(event.start + beat)
                notes.append(
                    (on, on + beats_to_ticks(length) - 10, int(rng.choice(pool)), int(rng.integers(70, 95)), channel)
                )
            beat += length
    return notes


def song_to_midi(song: Song):
    """The song as a type-1 ``mido.MidiFile``: a tempo track, then one track per instrument."""
    rng = np.random.default_rng(song.seed + [1])
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(tempo_track(song.name, song.tempo_us, song.total_beats))

    tracks = [(f"{p.family} ({p.pattern})", p.program, p.channel, harmony_notes(song, p, rng)) for p in song.parts]
    tracks.append((f"bass ({song.bass_pattern})", song.bass_program, 2, bass_notes(song, rng)))
    if song.melody_program is not None:
        tracks.append(("melody", song.melody_program, 3, melody_notes(song, rng)))
    if song.drums:
        tracks.append(("drums", 0, DRUM_CHANNEL, drum_notes(song, rng)))
    for name, program, channel, notes in tracks:
        midi.tracks.append(_note_track(name, program, channel, notes, song.total_beats, rng))
    return midi


def _note_track(
    name: str, program: int, channel: int, notes: List[Note], total_beats: int, rng: np.random.Generator
) -> mido.MidiTrack:
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=name, time=0))
    track.append(mido.Message("program_change", channel=channel, program=program, time=0))
    for control, value in ((7, 100), (10, int(rng.integers(30, 98))), (91, int(rng.integers(20, 70)))):
        track.append(mido.Message("control_change", channel=channel, control=control, value=value, time=0))
    events = []  # (tick, 0 = off before 1 = on at the same tick, message)
    for start, end, pitch, velocity, ch in notes:
        if end <= start:
            continue
        events.append((start, 1, mido.Message("note_on", channel=ch, note=pitch, velocity=int(velocity))))
        events.append((end, 0, mido.Message("note_off", channel=ch, note=pitch, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1], e[2].note))
    now = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, beats_to_ticks(total_beats) - now)))
    return track


def readme(songs: List[Song], soundfont: Path, package: Optional[str], seed: int, split: str = "test") -> str:
    """README.txt: how the set was made, the SoundFont, and its licence (Debian copyright file)."""
    version = ""
    if package:
        query = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
        )
        version = f" {query.stdout.strip()}" if query.returncode == 0 else ""
    summary = LICENCE_SUMMARIES.get(package or "", "unknown: see below")
    return (
        "chordexp independent evaluation set\n"
        "===================================\n\n"
        f"{len(songs)} songs made by `python -m chordexp.evalset split={split} songs={len(songs)} seed={seed}`:\n"
        "General MIDI files written with mido (NAME.mid), rendered by the fluidsynth command line\n"
        f"({fluidsynth_version()}) with the SoundFont\n  {soundfont}\n"
        f"  (Debian package: {package or 'unknown'}{version}), peak-normalised to -1 dBFS.\n"
        "NAME.lab holds the reference chords (MIREX lab: start end Harte-label, seconds) at the\n"
        "MIDI file's exact beat times; manifest.json lists each song's tempo, key, progressions\n"
        "and instruments. Keep the audio out of the repository.\n\n"
        f"SoundFont licence: {summary}.\n"
        "Keep this notice with any copy of the audio.\n\n"
    ) + licence_text(package)


def build_clean(
    output: Path,
    count: int,
    seed: int,
    split: str,
    soundfont: Path,
    package: Optional[str],
    audio_format: str,
    sample_rate: int,
) -> List[Song]:
    """Plan, write MIDI and labels, render ``count`` clean songs into ``output``."""
    progressions = choose_progressions(count, seed, split)
    songs = [plan_song(i, seed, names, split) for i, names in enumerate(progressions)]
    manifest = []
    for song in songs:
        midi_path = output / f"{song.name}.mid"
        song_to_midi(song).save(str(midi_path))
        midi_seconds = song.total_beats * song.beat_seconds
        duration = render(midi_path, soundfont, output / f"{song.name}.{audio_format}", sample_rate, midi_seconds)
        write_lab(output / f"{song.name}.lab", song_segments(song, duration), decimals=6)
        record = asdict(song)
        record.update(bpm=round(60e6 / song.tempo_us, 3), duration=round(duration, 3))
        manifest.append(record)
        print(
            f"{song.name}: {duration:.1f} s, {round(60e6 / song.tempo_us)} bpm, "
            f"{', '.join(p.family for p in song.parts)}, {' + '.join(song.progressions)}"
        )
    (output / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (output / "README.txt").write_text(readme(songs, soundfont, package, seed, split))
    print(f"wrote {len(songs)} songs to {output} (SoundFont {soundfont})")
    return songs
