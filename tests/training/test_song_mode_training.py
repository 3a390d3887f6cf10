"""A model trained briefly in song mode finds the chord changes of a known song."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from chordexp.chords import chord_pitch_classes, parse_label
from chordexp.config import TrainingConfig
from chordexp.data.frames import FrameGrid, frame_targets
from chordexp.data.soundfont import Note, SoundFontRenderer
from chordexp.inference import ChordRecognizer
from chordexp.model import ChordRecognitionModel
from chordexp.training import Trainer

RATE = 11025
PROGRESSION = ("C:maj", "F:maj", "G:maj", "A:min", "D:min", "G:maj", "C:maj", "E:min")
CHORD_SECONDS = 1.7


def known_song():
    """Block chords on a piano, one every 1.7 s: audio and (start, end, triple) segments."""
    notes, segments = [], []
    for i, label in enumerate(PROGRESSION):
        root, chord_type, bass = parse_label(label)
        start = i * CHORD_SECONDS
        keys = [48 + bass] + [60 + pc for pc in chord_pitch_classes(root, chord_type)]
        notes += [Note(k, 0.8, start, 0, CHORD_SECONDS * 0.97) for k in keys]
        segments.append((start, start + CHORD_SECONDS, (chord_type, root, bass)))
    audio = SoundFontRenderer(sample_rate=RATE).render(notes, int(len(PROGRESSION) * CHORD_SECONDS * RATE))
    return audio / np.abs(audio).max() * 0.5, segments


class Crops(Dataset):
    """5-s crops of the known song at evenly spread offsets, with frame targets."""

    def __init__(self, audio, segments, count, seconds=5.0):
        self.audio, self.segments, self.n = audio, segments, int(seconds * RATE)
        self.grid = FrameGrid.for_model(RATE)
        self.offsets = np.linspace(0, len(audio) - self.n, count).astype(int)

    def __len__(self):
        return len(self.offsets)

    def __getitem__(self, i):
        offset = self.offsets[i] / RATE
        starts, ends, triples = zip(*self.segments)
        times = self.grid.times(self.grid.num_frames(self.n)) + offset
        targets = frame_targets(starts, ends, triples, times, valid_until=offset + self.n / RATE)
        return torch.from_numpy(self.audio[self.offsets[i] : self.offsets[i] + self.n].astype(np.float32)), targets


def test_a_briefly_trained_song_model_finds_the_chord_changes_within_a_quarter_second(tmp_path, one_torch_thread):
    torch.manual_seed(0)
    audio, segments = known_song()
    model = ChordRecognitionModel(
        sample_rate=RATE, d_model=48, num_blocks=1, num_heads=4, channels=8, context_seconds=5.0, frame_outputs=True
    )
    crops = Crops(audio, segments, count=24)
    config = TrainingConfig(
        learning_rate=3e-3,
        num_epochs=12,
        warmup_epochs=1,
        batch_size=8,
        device="cpu",
        checkpoint_dir=str(tmp_path / "ckpt"),
        log_every=0,
        save_every=0,
        label_smoothing=0.0,
    )
    trainer = Trainer(model, DataLoader(crops, batch_size=8, shuffle=True), DataLoader(crops, batch_size=8), config)
    trainer.train()
    found = ChordRecognizer(model.eval(), self_transition=0.9, silence_db=None).transcribe(audio, RATE).segments
    boundaries = [start for start, _, _ in found[1:]]
    expected = [i * CHORD_SECONDS for i in range(1, len(PROGRESSION))]
    for change in expected:
        assert min(abs(b - change) for b in boundaries) <= 0.25, (change, found)
    assert len(boundaries) <= len(expected) + 2  # no flicker
    assert [label for _, _, label in found] == list(PROGRESSION)
