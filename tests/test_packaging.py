"""The package installs like one: the wheel carries the configs (conf/ as chordexp/conf)
and composes from them outside the repository; every console command of
``[project.scripts]`` is its module's ``cli`` and answers ``--help``; bare arguments fill the
positional keys of the key=value commands (``chordexp-report FOLDER``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import import_module
from pathlib import Path

import pytest

from chordexp import report
from chordexp.cli import parse_args, with_positional_keys
from chordexp.errors import UsageError
from chordexp.report import ReportArgs

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def console_scripts() -> dict:
    """``[project.scripts]`` of pyproject.toml: command -> ``module:function``."""
    text = (REPO / "pyproject.toml").read_text()
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^([\w-]+)\s*=\s*"([\w.:]+)"', section, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources (the build leaves nothing in the repo)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    for name in ("chordexp", "conf", "hydra_plugins"):  # hydra_plugins: our sweeper, scanned by Hydra at start
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=ignore)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(root / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = (root / "dist").glob("chordexp-*.whl")
    return built


def test_the_wheel_carries_every_config_and_nothing_of_the_work_tree(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"chordexp/conf/{p.relative_to(CONF).as_posix()}" for p in CONF.rglob("*.yaml")}
    assert len(configs) > 20 and configs <= names
    work_tree = {"conf", "outputs", "data", "tests", "docs", "build", "examples"}
    assert not {name.split("/")[0] for name in names} & work_tree
    info = "chordexp-{}.dist-info".format(wheel.name.split("-")[1])
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert "License-Expression: MIT" in metadata and f"{info}/licenses/LICENSE" in names
    for floor in ("mir_eval>=0.8", "pretty_midi>=0.2.11", "PyYAML>=5.1"):
        assert f"Requires-Dist: {floor}" in metadata
    entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    for command, target in console_scripts().items():
        assert f"{command} = {target}" in entry_points


def test_the_installed_package_composes_its_own_configs_from_any_folder(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = dict(os.environ, PYTHONPATH=str(site))
    done = subprocess.run(
        [sys.executable, "-c", "import chordexp.run as r; print(r.CONF_DIR)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == site / "chordexp" / "conf"
    done = subprocess.run(
        [sys.executable, "-m", "chordexp.run", "--cfg", "job", "experiment=smoke"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "num_epochs: 3" in done.stdout and "sample_rate: 16000" in done.stdout
    assert not (tmp_path / "outputs").exists()


def test_the_installed_package_transcribes_with_its_ready_model(wheel, tmp_path):
    """``pip install chordexp`` gives a working default: predict without checkpoint=."""
    import numpy as np
    import soundfile

    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"chordexp/models/release.pt", "chordexp/models/release.json"} <= names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    t = np.arange(3 * 22050) / 22050
    song = sum(np.sin(2 * np.pi * f * t) for f in (196.0, 246.9, 293.7, 98.0)) * 0.1  # G major, G in the bass
    soundfile.write(tmp_path / "song.wav", song.astype(np.float32), 22050)
    done = subprocess.run(
        [sys.executable, "-m", "chordexp.predict", "input=song.wav", "output=labs", "progress=false"],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(site)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    labels = [line.split()[2] for line in (tmp_path / "labs" / "song.lab").read_text().splitlines() if line[0] != "#"]
    assert "G:maj" in labels, labels


def test_the_source_tree_reads_the_repository_conf():
    from chordexp.run import CONF_DIR

    assert Path(CONF_DIR) == CONF


def test_each_console_command_is_its_modules_cli():
    """``chordexp-<name>`` is ``python -m chordexp.<module>``: that module's ``cli``, named directly."""
    expected = {
        "chordexp-train": "chordexp.run",
        "chordexp-predict": "chordexp.predict",
        "chordexp-evaluate": "chordexp.evaluate",
        "chordexp-report": "chordexp.report",
        "chordexp-bench": "chordexp.bench.__main__",
        "chordexp-evalset": "chordexp.evalset",
        "chordexp-baseline": "chordexp.baseline",
        "chordexp-tune-decoder": "chordexp.tune_decoder",
        "chordexp-export": "chordexp.export",
        "chordexp-check-data": "chordexp.check_data",
    }
    assert console_scripts() == {command: f"{module}:cli" for command, module in expected.items()}


@pytest.mark.parametrize("command", sorted(set(console_scripts()) - {"chordexp-train"}))
def test_each_console_command_answers_help(command, monkeypatch, capsys):
    module, function = console_scripts()[command].split(":")
    entry = getattr(import_module(module), function)
    monkeypatch.setattr(sys, "argv", [command, "--help"])
    with pytest.raises(SystemExit) as stop:
        entry()
    assert stop.value.code == 0
    assert "python -m chordexp." in capsys.readouterr().out  # the module's usage text


def test_chordexp_train_is_python_m_chordexp_run():
    assert console_scripts()["chordexp-train"] == "chordexp.run:cli"
    done = subprocess.run(
        [sys.executable, "-c", "from chordexp.run import cli; cli()", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "== Configuration groups" in done.stdout and "experiment: smoke" in done.stdout


def test_the_installed_console_script_runs(tmp_path):
    """The script pip wrote into this environment (``make install`` re-installs it)."""
    script = Path(sys.executable).with_name("chordexp-report")
    assert script.is_file(), f"{script} is missing: reinstall the package (make install)"
    done = subprocess.run([str(script), str(tmp_path / "none")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert "none" in done.stderr


def test_bare_arguments_fill_the_positional_keys_in_order():
    assert with_positional_keys(["out/x", "sort=epochs_run"], ("runs",)) == ["runs=out/x", "sort=epochs_run"]
    assert with_positional_keys(["a", "b"], ("first", "second")) == ["first=a", "second=b"]
    assert with_positional_keys(["out/lr=0.1"], ("runs",)) == ["runs=out/lr=0.1"]  # a path with '=' in it
    assert with_positional_keys(["runs=x"], ("runs",)) == ["runs=x"]
    assert with_positional_keys(["x"], ()) == ["x"]  # no positional keys: left for parse_args to refuse
    args = parse_args(ReportArgs, ["outputs/multirun/2026-01-01/10-00-00", "descending=true"], positional=("runs",))
    assert (args.runs, args.descending) == ("outputs/multirun/2026-01-01/10-00-00", True)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["a", "b"], "argument 'b' is not of the form key=value"),
        (["a", "runs=b"], "runs given twice"),
    ],
)
def test_bare_arguments_that_do_not_fit_are_one_usage_error(argv, message):
    with pytest.raises(UsageError, match=message):
        parse_args(ReportArgs, argv, positional=("runs",))


def test_report_takes_the_runs_folder_as_a_bare_argument(tmp_path, monkeypatch, capsys):
    run = tmp_path / "sweep" / "0"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (run / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    (run / "run.log").write_text("")
    monkeypatch.setattr(sys, "argv", ["chordexp-report", str(tmp_path / "sweep")])
    report.cli()
    assert (tmp_path / "sweep" / "report.csv").read_text().splitlines()[1].startswith("0,")
    assert "wrote" in capsys.readouterr().out


def test_help_into_a_closed_pipe_stops_quietly():
    """``chordexp-predict --help | head -3``: the reader leaves before the usage is written;
    the command ends as SIGPIPE would (141) without a traceback."""
    import subprocess
    import sys

    child = subprocess.Popen(
        [sys.executable, "-m", "chordexp.predict", "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    child.stdout.close()  # before the interpreter has started: every write meets a closed pipe
    stderr = child.stderr.read().decode()
    assert child.wait(timeout=60) == 141
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
