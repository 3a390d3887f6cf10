"""The record-like parts of the song generator: sung voices, instruments as recorded,
arrangements, the record chain, lossy codecs and a tuning that drifts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chordexp.chords import CHORD_TYPE_INDEX
from chordexp.data import SyntheticSongDataset
from chordexp.data.band_render import ARRANGEMENTS, BandRenderer, power_voicing, voice_upper
from chordexp.data.harmony import plan_song
from chordexp.data.production import colour_instrument, lossy_codec, record_chain
from chordexp.data.songs import _Drift, song_rng
from chordexp.data.voices import SungNote, backing_lines, backing_oohs, draw_singer, harmony_line, sing

SR = 11025
ALL_ON = dict(
    voice_prob=1.0,
    backing_prob=1.0,
    instrument_fx_prob=1.0,
    arrangement_prob=0.5,
    power_chord_prob=1.0,
    record_chain_prob=1.0,
    codec_prob=1.0,
    tuning_drift_cents=20.0,
)


def _peak_hz(audio: np.ndarray, sr: int, low: float = 60.0) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    freqs = np.fft.rfftfreq(len(audio), 1 / sr)
    spectrum[freqs < low] = 0
    return float(freqs[int(np.argmax(spectrum))])


def _lowest_partial_hz(audio: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    freqs = np.fft.rfftfreq(len(audio), 1 / sr)
    strong = np.nonzero((spectrum > 0.05 * spectrum.max()) & (freqs > 60))[0]
    k = strong[0]
    while k + 1 < len(spectrum) and spectrum[k + 1] > spectrum[k]:
        k += 1
    return float(freqs[k])


def _centroid(audio: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    freqs = np.fft.rfftfreq(len(audio), 1 / sr)
    return float((spectrum * freqs).sum() / spectrum.sum())


def test_a_sung_note_sits_on_its_pitch_and_its_vowel_shapes_the_spectrum():
    singer = draw_singer(np.random.default_rng(0))
    steady = type(singer)(
        **{
            **singer.__dict__,
            "vibrato_cents": 0.0,
            "scoop_prob": 0.0,
            "intonation_cents": 0.0,
            "breath_db": -90.0,
            "consonant_prob": 0.0,
        }
    )
    a4 = sing(np.random.default_rng(1), [SungNote(57.0, 0.0, 1.5, "a")], 2 * SR, SR, steady)
    peak = _peak_hz(a4[SR // 4 : SR], SR)  # the strongest partial: a harmonic of 220 Hz near a formant
    assert abs(peak / 220.0 - round(peak / 220.0)) < 0.01 and 300.0 < peak < 1300.0
    assert _peak_hz(a4[SR // 4 : SR], SR, low=0.0) > 0 and _lowest_partial_hz(a4[SR // 4 : SR], SR) == pytest.approx(
        220.0, abs=3
    )
    bright = sing(np.random.default_rng(1), [SungNote(57.0, 0.0, 1.5, "i")], 2 * SR, SR, steady)
    dark = sing(np.random.default_rng(1), [SungNote(57.0, 0.0, 1.5, "u")], 2 * SR, SR, steady)
    assert _centroid(bright[SR // 4 : SR], SR) > 1.3 * _centroid(dark[SR // 4 : SR], SR)
    assert np.all(np.abs(a4[int(1.7 * SR) :]) < 1e-3)  # silent after the note (and its release)


def test_backing_voices_hold_only_chord_tones():
    spans = [(0.0, 2.0, [0, 4, 7]), (2.0, 4.0, [9, 0, 4]), (4.0, 5.0, []), (5.0, 6.0, [7, 11, 2, 5])]
    lines = backing_lines(np.random.default_rng(2), spans, centre=62.0, count=3)
    assert len(lines) == 3
    for line in lines:
        assert len(line) == 3  # nothing sung over the N span
        for note, (start, end, pcs) in zip(line, [s for s in spans if s[2]]):
            assert int(note.pitch) % 12 in pcs and start <= note.onset < end
    oohs = backing_oohs(np.random.default_rng(2), spans, 6 * SR, SR, centre=62.0)
    assert np.abs(oohs[int(4.3 * SR) : int(4.9 * SR)]).max() < 0.05 * np.abs(oohs).max()


def test_a_harmony_line_moves_by_scale_steps():
    major = [0, 2, 4, 5, 7, 9, 11]
    line = [SungNote(60.0, 0.0, 0.5), SungNote(64.0, 0.5, 0.5)]
    assert [n.pitch for n in harmony_line(line, major, 2)] == [64.0, 67.0]  # a third above
    assert [n.pitch for n in harmony_line(line, major, -5)] == [52.0, 55.0]  # a sixth below


def test_without_a_bass_player_the_lowest_note_is_the_chords_bass():
    rng = np.random.default_rng(3)
    for bass in (0, 4, 7):  # C, C/E, C/G
        notes = voice_upper(rng, (1, 0, bass), 60.0, bass_below=True)
        assert min(notes) % 12 == bass and min(notes) < sorted(notes)[1]
    assert all(not a.bass or a.drums or a.name == "bass_without_drums" for a in ARRANGEMENTS)


def test_a_power_chord_part_plays_root_and_fifth_only_where_the_chord_has_them():
    band = BandRenderer(SR, power_chord_prob=1.0)
    rng = np.random.default_rng(7)
    maj, minor, dim = (CHORD_TYPE_INDEX[name] for name in ("maj", "min", "dim"))
    spans = [(0.0, 2.0, (minor, 9, 9)), (2.0, 4.0, (maj, 0, 4)), (4.0, 6.0, (dim, 11, 11))]  # A:min, C:maj/3, B:dim
    plan = plan_song(np.random.default_rng(0), 6.0)
    for style in ("block", "comp", "strum", "arpeggio"):
        notes = band._chord_part(rng, style, spans, plan, 60.0, power=True)
        heard = {span: {n.key % 12 for n in notes if span[0] <= n.onset < span[1]} for span in spans}
        assert heard[spans[0]] == {9, 4}  # A and E: no C, the minor third
        assert heard[spans[1]] == {0, 7}
        assert heard[spans[2]] == {11, 2, 5}  # no perfect fifth: the whole chord
    assert power_voicing((minor, 9, 4), 52.0, bass_below=True)[0] % 12 == 4  # A:min/5 with no bass player: E lowest


def test_the_first_chord_part_always_keeps_the_whole_chord(monkeypatch):
    calls = []
    original = BandRenderer._chord_part

    def spy(self, rng, style, spans, plan, centre, programs=None, bass_below=False, power=False):
        calls.append(power)
        return original(self, rng, style, spans, plan, centre, programs, bass_below, power)

    monkeypatch.setattr(BandRenderer, "_chord_part", spy)
    band = BandRenderer(SR, power_chord_prob=1.0)
    songs = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        calls.clear()
        band.render(rng, plan_song(rng, 3.0), 3.0)
        assert calls[0] is False and all(calls[1:])
        songs += len(calls) > 1
    assert songs >= 2  # some songs had a second part, and it played power chords


@pytest.mark.parametrize("family", ["guitar", "organ", "piano"])
def test_an_instrument_as_recorded_keeps_length_and_level(family):
    rng = np.random.default_rng(4)
    t = np.arange(SR) / SR
    dry = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    wet = colour_instrument(rng, dry, SR, family)
    assert wet.shape == dry.shape and wet.dtype == np.float32 and np.isfinite(wet).all()
    assert np.sqrt(np.mean(wet**2)) == pytest.approx(np.sqrt(np.mean(dry**2)), rel=1e-3)


def test_the_record_chain_and_the_codec_keep_time_alignment_and_length():
    rng = np.random.default_rng(5)
    x = np.zeros(3 * SR, np.float32)
    x[SR : SR + 64] = np.hanning(64)
    x += np.random.default_rng(0).normal(0, 1e-3, len(x)).astype(np.float32)
    for _ in range(4):
        coded = lossy_codec(rng, x, SR)
        assert coded.shape == x.shape and abs(int(np.argmax(np.abs(coded))) - (SR + 32)) < 0.01 * SR
        mastered = record_chain(rng, x, SR)
        assert mastered.shape == x.shape and np.isfinite(mastered).all() and np.abs(mastered).max() <= 0.99


def test_a_drifting_tuning_reads_the_source_monotonically_within_its_cents():
    drift = _Drift.draw(np.random.default_rng(6), 20.0, 15.0)
    times = drift.source_times(15 * SR, SR, ratio=1.0)
    rate = np.diff(times) * SR
    assert times[0] == 0.0 and np.all(rate > 0)
    cents = 1200 * np.log2(rate)
    assert np.abs(cents).max() <= drift.amplitude + 1e-6


def test_every_factor_on_still_gives_deterministic_labelled_excerpts():
    songs = SyntheticSongDataset(size=3, split="train", seed=1, sample_rate=SR, clip_seconds=8.0, **ALL_ON)
    audio, targets = songs[0]
    again = SyntheticSongDataset(size=3, split="train", seed=1, sample_rate=SR, clip_seconds=8.0, **ALL_ON)
    assert torch.equal(again[0][0], audio)
    assert audio.shape == (8 * SR,) and bool(torch.isfinite(audio).all()) and float(audio.abs().max()) <= 1.0
    song = songs.render(song_rng(1, 0, 1), 8.0, excerpt=True)
    starts = [s for s, _, _ in song.segments]
    ends = [e for _, e, _ in song.segments]
    assert starts[0] == 0.0 and ends[-1] == pytest.approx(8.0) and np.allclose(starts[1:], ends[:-1])


def test_each_factor_alone_changes_the_audio_of_the_previous_generator():
    zeros = {k: 0.0 for k in ALL_ON}
    plain = SyntheticSongDataset(size=2, seed=2, sample_rate=SR, clip_seconds=4.0, **zeros)
    for name, value in ALL_ON.items():
        other = SyntheticSongDataset(size=2, seed=2, sample_rate=SR, clip_seconds=4.0, **{**zeros, name: value})
        assert not torch.equal(other[0][0], plain[0][0]) or not torch.equal(other[1][0], plain[1][0]), name


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(voice_prob=1.5), "voice_prob"),
        (dict(codec_prob=-0.1), "codec_prob"),
        (dict(power_chord_prob=2.0), "power_chord_prob"),
        (dict(record_chain_prob=float("nan")), "record_chain_prob"),
        (dict(tuning_drift_cents=60.0), "tuning_drift_cents"),
    ],
)
def test_bad_realism_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        SyntheticSongDataset(size=2, **kwargs)
    assert "\n" not in str(error.value)
