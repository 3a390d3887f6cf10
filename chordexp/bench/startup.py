"""Benchmark 5: start-up of the command line against the libraries it cannot avoid.

``python -m chordexp.run --cfg job`` (compose and print the config: everything a run
does before its first real work) against ``python -c "import torch, hydra"``, both as
fresh processes in an empty folder, alternated and repeated; the median of the per-pair
ratios says what chordexp adds on top of importing torch and Hydra.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from typing import List, Sequence

from chordexp.bench.common import Row, alternate, echo, median, paired_ratio, timed
from chordexp.bench.sizes import Sizes

TARGET = 1.3
RUN = (sys.executable, "-m", "chordexp.run", "--cfg", "job")
IMPORTS = (sys.executable, "-c", "import torch, hydra")


def wall_seconds(command: Sequence[str], cwd: str) -> float:
    """Wall time of ``command`` run to completion (output discarded; failure raises)."""
    return timed(
        lambda: subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    )


def run(sizes: Sizes) -> List[Row]:
    with tempfile.TemporaryDirectory(prefix="chordexp-bench-") as tmp:
        echo(f"startup: {sizes.repeats} alternated runs of each command")
        wall_seconds(RUN, tmp), wall_seconds(IMPORTS, tmp)  # warm the file cache for both
        run_times, import_times = alternate(
            lambda: wall_seconds(RUN, tmp), lambda: wall_seconds(IMPORTS, tmp), sizes.repeats
        )
    run_s, import_s = median(run_times), median(import_times)
    return [
        Row(
            benchmark="startup",
            measure="python -m chordexp.run --cfg job",
            value=run_s,
            unit="s",
            baseline_name="import torch, hydra",
            baseline=import_s,
            baseline_unit="s",
            ratio=paired_ratio(run_times, import_times),
            ratio_of="run / imports",
            target_op="<=",
            target=TARGET,
            samples={"run_s": run_times, "imports_s": import_times},
        )
    ]
