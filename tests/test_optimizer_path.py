"""AdamW takes its fused path (one kernel per step) wherever the project builds it:
the default run's optimizer, the Trainer's own default and the plain-loop baseline
of the bench, so the Trainer and its baseline are measured on the same path."""

from __future__ import annotations

import torch

from chordexp.bench.defaults import default_components
from chordexp.training import Trainer


def test_the_default_runs_adamw_and_the_trainers_default_are_fused(tmp_path):
    config, parts = default_components()
    model = parts["model"]
    optimizer = parts["optimizer_factory"](model.parameters())  # what the plain-loop baseline builds too
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["fused"] is True

    config.checkpoint_dir = str(tmp_path)
    batch = [
        (
            torch.zeros(1, model.sample_rate),
            {key: torch.zeros(1, dtype=torch.long) for key in ("chord_type", "root", "bass_note")},
        )
    ]
    trainer = Trainer(model=model, train_loader=batch, val_loader=batch, config=config)
    assert trainer.optimizer.defaults["fused"] is True


def test_fused_adamw_makes_the_same_update_as_the_single_tensor_loop():
    torch.manual_seed(0)
    weights = [torch.randn(64, 32), torch.randn(32)]
    results = []
    for options in ({"foreach": False}, {"fused": True}):
        params = [w.clone().requires_grad_() for w in weights]
        optimizer = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.01, **options)
        for step in range(5):
            for i, p in enumerate(params):
                p.grad = torch.sin(p.detach() * (step + i + 1))
            optimizer.step()
        results.append(torch.cat([p.detach().flatten() for p in params]))
    torch.testing.assert_close(results[1], results[0], rtol=1e-5, atol=1e-6)


def test_runs_from_before_the_fused_default_can_still_be_resumed():
    from chordexp.experiment.resume_check import config_differences

    before = {"optimizer": {"_target_": "torch.optim.AdamW", "lr": 1e-3}}
    now = {"optimizer": {"_target_": "torch.optim.AdamW", "lr": 1e-3, "fused": True}}
    assert config_differences(before, now) == []


def test_a_resumed_optimizer_keeps_the_path_its_checkpoint_was_written_with():
    params = [torch.zeros(3, requires_grad=True)]
    old = torch.optim.AdamW(params, lr=1e-3)  # written before the fused default
    resumed = torch.optim.AdamW(params, lr=1e-3, fused=True)
    resumed.load_state_dict(old.state_dict())
    assert not resumed.param_groups[0]["fused"]
