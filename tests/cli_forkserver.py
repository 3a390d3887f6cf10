"""Run many short command lines fast: ``python tests/cli_forkserver.py [--jobs N]``.

Each ``python -m chordexp.<tool>`` spends 2-3 s of CPU importing torch, Hydra and
mir_eval before it looks at its arguments; a table of dozens of bad inputs would spend
minutes on imports alone. This server imports those libraries once, then runs every
command line it reads in a process of its own forked from it, exactly as ``python -m``
runs the module (``runpy.run_module(..., run_name="__main__")``, its own argv, working
folder, environment, stdout and stderr files and exit status). Only the interpreter's
start-up and the imports are shared: nothing has run in the server that a command
could see (it never calls torch, Hydra or the tools).

Input (stdin, one JSON object a line): ``id``, ``module``, ``args``, ``cwd``, ``env``
(set; ``null`` values unset), ``pythonpath`` (prepended to ``sys.path``), ``stdout``,
``stderr`` (files), ``timeout`` (s). Output (stdout): one line ``{"id", "status"}`` per
command as it ends (status as Python's ``returncode``: negative for a signal) and its
wall-clock ``seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any, Dict


def preload() -> None:
    """What the tools import anyway, so that the forked commands need not."""
    import hydra  # noqa: F401
    import mir_eval  # noqa: F401
    import omegaconf  # noqa: F401
    import soundfile  # noqa: F401
    import torch  # noqa: F401

    import chordexp.data  # noqa: F401
    import chordexp.evaluate  # noqa: F401
    import chordexp.predict  # noqa: F401
    import chordexp.report  # noqa: F401
    import chordexp.run  # noqa: F401
    import chordexp.training.trainer  # noqa: F401


def run_command(request: Dict[str, Any]) -> None:
    """In the forked child: become ``python -m MODULE ARGS`` and exit with its status."""
    import atexit
    import logging
    import runpy
    import traceback

    os.chdir(request["cwd"])
    for name, value in request.get("env", {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    sys.path[0] = os.getcwd()  # as ``python -m`` has it (here it was this script's folder)
    sys.path[:0] = request.get("pythonpath", [])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.argv = [request["module"], *request["args"]]
    sys.modules.pop(request["module"], None)  # preloaded for its imports; ``-m`` runs it as __main__ only
    status = 0
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as done:  # what the interpreter does with it
        if done.code is None:
            status = 0
        elif isinstance(done.code, int):
            status = done.code
        else:
            print(done.code, file=sys.stderr)
            status = 1
    except BaseException:  # noqa: BLE001 - an uncaught error, printed as Python would
        traceback.print_exc()
        status = 1
    try:
        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status & 0xFF)


def serve(jobs: int) -> None:
    requests = [json.loads(line) for line in sys.stdin if line.strip()]
    running: Dict[int, Any] = {}  # pid -> (id, deadline)
    while requests or running:
        while requests and len(running) < jobs:
            request = requests.pop(0)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                run_command(request)
            running[pid] = (request["id"], time.monotonic() + float(request.get("timeout", 120)), time.monotonic())
        pid, wait_status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            for child, (_, deadline, _) in running.items():
                if time.monotonic() > deadline:
                    os.kill(child, signal.SIGKILL)
            time.sleep(0.01)
            continue
        if pid in running:
            case, _, started = running.pop(pid)
            print(
                json.dumps(
                    {
                        "id": case,
                        "status": os.waitstatus_to_exitcode(wait_status),
                        "seconds": round(time.monotonic() - started, 2),
                    }
                ),
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2)
    preload()
    serve(parser.parse_args().jobs)


if __name__ == "__main__":
    main()
