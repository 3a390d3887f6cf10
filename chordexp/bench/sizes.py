"""How big each benchmark is: the full run (the figures of the README) and ``quick``
(a miniature that checks the machinery end to end in seconds; its figures mean nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Tuple


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
    song_excerpts: int = 12  # excerpts rendered per timed repetition (song data)
    song_excerpt_seconds: float = 15.0  # the default excerpt (data=songs)
    collection_hours: Tuple[float, ...] = (5.0, 20.0)  # sizes of the collection written to disk
    collection_song_seconds: float = 180.0  # length of each song in it
    folder_files: int = 100  # files in the folder transcribed in parallel
    folder_seconds: float = 180.0  # length of each
    folder_serial_files: int = 10  # of them, transcribed by one process as the baseline
    memory_song_seconds: Tuple[float, float] = (180.0, 7200.0)  # predict's peak RSS: a song, a long recording


FULL = Sizes(
    repeats=5,
    batch_size=None,
    trainer_steps=60,
    trainer_epochs=2,
    rich_clips=300,
    plain_clips=1000,
    consumption_steps=10,
    frontend_seconds=180.0,
    song_seconds=180.0,
    peak_clips=None,
    peak_epochs=2,
    flat_clips=2000,
    flat_epochs=5,
)
QUICK = Sizes(
    repeats=1,
    batch_size=4,
    trainer_steps=1,
    trainer_epochs=2,
    rich_clips=6,
    plain_clips=10,
    consumption_steps=1,
    frontend_seconds=3.0,
    song_seconds=10.0,
    peak_clips=32,
    peak_epochs=2,
    flat_clips=32,
    flat_epochs=3,
    song_excerpts=1,
    song_excerpt_seconds=2.0,
    collection_hours=(0.01, 0.02),
    collection_song_seconds=20.0,
    folder_files=3,
    folder_seconds=5.0,
    folder_serial_files=2,
    memory_song_seconds=(5.0, 20.0),
)


def sizes_for(quick: bool, repeats: int = 0) -> Sizes:
    """FULL or QUICK, with ``repeats`` overriding the mode's default when > 0."""
    base = QUICK if quick else FULL
    return replace(base, repeats=repeats) if repeats > 0 else base
