"""What a band set says about itself: each song's ``manifest.json`` record (tempo, key,
tuning, sections, arrangement, mastering, the share of plain major and minor triads)
and the set's ``README.txt`` (how it was made, the SoundFont and its licence)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from chordexp.chords import CHORD_TYPES, PITCH_NAMES, parse_label
from chordexp.evalset_songs.band_plan import BEND_RANGE, BandSong
from chordexp.evalset_songs.rendering import LICENCE_SUMMARIES, fluidsynth_version, licence_text


def majmin_share(songs: Sequence[BandSong]) -> float:
    """Share of chord time (N excluded) held by root-position major and minor triads."""
    total = plain = 0.0
    for song in songs:
        for event in song.chords:
            if event.label == "N":
                continue
            root, chord_type, bass = parse_label(event.label)
            total += event.beats * song.beat_seconds
            plain += event.beats * song.beat_seconds * (CHORD_TYPES[chord_type] in ("maj", "min") and bass == root)
    return plain / total


def manifest_record(song: BandSong, duration: float) -> Dict[str, object]:
    record = asdict(song)
    record.update(
        style="band",
        bpm=round(60e6 / song.tempo_us, 3),
        duration=round(duration, 3),
        key_name=f"{PITCH_NAMES[song.key]} {song.mode}",
        bend_range_semitones=BEND_RANGE,
        sections=[
            dict(
                asdict(s),
                start_s=round(s.start * song.beat_seconds, 6),
                end_s=round((s.start + s.beats) * song.beat_seconds, 6),
            )
            for s in song.sections
        ],
        majmin_share=round(majmin_share([song]), 3),
    )
    return record


def band_readme(songs: List[BandSong], soundfont: Path, package: Optional[str], seed: int, split: str) -> str:
    """README.txt: how the set was made, the SoundFont, and its licence."""
    summary = LICENCE_SUMMARIES.get(package or "", "unknown: see below")
    return (
        "chordexp independent evaluation set: band songs\n"
        "===============================================\n\n"
        f"{len(songs)} songs made by `python -m chordexp.evalset style=band split={split} songs={len(songs)} "
        f"seed={seed}`.\nNAME.mid is the arrangement (General MIDI written with mido: chord instruments, bass, "
        "lead melody,\ndrums on channel 10; every channel pitch-bent by the song's tuning offset under a "
        f"{BEND_RANGE}-semitone\nbend range). Each part was rendered alone by the fluidsynth command line\n"
        f"({fluidsynth_version()}) with the SoundFont {soundfont.name}\n"
        f"(Debian package: {package or 'unknown'}), the stems mixed at the levels in manifest.json and mastered\n"
        "in numpy (bus compression, EQ tilt, high-pass, codec-like low-pass, loudness, soft limiter), so\n"
        "NAME.mid alone does not reproduce the mix. NAME.lab holds the reference chords (MIREX lab: start\n"
        "end Harte-label, seconds) at the MIDI file's exact beat times. Never train on these songs.\n\n"
        f"SoundFont licence: {summary}.\nKeep this notice with any copy of the audio.\n\n"
    ) + licence_text(package)
