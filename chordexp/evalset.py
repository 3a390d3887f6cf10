"""An independent evaluation set: MIDI songs rendered by FluidSynth, with exact chord labels.

    python -m chordexp.evalset output=DIR [style=clean|band] [split=test|dev] [songs=12] [seed=0]
                               [seconds=S (band)] [soundfont=PATH] [format=flac]

style=clean (the default): the short songs described below. style=band: ~60 s band
songs (chord instruments, bass, drums, a lead melody, detuned, mastered; see
``chordexp.evalset_band``). split=dev draws every song from a random stream disjoint
from split=test (the default), so settings chosen on dev are never tuned on test.

Our training data comes from our own synthesiser; scoring a model only on more of the
same would flatter it. This renders short songs (30-60 s) with software we did not
write: the progressions become General MIDI files (written with ``mido``), which the
``fluidsynth`` command line renders with a sampled SoundFont (MuseScore General, else
FluidR3 GM). For each song DIR gets ``NAME.mid``, ``NAME.flac`` (or ``.wav``) and the
reference ``NAME.lab``; plus ``manifest.json`` (tempo, key, instruments, progressions)
and ``README.txt`` (how it was made, the SoundFont and its licence).

Songs use common pop, rock, blues and jazz progressions covering all 31 chord types of
the vocabulary (triads, sevenths, sus, 6, 9, 11, 13, altered dominants, inversions),
voiced in full, with 1-2 accompaniment parts (piano, electric piano, organ, guitar,
strings, pads: block chords, comping, strums, arpeggios), a bass instrument playing the
chord's bass note, sometimes drums and a melody, and ``N`` stretches (a silent or
count-in intro, some mid-song breaks, the release tail). Chord times are exact: they
are the MIDI file's own beat times under its tempo.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

if TYPE_CHECKING:  # written lazily: mido is imported where MIDI is made
    import mido

    from chordexp.evalset_band import BandSong

from chordexp.chords import CHORD_INTERVALS, CHORD_TYPES, format_label, parse_label
from chordexp.cli import main_guard, parse_args
from chordexp.errors import UsageError
from chordexp.labfile import write_lab

USAGE = __doc__.split("Our training data")[0].strip()

TICKS_PER_BEAT = 480
BEATS_PER_BAR = 4
DEBIAN_PACKAGES = "fluidsynth musescore-general-soundfont-small"
#: SoundFonts in order of preference, with the Debian package that installs each.
SOUNDFONTS: Tuple[Tuple[str, str], ...] = (
    ("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3", "musescore-general-soundfont-small"),
    ("/usr/share/sounds/sf3/MuseScore_General.sf3", "musescore-general-soundfont"),
    ("/usr/share/sounds/sf2/MuseScore_General.sf2", "musescore-general-soundfont"),
    ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "fluid-soundfont-gm"),
)

#: Progressions written in C major or A minor (transposed per song), and the chord
#: lengths in beats they are played with.
PROGRESSIONS: Dict[str, Tuple[str, Tuple[int, ...]]] = {
    "pop_axis": ("C:maj G:maj A:min F:maj", (4, 2)),
    "canon": ("C:maj G:maj/3 A:min E:min/5 F:maj C:maj/3 F:maj G:maj", (2, 4)),
    "doo_wop": ("C:maj A:min F:maj G:7", (4,)),
    "descending_bass": ("C:maj C:maj7/7 A:min A:min7/b7 F:maj C:maj/3 D:min7 G:7", (2, 4)),
    "secondary_dominants": ("C:maj E:7/3 A:min C:7/b7 F:maj F#:dim7 C:maj/5 G:7", (2, 4)),
    "diatonic_circle": ("C:maj F:maj B:dim E:min A:min D:min G:7 C:maj", (2, 4)),
    "augmented": ("C:maj C:aug C:maj6 C:7 F:maj F:min6 C:maj/5 G:7", (2, 4)),
    "sus": ("C:sus2 C:maj F:maj(9) G:sus4 G:maj", (4, 2)),
    "ii_v_i": ("D:min7 G:7 C:maj7 C:maj6", (4, 2)),
    "turnaround": ("C:maj7 A:7(b9) D:min9 G:13", (4, 2)),
    "rhythm_changes": ("C:maj6(9) A:min7 D:min7 G:9", (2, 4)),
    "neo_soul": ("C:maj9 A:min9 D:min11 G:sus4(b7) G:11", (4,)),
    "ballad": ("D:min13 G:13 C:maj13 C:maj6(9)", (4,)),
    "blues": ("C:7 F:9 C:7 C:7(#9) G:9 F:7 C:7 G:aug(b7)", (4,)),
    "rock": ("C:5 Bb:5 F:5 C:5 A:1 C:5", (4, 2)),
    "line_cliche": ("A:min A:minmaj7 A:min7 A:min6", (4,)),
    "minor_ii_v_i": ("B:hdim7 E:7(b9) A:min6 A:min(9)", (4, 2)),
    "andalusian": ("A:min G:maj F:maj E:7", (4, 2)),
    "minor_pop": ("A:min F:maj C:maj G:maj/3", (4,)),
    "passing_diminished": ("C:maj C#:dim7 D:min7 G:7", (4, 2)),
}
MINOR_PROGRESSIONS = {"line_cliche", "minor_ii_v_i", "andalusian", "minor_pop"}

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
DRUM_CHANNEL = 9


@dataclass
class ChordEvent:
    """A chord (or ``N``) from ``start`` for ``beats`` beats (integers)."""

    start: int
    beats: int
    label: str


@dataclass
class Part:
    program: int
    family: str
    pattern: str
    channel: int
    velocity: int


@dataclass
class Song:
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

    @property
    def beat_seconds(self) -> float:
        return self.tempo_us / 1e6

    @property
    def total_beats(self) -> int:
        return self.chords[-1].start + self.chords[-1].beats + self.tail_beats


# --------------------------------------------------------------------------- planning


def transpose(label: str, semitones: int) -> str:
    if label == "N":
        return label
    root, chord_type, bass = parse_label(label)
    return format_label((root + semitones) % 12, chord_type, (bass + semitones) % 12)


#: Extra seed word of the dev split (test keeps the original ``[seed, index]`` streams).
DEV_TAG = 0xDE7
SPLITS = ("test", "dev")


def split_seed(words: List[int], split: str) -> List[int]:
    """Seed words of a split: dev appends DEV_TAG, so no dev song repeats a test song
    (a non-zero word: SeedSequence treats trailing zeros as absent)."""
    if split not in SPLITS:
        raise UsageError(f"split must be test or dev, got {split!r}")
    return words + ([DEV_TAG] if split == "dev" else [])


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
        parts.append(Part(int(rng.choice(programs)), family, str(rng.choice(patterns)), channel,
                          int(rng.integers(70, 100) if channel == 0 else rng.integers(55, 80))))
    return Song(
        name=f"eval{'' if split == 'test' else split}{index:02d}",
        tempo_us=tempo_us,
        key=key,
        progressions=[f"{name} x{length} beats" for name, length in sections],
        chords=_merge_repeats(chords),
        parts=parts,
        bass_program=int(rng.choice(BASS_PROGRAMS)),
        bass_pattern=str(rng.choice(["sustain", "quarters", "octaves"])),
        drums=bool(rng.random() < 0.5),
        melody_program=int(rng.choice(MELODY_PROGRAMS)) if rng.random() < 0.4 else None,
        seed=words,
    )


def _merge_repeats(chords: List[ChordEvent]) -> List[ChordEvent]:
    """Adjacent N events become one (chords repeat on purpose: they are re-struck)."""
    merged: List[ChordEvent] = []
    for event in chords:
        if merged and event.label == "N" and merged[-1].label == "N":
            merged[-1].beats += event.beats
        else:
            merged.append(ChordEvent(event.start, event.beats, event.label))
    return merged


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


# --------------------------------------------------------------------------- notes

Note = Tuple[int, int, int, int, int]  # start tick, end tick, pitch, velocity, channel


def voicing(label: str, low: int = 48) -> List[int]:
    """All the chord's tones as MIDI pitches, root in ``low..low+11``; for an inversion the
    tones below the bass tone move up an octave, so the bass tone is the lowest."""
    root, chord_type, bass = parse_label(label)
    base = low + (root - low) % 12
    pitches = [base + i for i in CHORD_INTERVALS[CHORD_TYPES[chord_type]]]
    if chord_type == CHORD_TYPES.index("1"):
        pitches = [base, base + 12]
    if bass != root:
        bass_pitch = next(p for p in pitches if p % 12 == bass)
        pitches = sorted(p + 12 if p < bass_pitch else p for p in pitches)
    return pitches


def bass_pitch(label: str) -> int:
    """The chord's bass note in the bass register, E1..D#2 (MIDI 28..39)."""
    return 28 + (parse_label(label)[2] - 28) % 12


def _ticks(beats: float) -> int:
    return int(round(beats * TICKS_PER_BEAT))


def harmony_notes(song: Song, part: Part, rng: np.random.Generator) -> List[Note]:
    """One accompaniment part, playing every chord in its pattern; notes end by the chord's end."""
    notes: List[Note] = []
    ms_in_ticks = TICKS_PER_BEAT / (song.tempo_us / 1000)
    beat: float  # a position in beats: whole in some patterns, fractional in others
    for event in song.chords:
        if event.label == "N":
            continue
        start, end = _ticks(event.start), _ticks(event.start + event.beats)
        pitches = voicing(event.label, low=int(rng.choice([45, 48, 50])))

        def vel() -> int:
            return int(np.clip(part.velocity + rng.integers(-8, 9), 30, 127))

        if part.pattern == "sustain":
            notes += [(start, end, p, vel(), part.channel) for p in pitches]
        elif part.pattern == "block":
            hits = [0, 2] if event.beats >= 4 else [0]
            for i, beat in enumerate(hits):
                off = end if i == len(hits) - 1 else start + _ticks(hits[i + 1])
                notes += [(start + _ticks(beat), off, p, vel(), part.channel) for p in pitches]
        elif part.pattern == "comp":
            grid = [0, 1.5, 2, 3.5] if event.beats >= 4 else [0, 1]
            for beat in grid:
                if beat >= event.beats:
                    continue
                on = start + _ticks(beat)
                notes += [(on, min(end, on + _ticks(0.45)), p, vel(), part.channel) for p in pitches]
        elif part.pattern == "strum":
            voiced = sorted(set(pitches + [pitches[0] + 12]))
            grid = [0, 1, 1.5, 2.5, 3, 3.5] if event.beats >= 4 else [0, 1, 1.5]
            for i, beat in enumerate(grid):
                on = start + _ticks(beat)
                off = end if i == len(grid) - 1 else start + _ticks(grid[i + 1])
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
                on = start + _ticks(beat)
                notes.append((on, min(end, on + _ticks(2 * steps)), up_down[k % len(up_down)], vel(), part.channel))
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
        start, end = _ticks(event.start), _ticks(event.start + event.beats)
        pitch = bass_pitch(event.label) + (12 if rng.random() < 0.3 else 0)
        if song.bass_pattern == "sustain":
            notes.append((start, end, pitch, int(rng.integers(85, 105)), channel))
            continue
        for beat in range(event.beats):
            octave = 12 if song.bass_pattern == "octaves" and beat % 2 else 0
            on = start + _ticks(beat)
            notes.append((on, min(end, on + _ticks(0.9)), pitch + octave, int(rng.integers(80, 105)), channel))
    return notes


def drum_notes(song: Song, rng: np.random.Generator) -> List[Note]:
    """Kick on 1 and 3, snare on 2 and 4, hi-hat eighths while chords play; a side-stick
    count-in over the intro; drums carry on through half the mid-song breaks."""
    notes: List[Note] = []
    keep_through_break = rng.random() < 0.5
    first_chord = song.chords[1].start if song.chords[0].label == "N" else 0
    for beat in range(max(0, first_chord - 4), first_chord):
        notes.append((_ticks(beat), _ticks(beat + 0.25), 37, 70, DRUM_CHANNEL))
    last = song.chords[-1].start + song.chords[-1].beats
    for event in song.chords:
        if event.label == "N" and not (keep_through_break and 0 < event.start < last - event.beats):
            continue
        for beat in range(event.start, event.start + event.beats):
            if beat < first_chord:
                continue
            b = beat % BEATS_PER_BAR
            kick_or_snare = 36 if b in (0, 2) else 38
            notes.append((_ticks(beat), _ticks(beat + 0.25), kick_or_snare, int(rng.integers(80, 110)), DRUM_CHANNEL))
            for half in (0, 0.5):
                hat = (_ticks(beat + half), _ticks(beat + half + 0.25), 42, int(rng.integers(50, 80)), DRUM_CHANNEL)
                notes.append(hat)
    notes.append((_ticks(last), _ticks(last + 1), 49, 90, DRUM_CHANNEL))
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
                on = _ticks(event.start + beat)
                notes.append((on, on + _ticks(length) - 10, int(rng.choice(pool)), int(rng.integers(70, 95)), channel))
            beat += length
    return notes


def song_to_midi(song: Song):
    """The song as a type-1 ``mido.MidiFile``: a tempo track, then one track per instrument."""
    import mido

    rng = np.random.default_rng(song.seed + [1])
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("track_name", name=song.name, time=0))
    meta.append(mido.MetaMessage("set_tempo", tempo=song.tempo_us, time=0))
    meta.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    meta.append(mido.MetaMessage("end_of_track", time=_ticks(song.total_beats)))
    midi.tracks.append(meta)

    tracks = [(f"{p.family} ({p.pattern})", p.program, p.channel, harmony_notes(song, p, rng)) for p in song.parts]
    tracks.append((f"bass ({song.bass_pattern})", song.bass_program, 2, bass_notes(song, rng)))
    if song.melody_program is not None:
        tracks.append(("melody", song.melody_program, 3, melody_notes(song, rng)))
    if song.drums:
        tracks.append(("drums", 0, DRUM_CHANNEL, drum_notes(song, rng)))
    for name, program, channel, notes in tracks:
        midi.tracks.append(_note_track(name, program, channel, notes, song.total_beats, rng))
    return midi


def _note_track(name: str, program: int, channel: int, notes: List[Note], total_beats: int,
                rng: np.random.Generator) -> "mido.MidiTrack":
    import mido

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
    track.append(mido.MetaMessage("end_of_track", time=max(0, _ticks(total_beats) - now)))
    return track


# --------------------------------------------------------------------------- labels

Segment = Tuple[float, float, str]


def song_segments(song: Union[Song, BandSong], duration: Optional[float] = None) -> List[Segment]:
    """Reference segments in seconds: each chord event at its beat times; ``N`` from the
    last chord's end to ``duration`` (default: the MIDI file's end)."""
    beat = song.beat_seconds
    segments = [(e.start * beat, (e.start + e.beats) * beat, e.label) for e in song.chords]
    end = song.total_beats * beat if duration is None else duration
    last_end = segments[-1][1]
    if end > last_end:
        segments.append((last_end, end, "N"))
    return [(s, min(e, end), label) for s, e, label in segments if s < end]


# --------------------------------------------------------------------------- rendering


def find_soundfont(explicit: Optional[str]) -> Tuple[Path, Optional[str]]:
    """-> (SoundFont path, Debian package or None). Raises FileNotFoundError naming the
    packages to install."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"soundfont={explicit}: no such file")
        return path, _debian_package(path)
    for candidate, package in SOUNDFONTS:
        if Path(candidate).is_file():
            return Path(candidate), package
    raise FileNotFoundError(
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

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "render.wav"
        command = ["fluidsynth", "-n", "-i", "-q", "-g", "0.5", "-r", str(sample_rate), "-O", "float",
                   "-T", "wav", "-o", "synth.cpu-cores=1", "-F", str(raw), str(soundfont), str(midi_path)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not raw.is_file():
            message = (result.stderr or result.stdout).strip().splitlines()
            raise RuntimeError(f"fluidsynth failed on {midi_path}: {message[-1] if message else result.returncode}")
        audio, rate = soundfile.read(str(raw), dtype="float32", always_2d=True)
    peak = float(np.abs(audio).max())
    if peak < 1e-4:
        raise RuntimeError(f"fluidsynth rendered {midi_path} as silence; is {soundfont} a General MIDI SoundFont?")
    audio = audio * (10 ** (-1 / 20) / peak)
    audible = np.flatnonzero(np.abs(audio).max(axis=1) > 1e-4)  # -80 dBFS
    keep = max(int(np.ceil(min_duration * rate)), int(audible[-1]) + 1 + rate // 10)
    audio = audio[:keep]
    soundfile.write(str(audio_path), audio, rate, subtype="PCM_16")
    return audio.shape[0] / rate


LICENCE_SUMMARIES = {
    "musescore-general-soundfont-small": "MIT (some samples public domain or CC0), built on FluidR3 Mono (MIT)",
    "musescore-general-soundfont": "MIT (some samples public domain or CC0), built on FluidR3 Mono (MIT)",
    "fluid-soundfont-gm": "MIT (Fluid R3 GM by Frank Wen)",
}


def readme(songs: List[Song], soundfont: Path, package: Optional[str], seed: int, split: str = "test") -> str:
    """README.txt: how the set was made, the SoundFont, and its licence (Debian copyright file)."""
    version = ""
    if package:
        query = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                               capture_output=True, text=True, check=False)
        version = f" {query.stdout.strip()}" if query.returncode == 0 else ""
    fluid = subprocess.run(["fluidsynth", "--version"], capture_output=True, text=True, check=False).stdout
    summary = LICENCE_SUMMARIES.get(package or "", "unknown: see below")
    return (
        "chordexp independent evaluation set\n"
        "===================================\n\n"
        f"{len(songs)} songs made by `python -m chordexp.evalset split={split} songs={len(songs)} seed={seed}`:\n"
        "General MIDI files written with mido (NAME.mid), rendered by the fluidsynth command line\n"
        f"({fluid.splitlines()[0] if fluid else 'fluidsynth'}) with the SoundFont\n  {soundfont}\n"
        f"  (Debian package: {package or 'unknown'}{version}), peak-normalised to -1 dBFS.\n"
        "NAME.lab holds the reference chords (MIREX lab: start end Harte-label, seconds) at the\n"
        "MIDI file's exact beat times; manifest.json lists each song's tempo, key, progressions\n"
        "and instruments. Keep the audio out of the repository.\n\n"
        f"SoundFont licence: {summary}.\n"
        "Keep this notice with any copy of the audio.\n\n"
    ) + licence_text(package)


# --------------------------------------------------------------------------- command line


@dataclass
class EvalsetArgs:
    output: str = "???"
    style: str = "clean"
    split: str = "test"
    songs: int = 12
    seed: int = 0
    seconds: Optional[float] = None  # band songs' rough length (default 54-64 s)
    soundfont: Optional[str] = None
    format: str = "flac"
    sample_rate: int = 44100


def check_tools(soundfont: Optional[str]) -> Tuple[Path, Optional[str]]:
    if shutil.which("fluidsynth") is None:
        raise FileNotFoundError(
            f"the fluidsynth command is missing; install the Debian packages: apt-get install {DEBIAN_PACKAGES}")
    return find_soundfont(soundfont)


def build(args: EvalsetArgs) -> list:
    """Plan, write MIDI and labels, render; returns the songs (``Song`` or ``BandSong``)."""
    if args.songs < 1:
        raise UsageError(f"songs must be >= 1, got {args.songs}")
    if args.format not in ("flac", "wav"):
        raise UsageError(f"format must be flac or wav, got {args.format!r}")
    if args.style not in ("clean", "band"):
        raise UsageError(f"style must be clean or band, got {args.style!r}")
    split_seed([], args.split)
    if args.seconds is not None and (args.style != "band" or not 5 <= args.seconds <= 600):
        raise UsageError(f"seconds={args.seconds}: only style=band takes a length, of 5-600 s")
    soundfont, package = check_tools(args.soundfont)
    output = Path(args.output)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"output={output}: cannot create the folder ({error.strerror})") from None
    if args.style == "band":
        from chordexp.evalset_band import build_band

        band = build_band(output, args.songs, args.seed, args.split, args.seconds, soundfont, package, args.format,
                          args.sample_rate)
        print(f"wrote {len(band)} band songs to {output} (SoundFont {soundfont})")
        return band
    progressions = choose_progressions(args.songs, args.seed, args.split)
    songs = [plan_song(i, args.seed, names, args.split) for i, names in enumerate(progressions)]
    manifest = []
    for song in songs:
        midi_path = output / f"{song.name}.mid"
        song_to_midi(song).save(str(midi_path))
        midi_seconds = song.total_beats * song.beat_seconds
        duration = render(midi_path, soundfont, output / f"{song.name}.{args.format}", args.sample_rate, midi_seconds)
        write_lab(output / f"{song.name}.lab", song_segments(song, duration), decimals=6)
        record = asdict(song)
        record.update(bpm=round(60e6 / song.tempo_us, 3), duration=round(duration, 3))
        manifest.append(record)
        print(f"{song.name}: {duration:.1f} s, {round(60e6 / song.tempo_us)} bpm, "
              f"{', '.join(p.family for p in song.parts)}, {' + '.join(song.progressions)}")
    (output / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (output / "README.txt").write_text(readme(songs, soundfont, package, args.seed, args.split))
    print(f"wrote {len(songs)} songs to {output} (SoundFont {soundfont})")
    return songs


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(EvalsetArgs, sys.argv[1:] if argv is None else argv)
    try:
        build(args)
    except RuntimeError as error:
        raise ValueError(str(error)) from None
    return 0


if __name__ == "__main__":
    main_guard(main, USAGE)
