"""Where the Hydra configs live, as one absolute path for every composition.

``chordexp/conf`` in an installed wheel (setup.py ships the repository's conf/ there),
else ``conf`` next to the package (a source tree, an editable install). Absolute,
because Hydra resolves a relative config_path against the package (``pkg://``) when
``chordexp.run.main`` is imported (console scripts, ``from chordexp.run import main``).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent
CONF_DIR = str(_PACKAGE / "conf" if (_PACKAGE / "conf" / "config.yaml").is_file() else _PACKAGE.parent / "conf")
