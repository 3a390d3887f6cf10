"""Which torch device a name means: one home for every entry point (training, predict,
benchmarks), so ``device=auto`` means the same everywhere and a bad name is one line."""

from __future__ import annotations

import re

import torch

from chordexp.errors import UserError


class DeviceError(UserError, ValueError):
    """The device named is unknown or absent on this machine (a run finds out when it starts)."""


def resolve_device(name: str) -> torch.device:
    """``'auto'`` -> cuda if available else cpu; also ``'cpu'``, ``'cuda'``, ``'cuda:N'``,
    ``'mps'``. Raises DeviceError (one line) for unknown or unavailable devices."""
    name = str(name).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if re.fullmatch(r"cuda(:\d+)?", name):
        if not torch.cuda.is_available():
            raise DeviceError(f"device={name!r} but CUDA is not available here; use device=cpu or device=auto")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
        return torch.device(name)
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError("device='mps' but MPS is not available here; use device=cpu or device=auto")
        return torch.device("mps")
    raise DeviceError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N, mps")
