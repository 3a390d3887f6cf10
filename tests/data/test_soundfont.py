"""The SoundFont renderer: real samples, deterministic, notes that start and stop on time."""

import numpy as np

from chordexp.data.soundfont import BASS_PROGRAMS, CHORD_PROGRAMS, MELODY_PROGRAMS, Note, SoundFontRenderer

SR = 22050


def rms(x):
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def test_every_program_we_draw_exists_in_the_default_font():
    renderer = SoundFontRenderer(sample_rate=SR)
    programs = {p for family in CHORD_PROGRAMS.values() for p in family} | set(BASS_PROGRAMS) | set(MELODY_PROGRAMS)
    assert all(renderer.has_program(p) for p in programs)


def test_output_depends_only_on_the_notes_not_on_what_was_rendered_before():
    renderer = SoundFontRenderer(sample_rate=SR)
    chord = [Note(k, 0.8, 0.0, 0) for k in (48, 52, 55)]
    first = renderer.render(chord, SR)
    renderer.render([Note(40, 1.0, 0.0, 33), Note(76, 1.0, 0.1, 56)], SR, release=0.3)
    assert np.array_equal(renderer.render(chord, SR), first)
    assert np.array_equal(SoundFontRenderer(sample_rate=SR).render(chord, SR), first)


def test_onsets_durations_and_release_are_where_they_were_asked():
    renderer = SoundFontRenderer(sample_rate=SR)
    late = renderer.render([Note(60, 0.9, 0.5, 16)], SR)  # organ: sustains while held
    assert rms(late[: SR // 2 - 300]) < 1e-4 < rms(late[SR // 2 :])
    short = renderer.render([Note(60, 0.9, 0.0, 16, duration=0.2)], SR)
    assert rms(short[int(0.6 * SR) :]) < 0.05 * rms(short[: int(0.2 * SR)])
    released = renderer.render([Note(60, 0.9, 0.0, 16)], SR, release=0.4)
    assert rms(released[int(0.9 * SR) :]) < 0.05 * rms(released[: int(0.5 * SR)])


def test_pitch_is_the_midi_key():
    renderer = SoundFontRenderer(sample_rate=SR)
    audio = renderer.render([Note(69, 0.9, 0.0, 0)], SR)  # piano (GM organs add a sub-octave stop)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    freqs = np.fft.rfftfreq(len(audio), 1 / SR)
    low = freqs < 1000
    assert abs(freqs[low][spectrum[low].argmax()] - 440.0) < 440.0 * (2 ** (1 / 24) - 1)


def test_a_dataset_with_sampled_instruments_pickles_for_spawned_workers():
    import pickle

    from chordexp.data import SyntheticChordDataset

    dataset = SyntheticChordDataset(4, sample_rate=SR, soundfont_prob=1.0)
    clone = pickle.loads(pickle.dumps(dataset))
    assert np.array_equal(clone[1][0].numpy(), dataset[1][0].numpy())
