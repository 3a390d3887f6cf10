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

from chordexp.chords import CHORD_TYPES, chord_pitch_classes, parse_label
from chordexp.errors import UsageError
from chordexp.evalset import EvalsetArgs, build
from chordexp.evalset_songs.band_manifest import majmin_share
from chordexp.evalset_songs.band_midi import band_song_to_midi
from chordexp.evalset_songs.band_plan import BEND_RANGE, CHORD_STYLES, plan_band_song
from chordexp.evalset_songs.clean_songs import FAMILIES, choose_progressions, plan_song, song_to_midi
from chordexp.evalset_songs.material import DRUM_CHANNEL, PROGRESSIONS, song_segments, transpose, voicing
from chordexp.evalset_songs.rendering import find_soundfont
from chordexp.labfile import write_lab

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
    assert {p.family for s in songs for p in s.parts} == set(FAMILIES)
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
    done = subprocess.run(
        [sys.executable, "-m", "chordexp.evalset", f"output={tmp_path / 'set'}", "soundfont=/nonexistent.sf2"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={"PATH": "/nonexistent"},
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: the fluidsynth command is missing; install the Debian packages: "
        "apt-get install fluidsynth musescore-general-soundfont-small"
    ]


def _soundfont_or_none():
    try:
        return find_soundfont(None)[0]
    except FileNotFoundError:
        return None


@pytest.mark.skipif(
    shutil.which("fluidsynth") is None or _soundfont_or_none() is None,
    reason="needs the fluidsynth CLI and a GM SoundFont (apt-get install fluidsynth musescore-general-soundfont-small)",
)
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
    before = np.sqrt(np.mean(mono[first - window : first] ** 2)) + 1e-9
    after = np.sqrt(np.mean(mono[first : first + window] ** 2))
    assert 20 * np.log10(after / before) > 10, "the first chord starts where its label says"
    readme = (out / "README.txt").read_text()
    assert "SoundFont licence" in readme and "MIT" in readme
    assert (out / f"{song.name}.mid").is_file() and (out / "manifest.json").is_file()


# --------------------------------------------------------------------------- band style and splits

needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or _soundfont_or_none() is None,
    reason="needs the fluidsynth CLI and a GM SoundFont (apt-get install fluidsynth musescore-general-soundfont-small)",
)


def band_songs(split="test", seed=0, count=12):
    return [plan_band_song(i, seed, split) for i in range(count)]


def midi_bytes(midi, tmp_path, name):
    path = tmp_path / name
    midi.save(str(path))
    return path.read_bytes()


def chord_at(song, seconds):
    return next(label for start, end, label in song_segments(song) if start - 1e-9 <= seconds < end - 1e-9)


def test_band_songs_are_pop_like_minutes_with_chords_changing_on_beats():
    songs = band_songs()
    assert all(70 <= 60e6 / s.tempo_us <= 160 for s in songs)
    assert all(50 <= song_segments(s)[-1][1] <= 72 for s in songs)
    assert 0.55 <= majmin_share(songs) <= 0.8  # real pop: mostly plain major and minor triads
    chords = [e for s in songs for e in s.chords if e.label != "N"]
    assert all(1 <= e.beats <= 8 and isinstance(e.start, int) for e in chords)
    assert {1, 2, 4, 8} <= {e.beats for e in chords}
    qualities = {CHORD_TYPES[parse_label(e.label)[1]] for e in chords}
    assert {"maj", "min", "maj7", "min7", "7", "sus4"} <= qualities
    assert any(parse_label(e.label)[2] != parse_label(e.label)[0] for e in chords)  # inversions
    for song in songs:
        styles = [p.style for p in song.parts if p.role == "chords"]
        assert 2 <= len(styles) <= 3 and len(set(styles)) == len(styles)
        assert [s.name for s in song.sections][0] == "count-in" and song.sections[-1].name == "ending"
    assert {p.style for s in songs for p in s.parts if p.role == "chords"} == set(CHORD_STYLES)


def test_band_midi_drums_on_channel_10_bass_on_the_chord_bass_and_a_melody_with_non_chord_tones():
    found_non_chord_tone = False
    for song in band_songs(count=4):
        spans = note_spans(band_song_to_midi(song))
        drums = [s for s in spans if s[3] == DRUM_CHANNEL]
        assert {36, 42} & {s[2] for s in drums} and {38, 37, 39} & {s[2] for s in drums}  # kick/hat, snare
        count_in_end = song.sections[0].beats * song.beat_seconds
        assert any(s[0] < count_in_end for s in drums)
        kit = [m.program for m in band_song_to_midi(song).tracks[-1] if m.type == "program_change"]
        assert kit == [song.drum_kit] and [
            m.channel for m in band_song_to_midi(song).tracks[-1] if m.type == "program_change"
        ] == [DRUM_CHANNEL]
        assert not any(s[0] < count_in_end - 1e-6 for s in spans if s[3] != DRUM_CHANNEL), "the count-in is drums alone"
        bass = song.part("bass").channel
        melody = sorted(s for s in spans if s[3] == song.part("melody").channel)
        for start, end, label in song_segments(song):
            if label == "N":
                assert not [s for s in spans if s[3] != DRUM_CHANNEL and start <= s[0] < end - 1e-6], label
                continue
            root, chord_type, bass_pc = parse_label(label)
            tones = set(chord_pitch_classes(root, chord_type))
            inside = [s for s in spans if s[3] != DRUM_CHANNEL and start - 1e-6 <= s[0] < end - 1e-6]
            assert all(s[1] <= end + 1e-6 for s in inside), "a note rings past its chord"
            chord_parts = [s for s in inside if s[3] in {p.channel for p in song.parts if p.role == "chords"}]
            assert chord_parts and {s[2] % 12 for s in chord_parts} <= tones, label
            first_bass = min((s for s in inside if s[3] == bass), default=None)
            assert first_bass is not None and first_bass[2] % 12 == bass_pc and first_bass[0] - start < 0.02, label
        for i, (onset, _, pitch, _) in enumerate(melody):
            label = chord_at(song, onset)
            root, chord_type, _ = parse_label(label)
            if pitch % 12 in chord_pitch_classes(root, chord_type):
                continue
            found_non_chord_tone = True
            beat = round(onset / song.beat_seconds * 2) / 2  # onsets are at most 15 ms late
            chord_start = next(s for s, e, lab in song_segments(song) if s - 1e-9 <= onset < e)
            assert beat % 2 != 0 and abs(onset - chord_start) > 0.05, "non-chord tones fall on weak beats"
            neighbours = [melody[j][2] for j in (i - 1, i + 1) if 0 <= j < len(melody)]
            assert any(1 <= abs(pitch - n) <= 2 for n in neighbours), "a passing or neighbour note moves by step"
    assert found_non_chord_tone


def test_band_midi_bends_every_channel_by_the_recorded_cents():
    songs = band_songs()
    cents = [s.tuning_cents for s in songs]
    assert all(abs(c) <= 50 for c in cents) and min(cents) < -20 and max(cents) > 20
    for song in songs[:4]:
        midi = band_song_to_midi(song)
        for track in midi.tracks[1:]:
            setup = []
            for message in track:
                if message.type == "note_on":
                    break
                assert message.time == 0
                setup.append(message)
            channels = {m.channel for m in track if m.type == "note_on"}
            assert len(channels) == 1
            controls = [(m.control, m.value) for m in setup if m.type == "control_change"]
            assert controls[-6:] == [(101, 0), (100, 0), (6, BEND_RANGE), (38, 0), (101, 127), (100, 127)]
            bends = [m.pitch for m in setup if m.type == "pitchwheel"]
            assert bends == [song.pitch_bend]
            assert bends[0] * 100 * BEND_RANGE / 8192 == pytest.approx(song.tuning_cents, abs=1e-9)


def test_dev_and_test_sets_share_no_song(tmp_path):
    test, dev = band_songs("test", count=12), band_songs("dev", count=8)
    signature = lambda s: (s.tempo_us, tuple((e.start, e.label) for e in s.chords))  # noqa: E731
    assert not {signature(s) for s in test} & {signature(s) for s in dev}
    for a, b in zip(test, dev):
        assert a.name != b.name and song_segments(a) != song_segments(b)
        assert midi_bytes(band_song_to_midi(a), tmp_path, "a.mid") != midi_bytes(
            band_song_to_midi(b), tmp_path, "b.mid"
        )
    clean_test = [plan_song(i, 0, n) for i, n in enumerate(choose_progressions(12, 0))]
    clean_dev = [plan_song(i, 0, n, "dev") for i, n in enumerate(choose_progressions(8, 0, "dev"))]
    assert not {signature(s) for s in clean_test} & {signature(s) for s in clean_dev}
    assert clean_dev[0].name == "evaldev00" and clean_test[0].name == "eval00"


def test_same_seed_same_band_song_and_another_seed_another(tmp_path):
    a, b, c = plan_band_song(2, 7), plan_band_song(2, 7), plan_band_song(2, 8)
    assert a == b and a != c
    assert midi_bytes(band_song_to_midi(a), tmp_path, "a.mid") == midi_bytes(band_song_to_midi(b), tmp_path, "b.mid")
    assert song_segments(a) != song_segments(c)


def test_bad_style_split_or_length_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="style must be clean or band"):
        build(EvalsetArgs(output=str(tmp_path / "set"), style="rock"))
    with pytest.raises(UsageError, match="split must be test or dev"):
        build(EvalsetArgs(output=str(tmp_path / "set"), split="train"))
    with pytest.raises(UsageError, match="only style=band takes a length"):
        build(EvalsetArgs(output=str(tmp_path / "set"), seconds=20))


def estimate_tuning_cents(mono, rate):
    """Magnitude-weighted circular mean of spectral peaks' offsets from the A440 semitone grid."""
    n, total = 16384, 0j
    window = np.hanning(n)
    freqs = np.fft.rfftfreq(n, 1 / rate)
    band = (freqs > 100) & (freqs < 1500)
    for start in range(0, len(mono) - n, n // 2):
        magnitude = np.abs(np.fft.rfft(mono[start : start + n] * window))
        log = np.log(magnitude + 1e-12)
        peak = (
            (magnitude[1:-1] > magnitude[:-2])
            & (magnitude[1:-1] >= magnitude[2:])
            & band[1:-1]
            & (magnitude[1:-1] > 0.05 * magnitude[band].max())
        )
        k = np.flatnonzero(peak) + 1
        if len(k):
            a, b, c = log[k - 1], log[k], log[k + 1]
            cents = 1200 * np.log2((k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / n / 440)
            total += np.sum(magnitude[k] * np.exp(2j * np.pi * cents / 100))
    return float(np.angle(total) / (2 * np.pi) * 100)


@needs_fluidsynth
def test_renders_a_detuned_band_song_whose_labels_end_with_the_audio(tmp_path):
    import json

    import soundfile

    seed = next(s for s in range(100) if abs(plan_band_song(0, s, "dev", seconds=14).tuning_cents) > 25)
    out = tmp_path / "band"
    song = build(EvalsetArgs(output=str(out), style="band", split="dev", songs=1, seed=seed, seconds=14))[0]
    audio, rate = soundfile.read(str(out / f"{song.name}.flac"), always_2d=True)
    intervals, labels = mir_eval.io.load_labeled_intervals(str(out / f"{song.name}.lab"))
    assert intervals[-1, 1] == pytest.approx(len(audio) / rate, abs=1e-3) and labels[-1] == "N"
    assert intervals[-1, 0] == pytest.approx(
        song.chords[-1].start * song.beat_seconds + song.chords[-1].beats * song.beat_seconds, abs=1e-6
    )
    manifest = json.loads((out / "manifest.json").read_text())[0]
    assert manifest["style"] == "band" and manifest["tuning_cents"] == song.tuning_cents
    mono = audio.mean(axis=1)
    off_by = (estimate_tuning_cents(mono, rate) - manifest["tuning_cents"] + 50) % 100 - 50  # cents wrap at +-50
    assert abs(off_by) < 10, "the band sounds detuned by the manifest's cents"
    count_in = mono[: int(intervals[0, 1] * rate)]
    assert 20 * np.log10(np.sqrt(np.mean(count_in**2))) > -45, "the count-in is heard (drums alone)"
    spectrum = np.abs(np.fft.rfft(mono)) ** 2
    freqs = np.fft.rfftfreq(len(mono), 1 / rate)
    above = spectrum[freqs > manifest["mastering"]["lowpass_hz"] + 200].sum() / spectrum.sum()
    assert above < 1e-6, "the codec-like low-pass is applied"
    assert np.abs(audio).max() < 1.0
    assert "style=band split=dev" in (out / "README.txt").read_text()
    assert (out / f"{song.name}.mid").read_bytes() == midi_bytes(band_song_to_midi(song), tmp_path, "again.mid")
