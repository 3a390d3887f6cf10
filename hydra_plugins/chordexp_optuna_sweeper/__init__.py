"""chordexp's Optuna sweeper for Hydra (``hparams_search=optuna``): see docs/search.md.

Hydra imports every module of a ``hydra_plugins`` package when it starts, so none of
them imports optuna at module level: a plain run or ``--help`` does not pay for it.
"""

from __future__ import annotations

from pathlib import Path


def make_discoverable() -> None:
    """Let Hydra's plugin scan find this package in an editable install too.

    Hydra lists ``hydra_plugins`` with ``pkgutil``, which cannot list the import hook
    through which setuptools maps an editable install's packages; adding this package's
    real parent folder to the namespace's path makes it a plain folder again. A wheel
    install puts it in site-packages, already on the path: then this does nothing.
    """
    import hydra_plugins

    folder = str(Path(__file__).resolve().parent.parent)
    if folder not in list(hydra_plugins.__path__):
        hydra_plugins.__path__.append(folder)
