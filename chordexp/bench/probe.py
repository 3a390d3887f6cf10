"""Child processes of the benchmarks: ``python -m chordexp.bench.probe NAME JSON``.

Some figures only mean something in a fresh process (the cost of a first
transcription, the peak memory of a training run); the parent starts this module,
which runs the probe ``NAME`` with the JSON arguments and prints its result as one
line ``RESULT_PREFIX {json}`` after whatever the probe itself printed.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from typing import Any, Dict, Mapping, Optional

RESULT_PREFIX = "CHORDEXP_BENCH_RESULT"
#: probe name -> "module:function"; the function maps the JSON arguments to a JSON-able dict.
PROBES = {
    "transcribe": "chordexp.bench.transcription:probe",
    "transcribe_folder": "chordexp.bench.transcription:folder_probe",
    "train": "chordexp.bench.memory:probe",
}


def run_probe(
    name: str,
    args: Mapping[str, Any],
    *,
    cwd: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    timeout: float = 1800,
) -> Dict[str, Any]:
    """Run probe ``name`` in a child Python and return its result; RuntimeError with
    the tail of its output when it fails."""
    command = [sys.executable, "-m", "chordexp.bench.probe", name, json.dumps(dict(args))]
    child_env = dict(os.environ, **(env or {}))
    done = subprocess.run(command, cwd=cwd, env=child_env, capture_output=True, text=True, timeout=timeout)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX + " "):
            return json.loads(line[len(RESULT_PREFIX) + 1 :])
    tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
    raise RuntimeError(f"probe {name} failed (exit {done.returncode}):\n" + "\n".join(tail))


def main(argv: list) -> int:
    if len(argv) != 2 or argv[0] not in PROBES:
        print(f"usage: python -m chordexp.bench.probe {{{','.join(PROBES)}}} JSON", file=sys.stderr)
        return 2
    module, function = PROBES[argv[0]].split(":")
    result = getattr(importlib.import_module(module), function)(json.loads(argv[1]))
    sys.stdout.flush()
    print(f"{RESULT_PREFIX} {json.dumps(result)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
