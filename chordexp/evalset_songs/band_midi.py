"""A band song as a General MIDI file (``band_song_to_midi``): a tempo track, then one
track per part on its own channel, every channel detuned by the song's pitch bend."""

from __future__ import annotations

from typing import Dict

import mido
import numpy as np

from chordexp.evalset_songs.band_parts import bass_notes, chord_notes, drum_notes, melody_notes
from chordexp.evalset_songs.band_plan import BEND_RANGE, BandSong
from chordexp.evalset_songs.material import TICKS_PER_BEAT, beats_to_ticks, tempo_track

STEM_NOTES = {"chords": chord_notes, "bass": bass_notes, "melody": melody_notes, "drums": drum_notes}


def band_song_to_midi(song: BandSong):
    """The song as a type-1 ``mido.MidiFile``: a tempo track, then one track per part
    (``song.parts`` order). Every channel first gets bend range ``BEND_RANGE`` (RPN 0)
    and the song's pitch bend, so the whole band sounds ``tuning_cents`` off A440."""
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(tempo_track(song.name, song.tempo_us, song.total_beats))
    for k, part in enumerate(song.parts):
        rng = np.random.default_rng(song.seed + [1, k])
        notes = STEM_NOTES[part.role](song, part, rng)
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=f"{part.role}: {part.style} ({part.pattern})", time=0))
        channel = part.channel
        setup = [mido.Message("program_change", channel=channel, program=part.program, time=0)]
        controls = [(7, 100), (10, part.pan), (91, int(rng.integers(25, 70))), (93, int(rng.integers(0, 30)))]
        if part.role == "melody":
            controls.append((1, int(rng.integers(25, 50))))  # vibrato
        controls += [(101, 0), (100, 0), (6, BEND_RANGE), (38, 0), (101, 127), (100, 127)]  # RPN 0, then null
        setup += [mido.Message("control_change", channel=channel, control=c, value=v, time=0) for c, v in controls]
        setup.append(mido.Message("pitchwheel", channel=channel, pitch=song.pitch_bend, time=0))
        track.extend(setup)
        events = []
        for start, end, pitch, velocity, ch in notes:
            events.append((start, 1, mido.Message("note_on", channel=ch, note=pitch, velocity=velocity)))
            events.append((end, 0, mido.Message("note_off", channel=ch, note=pitch, velocity=0)))
        events.sort(key=lambda e: (e[0], e[1], e[2].note))
        sounding: Dict[int, int]  # note -> how many note_ons of it are still sounding
        now, sounding = 0, {}
        for tick, _, message in events:  # a re-struck note ends the one still sounding
            count = sounding.get(message.note, 0)
            if message.type == "note_on":
                sounding[message.note] = count + 1
                if count:
                    track.append(
                        mido.Message("note_off", channel=channel, note=message.note, velocity=0, time=tick - now)
                    )
                    now = tick
            else:
                sounding[message.note] = count - 1
                if count > 1:
                    continue  # the note was re-struck: its own note_off came then
            track.append(message.copy(time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=max(0, beats_to_ticks(song.total_beats) - now)))
        midi.tracks.append(track)
    return midi
