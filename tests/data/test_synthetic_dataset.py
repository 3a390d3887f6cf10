"""SyntheticChordDataset: determinism, item format, labels that match the audio."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chordexp.chords import CHORD_INTERVALS, CHORD_TYPES, NUM_CHORD_TYPES, chord_pitch_classes
from chordexp.data import SyntheticChordDataset

SR = 44100
#: Everything that blurs pitch switched off: what is left must match the labels exactly.
CLEAN = dict(
    noise_prob=0.0,
    percussion_prob=0.0,
    vibrato_prob=0.0,
    tremolo_prob=0.0,
    detune_prob=0.0,
    saturation_prob=0.0,
    band_limit_prob=0.0,
    tuning_cents=0.0,
    release_prob=0.0,
    strum_prob=0.0,
    arpeggio_prob=0.0,
    families=("organ",),
    soundfont_prob=0.0,
    change_prob=0.0,
)
CHORDS_ONLY = [0.0] + [1.0] * (NUM_CHORD_TYPES - 1)
N_ONLY = [1.0] + [0.0] * (NUM_CHORD_TYPES - 1)


def labels(targets):
    return int(targets["chord_type"]), int(targets["root"]), int(targets["bass_note"])


def semitone_db(audio: np.ndarray, sr: int = SR) -> np.ndarray:
    """Energy (dB re the strongest) within 30 cents of each MIDI note 0..127 (A4 = 440 Hz)."""
    power = np.abs(np.fft.rfft(audio.astype(np.float64) * np.hanning(len(audio)))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1.0 / sr)[1:]
    midi = 12 * np.log2(freqs / 440.0) + 69
    near = (np.abs(midi - np.rint(midi)) < 0.3) & (midi >= 0) & (midi < 128)
    energy = np.bincount(np.rint(midi[near]).astype(int), power[1:][near], minlength=128)
    return 10 * np.log10(energy + 1e-30) - 10 * np.log10(energy.max())


def peakiness_db(audio: np.ndarray, sr: int = SR) -> float:
    """Strongest spectral line between 60 Hz and 5 kHz over the local (+-50 Hz) median, dB.
    Noise of any colour stays near 10-15 dB; a steady tone is far above."""
    power = np.abs(np.fft.rfft(audio.astype(np.float64) * np.hanning(len(audio)))) ** 2
    lo, hi = 60 * len(audio) // sr, 5000 * len(audio) // sr
    if power[lo:hi].max() <= 0:
        return 0.0
    median = np.median(np.lib.stride_tricks.sliding_window_view(power[lo - 50 : hi + 50], 101), axis=1)
    return float(10 * np.log10(np.max(power[lo:hi] / (median + 1e-30))))


# ------------------------------------------------------------------ determinism
def test_same_seed_split_and_index_give_bit_identical_items():
    a = SyntheticChordDataset(50, split="val", seed=7)
    b = SyntheticChordDataset(50, split="val", seed=7)
    for i in (3, 0, 41):  # order of access must not matter
        (xa, ta), (xb, tb) = a[i], b[i]
        assert torch.equal(xa, xb)
        assert labels(ta) == labels(tb)
    assert torch.equal(a[-1][0], a[49][0])


def test_other_split_seed_or_index_gives_a_different_clip():
    ref = SyntheticChordDataset(10, split="train", seed=0)[4][0]
    for other in (
        SyntheticChordDataset(10, split="val", seed=0)[4][0],
        SyntheticChordDataset(10, split="test", seed=0)[4][0],
        SyntheticChordDataset(10, split="train", seed=1)[4][0],
        SyntheticChordDataset(10, split="train", seed=0)[5][0],
    ):
        assert not torch.equal(ref, other)


def test_targets_method_matches_items_without_rendering():
    ds = SyntheticChordDataset(20, seed=3)
    for i in range(20):
        t = ds.targets(i)
        assert (t["chord_type"], t["root"], t["bass_note"]) == labels(ds[i][1])


# ----------------------------------------------------------------- item format
@pytest.mark.parametrize("realism", ["rich", "plain"])
def test_items_have_the_framework_format(realism):
    ds = SyntheticChordDataset(40, seed=2, realism=realism)
    for i in range(len(ds)):
        audio, targets = ds[i]
        assert audio.shape == (SR,) and audio.dtype == torch.float32
        assert torch.isfinite(audio).all() and audio.abs().max() <= 1.0
        assert set(targets) == {"chord_type", "root", "bass_note"}
        for value in targets.values():
            assert value.dtype == torch.long and value.dim() == 0
        chord_type, root, bass = labels(targets)
        assert 0 <= chord_type < NUM_CHORD_TYPES and 0 <= root < 12 and 0 <= bass < 12
        if chord_type == 0:
            assert root == bass == 0
        else:
            assert bass in chord_pitch_classes(root, chord_type)
            assert audio.abs().max() > 1e-3  # a chord is never silent


def test_clip_length_follows_sample_rate_and_seconds():
    ds = SyntheticChordDataset(3, sample_rate=16000, clip_seconds=0.5)
    assert ds.num_samples == 8000 and ds[0][0].shape == (8000,)
    assert SyntheticChordDataset(2, sample_rate=22050, clip_seconds=2.0)[1][0].shape == (44100,)


def test_generator_options_accept_lists_as_hydra_passes_them():
    from omegaconf import OmegaConf

    ds = SyntheticChordDataset(
        2, snr_db=OmegaConf.create([10, 20]), families=["pluck"], chord_type_weights=OmegaConf.create(CHORDS_ONLY)
    )
    assert ds.options.snr_db == (10, 20) and ds.options.families == ("pluck",)
    assert ds[1][0].shape == (SR,)


def test_index_out_of_range_raises_index_error():
    ds = SyntheticChordDataset(5)
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(IndexError):
        ds[-6]


# ------------------------------------------------------- labels match the audio
def test_pure_tones_sound_exactly_the_chord_pitch_classes_with_the_bass_lowest():
    ds = SyntheticChordDataset(60, seed=11, max_partials=1, inversion_prob=0.5, chord_type_weights=CHORDS_ONLY, **CLEAN)
    inversions = 0
    for i in range(len(ds)):
        audio, targets = ds[i]
        chord_type, root, bass = labels(targets)
        energy = semitone_db(audio.numpy())
        sounding = np.flatnonzero(energy > -25.0)
        assert {int(m) % 12 for m in sounding} == set(chord_pitch_classes(root, chord_type)), i
        assert sounding.min() % 12 == bass, i
        inversions += bass != root
    assert inversions >= 10  # the check above covered inverted chords too


def test_harmonic_timbres_keep_every_chord_tone_and_the_bass_lowest():
    ds = SyntheticChordDataset(40, seed=12, inversion_prob=0.5, chord_type_weights=CHORDS_ONLY, **CLEAN)
    for i in range(len(ds)):
        audio, targets = ds[i]
        chord_type, root, bass = labels(targets)
        sounding = np.flatnonzero(semitone_db(audio.numpy()) > -25.0)
        assert set(chord_pitch_classes(root, chord_type)) <= {int(m) % 12 for m in sounding}, i
        assert sounding.min() % 12 == bass, i


def test_soundfont_chords_sound_every_chord_tone_with_the_bass_lowest():
    """Sampled instruments (all of them, noise off): chord tones present, and the lowest strong
    note is the bass. Real bass samples can have a weak fundamental, so that holds for nearly
    all clips rather than every one (a wrong bass label would match about a third)."""
    ds = SyntheticChordDataset(
        40,
        seed=15,
        inversion_prob=0.5,
        chord_type_weights=CHORDS_ONLY,
        soundfont_prob=1.0,
        noise_prob=0.0,
        percussion_prob=0.0,
        saturation_prob=0.0,
        release_prob=0.0,
        arpeggio_prob=0.0,
        eq_tilt_db=0.0,
        change_prob=0.0,
    )
    bass_matches = 0
    for i in range(len(ds)):
        audio, targets = ds[i]
        chord_type, root, bass = labels(targets)
        energy = semitone_db(audio.numpy())
        sounding = np.flatnonzero(energy > -40.0)
        assert set(chord_pitch_classes(root, chord_type)) <= {int(m) % 12 for m in sounding}, i
        strong = np.flatnonzero(energy[24:] > -25.0) + 24  # above C1 and the leakage skirts of loud notes
        bass_matches += strong.min() % 12 == bass
    assert bass_matches >= 36


def chroma(audio: np.ndarray) -> np.ndarray:
    """Unit-length 12-bin pitch-class energy profile (MIDI 36..96)."""
    energy = 10 ** (semitone_db(audio)[36:97] / 10)
    profile = np.bincount(np.arange(36, 97) % 12, energy, minlength=12)
    return profile / max(np.linalg.norm(profile), 1e-30)


def test_clips_across_a_change_are_mostly_the_labelled_chord():
    """With change_prob=1 every clip holds a second chord; the labelled one fills 60-90 %
    of it, so the middle of the clip sounds like the labelled chord alone."""
    options = dict(CLEAN, chord_type_weights=CHORDS_ONLY, inversion_prob=0.0)
    plain = SyntheticChordDataset(20, seed=21, **options)
    changed = SyntheticChordDataset(20, seed=21, **dict(options, change_prob=1.0))
    middle, edge = [], []
    for i in range(len(plain)):
        assert labels(plain[i][1]) == labels(changed[i][1])  # same label, other audio
        audio, alone = changed[i][0].numpy(), plain[i][0].numpy()
        assert not np.array_equal(audio, alone)
        tenth = len(audio) // 10
        middle.append(float(chroma(audio[4 * tenth : 6 * tenth]) @ chroma(alone)))
        # one end of the clip belongs to the other chord: the less similar end
        edge.append(min(float(np.nan_to_num(chroma(part)) @ chroma(alone)) for part in (audio[:tenth], audio[-tenth:])))
    assert sum(m > 0.8 for m in middle) >= 15
    assert np.mean(middle) > np.mean(edge) + 0.3


def test_no_chord_clips_carry_no_stable_pitch():
    chords = SyntheticChordDataset(
        20,
        seed=13,
        chord_type_weights=CHORDS_ONLY,
        noise_prob=0.0,
        percussion_prob=0.0,
        vibrato_prob=0.0,
        detune_prob=0.0,
        attack_noise_prob=0.0,
    )
    assert min(peakiness_db(chords[i][0].numpy()) for i in range(len(chords))) > 20.0  # the measure sees pitch
    for kind in ("noise", "percussion", "silence", "texture"):
        ds = SyntheticChordDataset(25, seed=14, chord_type_weights=N_ONLY, no_chord_kinds=(kind,))
        for i in range(len(ds)):
            audio, targets = ds[i]
            assert labels(targets) == (0, 0, 0)
            assert peakiness_db(audio.numpy()) < 18.0, (kind, i)


# --------------------------------------------------------------- distributions
def test_chord_types_and_roots_are_roughly_uniform_by_default():
    ds = SyntheticChordDataset(9600, seed=5)
    drawn = [ds.targets(i) for i in range(len(ds))]
    types = np.bincount([t["chord_type"] for t in drawn], minlength=NUM_CHORD_TYPES)
    roots = np.bincount([t["root"] for t in drawn if t["chord_type"] != 0], minlength=12)
    assert types.min() > 0.7 * 300 and types.max() < 1.3 * 300
    assert roots.min() > 0.85 * roots.mean() and roots.max() < 1.15 * roots.mean()


def test_chord_type_weights_set_the_class_distribution():
    weights = [0.0] * NUM_CHORD_TYPES
    weights[1], weights[10] = 3.0, 1.0  # maj, maj7
    ds = SyntheticChordDataset(2000, seed=6, chord_type_weights=weights)
    types = np.bincount([ds.targets(i)["chord_type"] for i in range(len(ds))], minlength=NUM_CHORD_TYPES)
    assert set(np.flatnonzero(types)) == {1, 10}
    assert 2.5 < types[1] / types[10] < 3.5


def test_inversion_prob_controls_whether_the_bass_is_the_root():
    root_position = SyntheticChordDataset(300, inversion_prob=0.0, chord_type_weights=CHORDS_ONLY)
    assert all(t["bass_note"] == t["root"] for t in map(root_position.targets, range(300)))
    inverted = SyntheticChordDataset(300, inversion_prob=1.0, chord_type_weights=CHORDS_ONLY)
    for t in map(inverted.targets, range(300)):
        core = [i for i in CHORD_INTERVALS[CHORD_TYPES[t["chord_type"]]] if 0 < i < 12]
        assert (t["bass_note"] != t["root"]) == bool(core)
        assert t["bass_note"] in chord_pitch_classes(t["root"], t["chord_type"])


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(size=0), "size"),
        (dict(size=-3), "size"),
        (dict(size=4, split="dev"), "split"),
        (dict(size=4, seed=-1), "seed"),
        (dict(size=4, sample_rate=0), "sample_rate"),
        (dict(size=4, clip_seconds=0.0), "clip_seconds"),
        (dict(size=4, realism="fancy"), "realism"),
        (dict(size=4, snr_db=(30.0, 10.0)), "snr_db"),
        (dict(size=4, noise_prob=1.5), "noise_prob"),
        (dict(size=4, families=("kazoo",)), "families"),
        (dict(size=4, chord_type_weights=[1.0] * 5), "chord_type_weights"),
        (dict(size=4, max_notes=3), "max_notes"),
        (dict(size=4, spread=(24.5, 30)), "spread"),
        (dict(size=4, colour="red"), "unknown generator option 'colour'"),
    ],
)
def test_bad_arguments_raise_one_clear_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        SyntheticChordDataset(**kwargs)
    assert "\n" not in str(info.value)
