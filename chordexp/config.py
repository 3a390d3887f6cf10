"""Typed configuration.

``TrainingConfig`` is the seed guide's flat dataclass, usable from plain Python.
The Hydra group schemas below it validate the YAML in ``conf/``; ``register_configs``
stores them in Hydra's ConfigStore. Hydra itself is imported only inside that function,
so the core (trainer, model, data) never pulls Hydra in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict


@dataclass
class TrainingConfig:
    """Every knob of the training loop, with the guide's defaults."""

    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    batch_size: int = 16
    num_epochs: int = 100
    warmup_epochs: int = 5
    scheduler: str = "cosine"  # 'cosine', 'onecycle' or 'constant'
    gradient_clip: float = 1.0  # max global grad norm; <= 0 disables clipping
    label_smoothing: float = 0.1
    checkpoint_dir: str = "checkpoints"
    save_every: int = 5  # periodic checkpoint every N epochs; <= 0 disables
    patience: int = 15  # early stopping on validation loss; <= 0 disables
    min_delta: float = 0.001
    log_every: int = 50  # log a training line every N batches
    device: str = "auto"  # 'auto' = 'cuda' if available, else 'cpu'
    # Beyond the guide's tables (its troubleshooting section asks for them):
    seed: int = 0
    mixed_precision: str = "no"  # 'no', 'bf16' or 'fp16' (autocast; fp16 uses a GradScaler)
    grad_accum_steps: int = 1  # optimizer step every N batches
    num_workers: int = 0  # DataLoader workers (used by the builders of loaders)
    deterministic: bool = False  # torch.use_deterministic_algorithms
    scheduler_options: Dict[str, Any] = field(default_factory=dict)  # extra scheduler kwargs
