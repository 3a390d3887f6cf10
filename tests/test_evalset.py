"""chordexp.evalset: progressions -> MIDI + exact .lab, and (with fluidsynth) the rendering."""
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import mido
import mir_eval
import numpy as np
import pytest

from chordexp import evalset
from chordexp.chords import CHORD_TYPES, chord_pitch_classes, parse_label
from chordexp.evalset import (
    DRUM_CHANNEL, PROGRESSIONS, EvalsetArgs, build, choose_progressions, plan_song, song_segments,
    song_to_midi, transpose, voicing, write_lab,
)

REPO = Path(__file__).resolve().parents[1]


def twelve_songs(seed=0):
    return [plan_song(i, seed, names) for i, names in enumerate(choose_progressions(12, seed))]


def note_spans(midi: mido.MidiFile):
    """-> [(start s, end s, pitch, channel)] from the file as a player reads it."""
    now, sounding, spans = 0.0, {}, []
    for message in midi:
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            sounding[(message.channel, message.note)] = now
        elif message.type in ("note_off", "note_on"):
            start = sounding.pop((message.channel, message.note))
            spans.append((start, now, message.note, message.channel))
    assert not sounding
    return spans


def test_progressions_are_in_the_vocabulary_and_transpose():
    for labels, _ in PROGRESSIONS.values():
        for label in labels.split():
            parse_label(label)
    assert transpose("C:maj7/3", 2) == "D:maj7/3" and transpose("N", 5) == "N"
    assert voicing("C:maj/3")[0] % 12 == 4 and voicing("G:13")[0] % 12 == 7


def test_twelve_songs_use_every_progression_and_chord_type_and_last_30_to_60_s():
    songs = twelve_songs()
    assert {s.progressions[i].split()[0] for s in songs for i in range(2)} == set(PROGRESSIONS)
    types = {parse_label(e.label)[1] for s in songs for e in s.chords if e.label != "N"}
    assert types == set(range(1, len(CHORD_TYPES)))
    assert any(parse_label(e.label)[2] != parse_label(e.label)[0] for s in songs for e in s.chords if e.label != "N")
    assert all(30 <= song_segments(s)[-1][1] <= 60 for s in songs)
    assert {p.family for s in songs for p in s.parts} == set(evalset.FAMILIES)
    assert len({round(s.tempo_us, -4) for s in songs}) > 6 and any(s.drums for s in songs)


@pytest.mark.parametrize("index", [0, 5, 9])
def test_lab_parses_with_mir_eval_and_matches_the_midi_notes(tmp_path, index):
    song = twelve_songs()[index]
    midi_path, lab_path = tmp_path / "song.mid", tmp_path / "song.lab"
    song_to_midi(song).save(str(midi_path))
    write_lab(lab_path, song_segments(song), decimals=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # mir_eval warns about bad intervals
        intervals, labels = mir_eval.io.load_labeled_intervals(str(lab_path))
    for label in labels:
        mir_eval.chord.encode(label)
    midi = mido.MidiFile(str(midi_path))
    assert intervals[0, 0] == 0 and intervals[-1, 1] == pytest.approx(midi.length, abs=1e-5)
    assert np.allclose(intervals[1:, 0], intervals[:-1, 1])

    spans = note_spans(midi)
    pitched = [s for s in spans if s[3] != DRUM_CHANNEL]
    for (start, end), label in zip(intervals, labels):
        inside = [s for s in pitched if start - 1e-6 <= s[0] < end - 1e-6]
        if label == "N":
            assert not inside, (start, label)
            continue
        root, chord_type, bass = parse_label(label)
        tones = set(chord_pitch_classes(root, chord_type))
        assert all(s[1] <= end + 1e-6 for s in inside), "a note rings past its chord"
        accompaniment = [s for s in inside if s[3] in (0, 1, 2)]
        assert accompaniment, label
        assert {s[2] % 12 for s in accompaniment} <= tones, label
        bass_onsets = [s for s in inside if s[3] == 2 and abs(s[0] - start) < 1e-6]
        assert [s[2] % 12 for s in bass_onsets] == [bass], label  # the bass plays the bass note, on time


def test_same_seed_same_midi(tmp_path):
    song = twelve_songs()[3]
    song_to_midi(song).save(str(tmp_path / "a.mid"))
    song_to_midi(plan_song(3, 0, choose_progressions(12, 0)[3])).save(str(tmp_path / "b.mid"))
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "b.mid").read_bytes()


def test_missing_fluidsynth_is_one_line_naming_the_debian_packages(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt-get install fluidsynth musescore-general-soundfont-small"):
        build(EvalsetArgs(output=str(tmp_path / "set")))
    done = subprocess.run([sys.executable, "-m", "chordexp.evalset", f"output={tmp_path / 'set'}",
                           "soundfont=/nonexistent.sf2"], capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={"PATH": "/nonexistent"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: the fluidsynth command is missing; install the Debian packages: "
        "apt-get install fluidsynth musescore-general-soundfont-small"]


def _soundfont_or_none():
    try:
        return evalset.find_soundfont(None)[0]
    except FileNotFoundError:
        return None


@pytest.mark.skipif(shutil.which("fluidsynth") is None or _soundfont_or_none() is None,
                    reason="needs the fluidsynth CLI and a GM SoundFont (apt-get install fluidsynth "
                           "musescore-general-soundfont-small)")
def test_renders_a_song_whose_audio_lines_up_with_its_labels(tmp_path):
    import soundfile

    out = tmp_path / "set"
    songs = build(EvalsetArgs(output=str(out), songs=1, seed=0))
    song = songs[0]
    audio, rate = soundfile.read(str(out / f"{song.name}.flac"), always_2d=True)
    intervals, labels = mir_eval.io.load_labeled_intervals(str(out / f"{song.name}.lab"))
    assert intervals[-1, 1] == pytest.approx(len(audio) / rate, abs=1e-3)
    assert intervals[-1, 1] >= song.total_beats * song.beat_seconds - 1e-6
    mono = audio.mean(axis=1)
    first = int(intervals[1, 0] * rate)  # the first chord, after the N intro
    window = int(0.1 * rate)
    before = np.sqrt(np.mean(mono[first - window:first] ** 2)) + 1e-9
    after = np.sqrt(np.mean(mono[first:first + window] ** 2))
    assert 20 * np.log10(after / before) > 10, "the first chord starts where its label says"
    readme = (out / "README.txt").read_text()
    assert "SoundFont licence" in readme and "MIT" in readme
    assert (out / f"{song.name}.mid").is_file() and (out / "manifest.json").is_file()
