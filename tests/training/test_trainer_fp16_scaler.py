"""fp16 with a GradScaler on the CPU: overflow steps are the scaler's, not non-finite losses.

The scaler absorbs gradients that overflow while the loss is finite (it skips the step
and halves its scale; ``scaler_skipped_steps`` counts them). ``on_nonfinite`` handles
what it cannot absorb: a loss that is itself NaN/inf, and an overflow that takes the
scale below ``MIN_LOSS_SCALE``.
"""

from __future__ import annotations

import logging
import math

import pytest
import torch

from chordexp.training import NonFiniteLossError
from chordexp.training.trainer import MIN_LOSS_SCALE


def _finite_weights(model) -> bool:
    return all(torch.isfinite(v).all() for v in model.state_dict().values())


def _huge_scale(trainer, init_scale: float = 2.0**20) -> None:
    """A scale so large that the first steps' fp16 gradients overflow (2**16 does so for real models;
    this toy model needs 2**20: four overflows, down to 2**16)."""
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)


@pytest.mark.parametrize("policy", ["stop", "skip"])
@pytest.mark.parametrize("clip", [1.0, 0.0])
def test_overflowing_first_steps_are_absorbed_by_the_scaler(make_trainer, caplog, policy, clip):
    caplog.set_level(logging.INFO, logger="chordexp.training")  # the trainer and its step policy
    trainer = make_trainer(num_epochs=3, mixed_precision="fp16", on_nonfinite=policy, gradient_clip=clip)
    _huge_scale(trainer)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    history = trainer.train()  # no NonFiniteLossError
    assert trainer.current_epoch == 3
    assert all(math.isfinite(v) for v in history["train_loss"] + history["val_loss"])
    assert trainer.skipped_steps == 0  # nothing counted as a non-finite loss
    assert trainer.scaler_skipped_steps > 0
    scale = trainer.scaler.get_scale()
    assert MIN_LOSS_SCALE <= scale < 2.0**20  # backed off to where fp16 gradients fit
    assert scale == 2.0**20 * 0.5**trainer.scaler_skipped_steps  # growth_interval 2000: no growth yet
    assert trainer.scaler_skipped_steps < 3 * trainer.steps_per_epoch  # it did train
    assert _finite_weights(trainer.model)
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert (
        "epoch 1: the fp16 GradScaler skipped 4 optimizer step(s) with overflowing gradients (4 in total); "
        "scale now 65536"
    ) in caplog.text
    assert "optimizer step skipped" not in caplog.text and "non-finite" not in caplog.text
    assert torch.load(trainer.checkpoint_dir / "last.pt", weights_only=True)["scaler"]["scale"] == scale


def test_scaler_skipped_steps_keep_their_finite_loss_in_the_average(make_trainer):
    """Every step of the epoch overflows: no weights move, and the epoch's loss is still the mean."""
    trainer = make_trainer(
        num_epochs=1, mixed_precision="fp16", optimizer_factory=lambda params: torch.optim.SGD(params, lr=0.0)
    )
    _huge_scale(trainer, 2.0**60)
    dataset = trainer.train_loader.dataset
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        expected = (
            sum(
                trainer.criterion(
                    trainer.model(dataset.audio[s : s + 4]), {k: v[s : s + 4] for k, v in dataset.targets.items()}
                )["total_loss"]
                .float()
                .item()
                for s in (0, 4, 8, 12)
            )
            / 4
        )
    metrics = trainer.train_epoch()
    assert trainer.scaler_skipped_steps == 4 and trainer.skipped_steps == 0
    assert metrics["total_loss"] == pytest.approx(expected, rel=1e-3)


def test_nan_loss_under_fp16_stops_with_the_clear_error(make_trainer, tmp_path):
    trainer = make_trainer(num_epochs=2, mixed_precision="fp16")
    trainer.train_loader.dataset.audio[8:12] = float("nan")  # batch 3
    with pytest.raises(
        NonFiniteLossError,
        match=r"non-finite training loss or gradient at epoch 1, batch 3 "
        r"\(fp16: the loss itself",
    ):
        trainer.train()
    assert not (tmp_path / "ckpt" / "last.pt").exists()


def test_nan_loss_under_fp16_is_skipped_and_not_blamed_on_the_scaler(make_trainer, caplog):
    trainer = make_trainer(num_epochs=2, mixed_precision="fp16", on_nonfinite="skip")
    trainer.train_loader.dataset.audio[8:12] = float("nan")  # batch 3 of every epoch
    history = trainer.train()
    assert trainer.skipped_steps == 2 and trainer.scaler_skipped_steps == 0
    assert trainer.scaler.get_scale() == 2.0**16  # a NaN loss is no reason to lower the scale
    assert all(math.isfinite(v) for v in history["train_loss"])
    assert _finite_weights(trainer.model)
    assert "non-finite loss at epoch 1, batch 3: optimizer step skipped (1 skipped so far)" in caplog.text


def _poison_gradients(trainer):
    """A finite loss whose gradient is infinite at any scale: the scaler cannot absorb it."""
    return trainer.model.heads["root"].weight.register_hook(lambda grad: grad * float("inf"))


def test_gradients_that_overflow_at_any_scale_stop_once_the_scale_falls_below_the_floor(make_trainer):
    trainer = make_trainer(num_epochs=1, train_size=64, mixed_precision="fp16")
    _huge_scale(trainer, 4.0)  # 4 -> 2 -> 1 (absorbed) -> 0.5 (below the floor): batch 3
    _poison_gradients(trainer)
    with pytest.raises(NonFiniteLossError, match=r"at epoch 1, batch 3 \(fp16: .*scale below 1\)"):
        trainer.train()


def test_gradients_that_overflow_at_any_scale_are_skipped_and_the_scale_held_at_the_floor(make_trainer, caplog):
    trainer = make_trainer(num_epochs=1, train_size=32, mixed_precision="fp16", on_nonfinite="skip")
    _huge_scale(trainer, 4.0)
    _poison_gradients(trainer)
    history = trainer.train()
    assert trainer.scaler_skipped_steps == 2  # 4 -> 2 -> 1
    assert trainer.skipped_steps == 6  # the other 6 of 8 steps
    assert trainer.scaler.get_scale() == MIN_LOSS_SCALE
    assert math.isfinite(history["train_loss"][0]) and _finite_weights(trainer.model)
    assert "gradient overflow with the fp16 GradScaler's scale below 1 at epoch 1, batch 3" in caplog.text


def test_fp16_without_overflow_matches_a_plain_scaled_loop(make_trainer, tiny_model):
    """The scaled step (unscale, clip, step, update) is the textbook AMP loop."""
    trainer = make_trainer(num_epochs=1, mixed_precision="fp16", train_size=8)
    model = tiny_model()  # the same model and optimizer, trained by hand
    model.load_state_dict(trainer.model.state_dict())
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-2, weight_decay=trainer.config.weight_decay, fused=True
    )  # the Trainer's default AdamW path
    scaler = torch.amp.GradScaler("cpu")
    for audio, targets in trainer.train_loader:
        with torch.autocast("cpu", dtype=torch.float16):
            loss = trainer.criterion(model(audio), targets)["total_loss"]
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.config.gradient_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
    trainer.train_epoch()
    assert trainer.scaler_skipped_steps == 0
    for key, value in model.state_dict().items():
        assert torch.equal(value, trainer.model.state_dict()[key]), key


# ------------------------------------------------------------------ DDP: every rank agrees
class _Heads(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh())
        self.heads = torch.nn.ModuleDict(
            {
                "chord_type": torch.nn.Linear(32, 32),
                "root": torch.nn.Linear(32, 12),
                "bass_note": torch.nn.Linear(32, 12),
            }
        )

    def forward(self, audio):
        hidden = self.body(audio)
        return {task: head(hidden) for task, head in self.heads.items()}


class _Items(torch.utils.data.Dataset):
    def __init__(self, audio) -> None:
        self.audio = audio
        clean = audio.nan_to_num()
        self.targets = {
            "chord_type": 1 + clean[:, :7].argmax(1),
            "root": clean[:, 8:12].argmax(1),
            "bass_note": clean[:, 12:16].argmax(1),
        }

    def __len__(self) -> int:
        return len(self.audio)

    def __getitem__(self, i):
        return self.audio[i], {task: labels[i] for task, labels in self.targets.items()}


def _ddp_fp16_worker(rank: int, port: int, policy: str, folder: str) -> None:
    """Rank ``rank`` of 2: fp16 from a scale that overflows, rank 1's batch 3 NaN in every epoch."""
    import os

    import torch.distributed as dist
    from torch.utils.data import DataLoader

    from chordexp.config import TrainingConfig
    from chordexp.training import Trainer
    from chordexp.training.distributed import DistContext

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    audio = torch.randn(16, 64, generator=torch.Generator().manual_seed(10 + rank))
    if rank == 1:
        audio[8:12] = float("nan")
    config = TrainingConfig(
        learning_rate=1e-2,
        num_epochs=2,
        warmup_epochs=0,
        scheduler="constant",
        device="cpu",
        checkpoint_dir=f"{folder}/ckpt",
        save_every=0,
        log_every=0,
        patience=0,
        mixed_precision="fp16",
        on_nonfinite=policy,
    )
    context = DistContext(rank=rank, world_size=2, local_rank=rank, local_world_size=2, backend="gloo")
    trainer = Trainer(
        _Heads(),
        DataLoader(_Items(audio), batch_size=4),
        DataLoader(_Items(audio), batch_size=4),
        config,
        distributed=context,
    )
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**24)
    result = {}
    try:
        result["history"] = trainer.train()["train_loss"]
    except NonFiniteLossError as exc:
        result["error"] = str(exc)
    result.update(
        scale=trainer.scaler.get_scale(),
        skipped=trainer.skipped_steps,
        scaler_skipped=trainer.scaler_skipped_steps,
        model=trainer.model.state_dict(),
    )
    torch.save(result, f"{folder}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.parametrize("policy", ["skip", "stop"])
def test_ddp_ranks_absorb_overflows_and_skip_or_stop_together(tmp_path, policy):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_ddp_fp16_worker, args=(port, policy, str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    for key in ("scale", "skipped", "scaler_skipped", "history", "error"):
        assert ranks[0].get(key) == ranks[1].get(key), key
    assert all(torch.equal(ranks[0]["model"][k], ranks[1]["model"][k]) for k in ranks[0]["model"])
    if policy == "skip":
        assert ranks[0]["skipped"] == 2 and ranks[0]["scaler_skipped"] > 0  # the NaN batch on rank 1, every epoch
        assert all(math.isfinite(v) for v in ranks[0]["history"])
        assert ranks[0]["scale"] == 2.0**24 * 0.5 ** ranks[0]["scaler_skipped"]
    else:
        assert "epoch 1, batch 3 (fp16: the loss itself" in ranks[0]["error"]
