"""The training guide's Quick Start, end to end on random audio, in a few seconds.

Run: ``python -m chordexp.training.example_usage``

Builds a small ChordRecognitionModel, trains it for 2 epochs on random clips with
random labels (nothing to learn: this shows the mechanics, not accuracy), writes
checkpoints and ``history.json`` into a temporary folder, resumes from ``last.pt`` to
show the round trip, and prints the history and a few metrics.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from chordexp.chords import NUM_CHORD_TYPES, NUM_PITCH_CLASSES
from chordexp.model.chord_model import ChordRecognitionModel
from chordexp.model.loss import ChordRecognitionLoss
from chordexp.training import Trainer, TrainingConfig
from chordexp.training.metrics import compute_per_class_metrics, compute_topk_accuracy

SAMPLE_RATE = 16000
CLIP_SECONDS = 0.5


def random_chord_dataset(size: int, seed: int) -> TensorDataset:
    """``size`` clips of noise ``(num_samples,)`` with random chord_type/root/bass labels."""
    g = torch.Generator().manual_seed(seed)
    audio = 0.1 * torch.randn(size, int(SAMPLE_RATE * CLIP_SECONDS), generator=g)
    chord_type = torch.randint(0, NUM_CHORD_TYPES, (size,), generator=g)
    root = torch.randint(0, NUM_PITCH_CLASSES, (size,), generator=g)
    bass_note = torch.randint(0, NUM_PITCH_CLASSES, (size,), generator=g)
    return TensorDataset(audio, chord_type, root, bass_note)


def collate(items: Sequence[Tuple[Tensor, ...]]) -> Tuple[Tensor, Dict[str, Tensor]]:
    """Stack TensorDataset rows into the trainer's ``(audio (B, N), {task: (B,)})`` batch."""
    audio, chord_type, root, bass_note = (torch.stack(column) for column in zip(*items))
    return audio, {"chord_type": chord_type, "root": root, "bass_note": bass_note}


def main() -> Dict[str, List[float]]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.manual_seed(0)

    # Initialize model (small settings so the example runs in seconds on a CPU)
    model = ChordRecognitionModel(sample_rate=SAMPLE_RATE, d_model=32, num_blocks=1)
    criterion = ChordRecognitionLoss(chord_type_weight=1.0, root_weight=1.0, bass_weight=0.5, label_smoothing=0.1)

    # Prepare data loaders
    train_loader = DataLoader(random_chord_dataset(32, seed=1), batch_size=8, shuffle=True, collate_fn=collate)
    val_loader = DataLoader(random_chord_dataset(16, seed=2), batch_size=8, collate_fn=collate)

    with tempfile.TemporaryDirectory(prefix="chordexp-example-") as run_dir:
        config = TrainingConfig(
            learning_rate=1e-3,
            num_epochs=2,
            warmup_epochs=0,
            scheduler="cosine",
            checkpoint_dir=os.path.join(run_dir, "checkpoints"),
            save_every=1,
            log_every=2,
        )
        trainer = Trainer(
            model=model, train_loader=train_loader, val_loader=val_loader, config=config, criterion=criterion
        )

        # Train, then save the history
        history = trainer.train()
        trainer.export_history(os.path.join(run_dir, "history.json"))

        # Resume: a fresh trainer picks up exactly where this one stopped
        resumed = Trainer(
            ChordRecognitionModel(sample_rate=SAMPLE_RATE, d_model=32, num_blocks=1),
            train_loader,
            val_loader,
            config=config,
            criterion=criterion,
        )
        resumed.load_checkpoint(os.path.join(config.checkpoint_dir, "last.pt"))
        assert resumed.history == history and resumed.current_epoch == config.num_epochs

        # Metric utilities on the validation set
        model.eval()
        with torch.no_grad():
            batches = [(model(audio.to(trainer.device)), targets) for audio, targets in val_loader]
        logits = torch.cat([outputs["chord_type"].float().cpu() for outputs, _ in batches])
        labels = torch.cat([targets["chord_type"] for _, targets in batches])
        per_class = compute_per_class_metrics(logits, labels)

        print("files:", sorted(os.listdir(config.checkpoint_dir)), "+ history.json")
        print("history:", json.dumps({k: [float(f"{v:.4g}") for v in vs] for k, vs in history.items()}))
        print(
            f"best val_loss {trainer.best_val_loss:.4f} at epoch {trainer.best_epoch}; "
            f"chord_type top-1 {compute_topk_accuracy(logits, labels, k=1):.1f}% "
            f"top-5 {compute_topk_accuracy(logits, labels, k=5):.1f}%; "
            f"classes seen {int((per_class['support'] > 0).sum())}/{NUM_CHORD_TYPES}"
        )
    return history


if __name__ == "__main__":
    main()
