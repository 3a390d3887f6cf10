"""An item that fails to load names itself.

A DataLoader reports an exception from ``dataset[i]`` without ``i`` (and from a worker
process, with the worker's traceback as text), so the datasets here wrap any failure of
an item in :class:`ItemLoadError` carrying the dataset, the index and, where there is
one, the file. ``IndexError`` passes through untouched: it is how iteration ends.
"""

from __future__ import annotations

from typing import Optional

from chordexp.errors import UserError


class ItemLoadError(UserError, RuntimeError):
    """``dataset[index]`` failed; the one-line message names the dataset, index and file."""


def item_error(dataset: object, index: int, error: BaseException, source: Optional[str] = None) -> ItemLoadError:
    """The :class:`ItemLoadError` for ``error`` raised while loading ``dataset[index]``."""
    split = getattr(dataset, "split", None)
    where = f"{type(dataset).__name__}{f' ({split} split)' if split else ''} item {index}"
    if source:
        where += f" from {source}"
    reason = (str(error).strip().splitlines() or [""])[0]
    return ItemLoadError(
        f"{where} failed to load: {type(error).__name__}: {reason}"
        if reason
        else f"{where} failed to load: {type(error).__name__}"
    )
