"""chordexp.evaluate: mir_eval's numbers per file, pooled durations, clear errors, the CLI."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import mir_eval
import pytest

from chordexp.cli import main_guard
from chordexp.labfile import LabFileError, load_lab
from chordexp.scoring import (
    CHORD_METRICS,
    METRICS,
    evaluate_dirs,
    evaluate_pair,
)

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def mir_eval_scores(ref: Path, est: Path) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mir_eval.chord.evaluate(
            *mir_eval.io.load_labeled_intervals(str(ref)), *mir_eval.io.load_labeled_intervals(str(est))
        )


def cli(*args: str) -> subprocess.CompletedProcess:
    """The real command line, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "chordexp.evaluate", *args], capture_output=True, text=True, cwd=REPO, timeout=60
    )


def cli_in_process(capsys, monkeypatch, *args: str) -> subprocess.CompletedProcess:
    """The same entry point (main_guard and all) without a new interpreter: faster."""
    from chordexp import evaluate

    monkeypatch.setattr(sys, "argv", ["chordexp.evaluate", *args])
    code = 0
    try:
        main_guard(evaluate._entry, evaluate.USAGE)
    except SystemExit as stop:
        code = stop.code or 0
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def test_identical_files_score_one_on_every_metric(tmp_path):
    ref = write(tmp_path / "a.lab", "0.0 1.5 N\n1.5 3.0 C:maj\n3.0 5.0 A:min7/b7\n5.0 6.0 G:7\n6.0 8.0 F:maj7/3\n")
    scores = evaluate_pair(ref, ref)
    assert set(scores) == set(METRICS)
    assert all(scores[m] == pytest.approx(1.0) for m in METRICS), scores


def test_half_wrong_estimate_scores_the_expected_fraction_and_agrees_with_mir_eval(tmp_path):
    ref = write(tmp_path / "ref.lab", "0 2 C:maj\n2 4 A:min\n")
    est = write(tmp_path / "est.lab", "0 2 C:maj\n2 4 F:maj\n")
    scores = evaluate_pair(ref, est)
    for metric in ("root", "majmin", "mirex", "triads", "sevenths", "exact"):
        assert scores[metric] == pytest.approx(0.5)
    expected = mir_eval_scores(ref, est)
    assert {k: scores[k] for k in expected} == pytest.approx(expected)


def test_scores_equal_mir_eval_with_gaps_overhangs_and_inversions(tmp_path):
    ref = write(
        tmp_path / "ref.lab",
        "# reference\n0.5 2.0 C:maj\n2.0 3.1 C:maj/3\n3.1 4.0 N\n4.0 6.5 D:min7\n"
        "6.5 7.25 G:9\n7.25 9.0 X\n9.0 10.0 Eb:hdim7/b3\n",
    )
    est = write(
        tmp_path / "est.lab",
        "0.0 1.0 C:maj\n1.2 2.6 C:maj7\n2.6 4.4 E:min\n4.4 6.0 D:min7\n6.0 8.0 G:7\n8.0 12.0 Eb:dim\n",
    )
    scores = evaluate_pair(ref, est)
    for metric, value in mir_eval_scores(ref, est).items():
        assert scores[metric] == pytest.approx(value, abs=1e-12), metric


def test_exact_tells_extensions_apart_where_mir_eval_cannot(tmp_path):
    ref = write(tmp_path / "ref.lab", "0 4 C:9\n4 8 X\n")
    est = write(tmp_path / "est.lab", "0 4 C:7\n4 8 C:7\n")
    scores = evaluate_pair(ref, est)
    assert scores["tetrads"] == pytest.approx(1.0)  # mir_eval reduces C:9 to C:7
    assert scores["exact"] == pytest.approx(0.0)  # X is not judged: only the C:9 counts


def test_metric_with_nothing_to_judge_is_none_not_zero(tmp_path):
    ref = write(tmp_path / "ref.lab", "0 4 C:dim\n")  # majmin judges only maj/min/N chords
    est = write(tmp_path / "est.lab", "0 4 C:dim\n")
    scores = evaluate_pair(ref, est)
    assert scores["majmin"] is None and scores["root"] == pytest.approx(1.0)


def test_aggregate_pools_durations_across_files(tmp_path):
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    write(refs / "short.lab", "0 10 C:maj\n")
    write(preds / "short.lab", "0 10 C:maj\n")  # 10 s, all correct
    write(refs / "long.lab", "0 15 D:min\n15 30 G:7\n")
    write(preds / "long.lab", "0 15 D:min\n15 30 A:7\n")  # 30 s, half correct
    result = evaluate_dirs(preds, refs)
    assert result["files"]["short"]["root"] == pytest.approx(1.0)
    assert result["files"]["long"]["root"] == pytest.approx(0.5)
    assert result["aggregate"]["root"] == pytest.approx((10 + 15) / 40)  # not the mean, 0.75
    assert result["durations"]["aggregate"]["root"] == pytest.approx(40)
    assert result["aggregate"]["seg"] == pytest.approx(1.0)
    assert "pooled" in result["pooling"]


def test_pairs_by_relative_path_then_by_unique_name_and_lists_the_unmatched(tmp_path):
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    for name in ("album/a", "album/b", "c"):
        write(refs / f"{name}.lab", "0 1 C:maj\n")
    for name in ("album/a", "b", "d"):
        write(preds / f"{name}.lab", "0 1 C:maj\n")
    result = evaluate_dirs(preds, refs)
    assert sorted(result["files"]) == ["album/a", "album/b"]
    assert result["missing_predictions"] == ["c"]
    assert result["missing_references"] == ["d"]


@pytest.mark.parametrize(
    "content, line, words",
    [
        ("0 1 C:maj\n1 2\n", 2, "Expected 3 columns"),
        ("0 1 C:maj\nzero 2 D:min\n", 2, "Couldn't convert"),
        ("# header\n0 1 C:maj\n\n1 2 H:min\n", 4, "'H:min'"),
        ("0 1 C:maj\n2 1.5 D:min\n", 2, "not after start"),
        ("0 1 C:maj\n-1 0.5 D:min\n", 2, "negative"),
        (b"0 1 C:maj\n1 2 \xff\xfe\n", 2, "not UTF-8"),
    ],
)
def test_unreadable_lab_names_file_and_line(tmp_path, content, line, words):
    path = tmp_path / "bad.lab"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(LabFileError) as error:
        load_lab(path)
    message = str(error.value)
    assert message.startswith(f"{path}:{line}: ") and words in message and "\n" not in message


def test_empty_or_missing_lab_is_an_error(tmp_path):
    with pytest.raises(LabFileError, match="no chord intervals"):
        load_lab(write(tmp_path / "empty.lab", "# nothing\n"))
    with pytest.raises(LabFileError, match="no such file"):
        load_lab(tmp_path / "absent.lab")


def test_cli_prints_table_and_writes_json(tmp_path, capsys, monkeypatch):
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    write(refs / "a.lab", "0 2 C:maj\n2 4 A:min\n")
    write(preds / "a.lab", "0 2 C:maj\n2 4 F:maj\n")
    done = cli(f"predictions={preds}", f"references={refs}")
    assert done.returncode == 0, done.stderr
    assert "pooled" in done.stdout.splitlines()[0] and "AGGREGATE" in done.stdout
    report = json.loads((preds / "evaluation.json").read_text())
    assert report["aggregate"]["root"] == pytest.approx(0.5)
    assert set(CHORD_METRICS) <= set(report["files"]["a"])
    custom = tmp_path / "out" / "scores.json"
    done = cli_in_process(capsys, monkeypatch, f"predictions={preds}", f"references={refs}", f"output={custom}")
    assert done.returncode == 0
    assert json.loads(custom.read_text())["files"]["a"]["exact"] == pytest.approx(0.5)


def test_cli_missing_prediction_fails_unless_allowed(tmp_path, capsys, monkeypatch):
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    write(refs / "a.lab", "0 2 C:maj\n")
    write(refs / "b.lab", "0 2 C:maj\n")
    write(preds / "a.lab", "0 2 C:maj\n")
    write(preds / "stray.lab", "0 2 C:maj\n")
    done = cli(f"predictions={preds}", f"references={refs}")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2
    assert any(line.startswith("error: 1 reference(s) have no prediction") and line.endswith(": b") for line in lines)
    assert any("no reference" in line and "stray" in line for line in lines)
    allowed = cli_in_process(capsys, monkeypatch, f"predictions={preds}", f"references={refs}", "allow_missing=true")
    assert allowed.returncode == 0 and "warning: 1 reference(s) have no prediction: b" in allowed.stderr


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys, monkeypatch):
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    write(refs / "a.lab", "0 2 C:maj\n")
    bad = write(preds / "a.lab", "0 2 C:maj\n2 3 C:major\n")
    done = cli(f"predictions={preds}", f"references={refs}")
    assert done.returncode == 2 and done.stderr.strip() == (
        f"error: {bad}:2: 'C:major' is not a chord label mir_eval can parse"
    )
    assert not (preds / "evaluation.json").exists()
    for args, words in (
        ((f"predictions={tmp_path / 'nope'}", f"references={refs}"), "predictions="),
        ((f"predictions={preds}",), "references=..."),
        ((f"predictions={preds}", f"references={refs}", "colour=blue"), "colour"),
    ):
        done = cli_in_process(capsys, monkeypatch, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr, done.stderr
