"""Train a chord model from Python, without Hydra: the training guide's complete example
(its Quick Start end to end on noise, in a few seconds)::

    python -m chordexp.training.example_usage                      # a temporary folder, removed after
    python -m chordexp.training.example_usage --out my_run --epochs 3

Builds a small ``ChordRecognitionModel`` and its ``ChordRecognitionLoss``, trains it
with ``Trainer`` on ``DummyChordDataset`` clips (noise with random chord labels: nothing
to learn, this shows the mechanics, not accuracy), writes checkpoints and
``history.json``, resumes a fresh trainer from ``last.pt`` to show the round trip, and
scores the validation set with the metric functions. ``tests/test_examples.py`` runs it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from typing import Dict, List, Optional, Sequence

import torch

from chordexp.chords import NUM_CHORD_TYPES
from chordexp.data import DummyChordDataset, build_loaders
from chordexp.model.chord_model import ChordRecognitionModel
from chordexp.model.loss import ChordRecognitionLoss
from chordexp.training import Trainer, TrainingConfig
from chordexp.training.metrics import compute_per_class_metrics, compute_topk_accuracy

SAMPLE_RATE = 16000
CLIP_SECONDS = 0.5


def small_model() -> ChordRecognitionModel:
    """Small settings, so the example runs in seconds on a CPU."""
    return ChordRecognitionModel(sample_rate=SAMPLE_RATE, d_model=32, num_blocks=1)


def train(run_dir: str, epochs: int, train_size: int, val_size: int, batch_size: int) -> Dict[str, List[float]]:
    torch.manual_seed(0)
    model = small_model()
    criterion = ChordRecognitionLoss(chord_type_weight=1.0, root_weight=1.0, bass_weight=0.5, label_smoothing=0.1)

    # The library's datasets and loaders: a reproducible order, batches (audio (B, N), {task: (B,)})
    num_samples = int(SAMPLE_RATE * CLIP_SECONDS)
    train_loader, val_loader = build_loaders(
        DummyChordDataset(train_size, num_samples=num_samples, seed=1, split="train"),
        DummyChordDataset(val_size, num_samples=num_samples, seed=1, split="val"),
        batch_size=batch_size,
    )

    config = TrainingConfig(
        learning_rate=1e-3,
        num_epochs=epochs,
        warmup_epochs=0,
        scheduler="cosine",
        checkpoint_dir=os.path.join(run_dir, "checkpoints"),
        save_every=1,
        log_every=2,
    )
    trainer = Trainer(model=model, train_loader=train_loader, val_loader=val_loader, config=config, criterion=criterion)

    # Train, then save the history
    history = trainer.train()
    trainer.export_history(os.path.join(run_dir, "history.json"))

    # Resume: a fresh trainer picks up exactly where this one stopped
    resumed = Trainer(small_model(), train_loader, val_loader, config=config, criterion=criterion)
    resumed.load_checkpoint(os.path.join(config.checkpoint_dir, "last.pt"))
    if resumed.history != history or resumed.current_epoch != config.num_epochs:
        raise SystemExit("the resumed trainer does not continue where the first one stopped")

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


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, List[float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="the run folder to keep (default: a temporary folder, removed after)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=32, help="training clips")
    parser.add_argument("--val-size", type=int, default=16, help="validation clips")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    sizes = (args.epochs, args.train_size, args.val_size, args.batch_size)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        return train(args.out, *sizes)
    with tempfile.TemporaryDirectory(prefix="chordexp-example-") as run_dir:
        return train(run_dir, *sizes)


if __name__ == "__main__":
    main()
