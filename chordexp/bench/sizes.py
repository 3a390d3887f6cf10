"""How big each benchmark is: the full run (the figures of the README) and ``quick``
(a miniature that checks the machinery end to end in seconds; its figures mean nothing).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional


@dataclass(frozen=True)
class Sizes:
    repeats: int  # timed repetitions; the figure is their median
    batch_size: Optional[int]  # None: the default run's (32)
    trainer_steps: int  # optimizer steps per epoch in the trainer-overhead runs
    trainer_epochs: int
    rich_clips: int  # clips generated per timed repetition
    plain_clips: int
    consumption_steps: int  # timed training steps for the consumption baseline
    frontend_seconds: float  # audio for the front-end comparison
    song_seconds: float  # length of the file transcribed
    peak_clips: Optional[int]  # train clips of the peak-RSS run; None: the default run's
    peak_epochs: int
    flat_clips: int  # train clips of the RSS-over-epochs run
    flat_epochs: int


FULL = Sizes(repeats=5, batch_size=None, trainer_steps=60, trainer_epochs=2, rich_clips=300, plain_clips=1000,
             consumption_steps=10, frontend_seconds=180.0, song_seconds=180.0, peak_clips=None, peak_epochs=2,
             flat_clips=2000, flat_epochs=5)
QUICK = Sizes(repeats=1, batch_size=4, trainer_steps=1, trainer_epochs=2, rich_clips=6, plain_clips=10,
              consumption_steps=1, frontend_seconds=3.0, song_seconds=10.0, peak_clips=32, peak_epochs=2,
              flat_clips=32, flat_epochs=3)


def sizes_for(quick: bool, repeats: int = 0) -> Sizes:
    """FULL or QUICK, with ``repeats`` overriding the mode's default when > 0."""
    base = QUICK if quick else FULL
    return replace(base, repeats=repeats) if repeats > 0 else base
