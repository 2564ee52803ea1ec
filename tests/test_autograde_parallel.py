"""Instructor autograding: parallel == serial, an interrupted run resumes, the command line, unit checks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from autograde_course import build_course, gradebook_scores, needs_bwrap, run_grader
from fixtures.autograde import catalogue

from cnngrade.cli import main
from cnngrade.execute import wrap_test
from cnngrade.preflight import preflight, read_json
from cnngrade.sandbox import bwrap_path

MIXED = ["honest", "partial", "crash_exit", "corrupted_json", "dup_solution_last_wins", "custom_exc"]


def _cases(names: list[str]) -> list[catalogue.Case]:
    by_name = {c.student: c for c in catalogue.TINY}
    return [by_name[n] for n in names]


@needs_bwrap
def test_parallel_equals_serial(tmp_path):
    """JOBS=1 and JOBS=2 give the same scores, reasons and gradebook rows."""
    cases = _cases(MIXED)
    serial_root = build_course(tmp_path / "serial", "ag_tiny", cases)
    parallel_root = build_course(tmp_path / "parallel", "ag_tiny", cases)
    serial, code1, _ = run_grader(serial_root, "ag_tiny", jobs=1)
    parallel, code2, _ = run_grader(parallel_root, "ag_tiny", jobs=2)
    assert code1 == code2 == 0

    def view(run):
        return {s: (o.score, o.max_score, [r for r in o.reasons]) for s, o in run.outcomes.items()}

    assert view(serial) == view(parallel)
    assert gradebook_scores(serial_root, "ag_tiny") == gradebook_scores(parallel_root, "ag_tiny")
    for case in cases:
        assert serial.outcomes[case.student].score == case.score, case.student


def _cli(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "cnngrade", *args, "--root", str(root)]


@needs_bwrap
def test_interrupted_run_resumes(tmp_path):
    """Ctrl-C half-way, then the same command again: the rest is graded, nothing twice, nothing lost."""
    cases = [catalogue.Case(f"s{i}", catalogue.b_honest, 8) for i in range(3)]
    root = build_course(tmp_path, "ag_tiny", cases)
    proc = subprocess.Popen(_cli(root, "ag_tiny", "--jobs", "1"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    lines = []
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("[1/3]"):
            break
        assert time.monotonic() < deadline, "".join(lines)
    os.killpg(proc.pid, signal.SIGINT)
    rest = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, "".join(lines) + rest
    assert "re-run" in rest
    graded_first = [c.student for c in cases if (root / "autograded" / c.student / "ag_tiny" /
                                                 ".cnnlab-autograde.json").exists()]
    assert len(graded_first) >= 1
    again = subprocess.run(_cli(root, "ag_tiny", "--jobs", "2"), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"graded {3 - len(graded_first)}, unchanged {len(graded_first)}" in again.stdout, again.stdout
    scores = gradebook_scores(root, "ag_tiny")
    assert {s: sum(v.values()) for s, v in scores.items()} == {c.student: 8 for c in cases}
    assert not list(Path("/tmp").glob(f"cnnlab-k-*/{root.name}")), "sandbox directories left behind"


def test_instructor_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "source" / "hw1").mkdir(parents=True)
    assert main(["nope", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown assignment 'nope'" in err[0] and "hw1" in err[0]
    assert main(["hw1", "--root", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["hw1", "--root", str(tmp_path)]) == 2
    assert "holds no notebook" in capsys.readouterr().err
    assert main([]) == 2


def test_nothing_submitted_is_not_an_error(tmp_path, capsys):
    shutil.copytree(catalogue.COURSE / "source" / "ag_tiny", tmp_path / "source" / "ag_tiny")
    if bwrap_path() is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    assert main(["ag_tiny", "--root", str(tmp_path)]) == 0
    assert "nothing to grade" in capsys.readouterr().out


def test_wrap_test_runs_the_test_in_a_function_and_keeps_a_final_expression():
    finish = "(lambda: 'cnnlab-guard:finish:N').__code__"
    namespace: dict = {}
    exec(wrap_test("x = 1\nx / 2\n", "N"), namespace)
    assert namespace["x"] == 1, "the test's names are kept in the notebook's namespace afterwards"
    wrapped = wrap_test("x = 1\nx / 2\n", "N").splitlines()
    assert wrapped[0] == "def __cnnlab_test():" and wrapped[-1] == "__cnnlab_test()"
    assert wrapped.index("        " + finish) < wrapped.index("        return (x / 2)"), "finish before the result"
    assert finish in wrap_test("for i in range(2):\n    i\n", "N")
    # cells that cannot become a function run as they are, the marker appended
    for cell in ("%time x = 1\n", "y = y + 1\n", "global z\nz = 1\n", "from math import *\n"):
        assert wrap_test(cell, "N").splitlines()[-1] == finish, cell


def test_preflight_reasons(tmp_path):
    release = json.loads((catalogue.COURSE / "source" / "ag_tiny" / "ag_tiny.ipynb").read_text())
    assert read_json(None, "a.ipynb")[1] == "no notebook a.ipynb in the submission"
    deep = tmp_path / "deep.ipynb"
    deep.write_text("[" * 100000 + "]" * 100000)
    assert "nested too deeply" in preflight(deep, release, "deep.ipynb").fatal
    weird = tmp_path / "weird.ipynb"
    weird.write_text(json.dumps({"cells": [1, {"cell_type": "code", "source": 5}, {"cell_type": "evil"}],
                                 "metadata": {}}))
    result = preflight(weird, release, "weird.ipynb")
    assert not result.fatal and "3 malformed cell(s) dropped" in result.findings[0]
    assert "deleted test cell(s) square_tests, mean_tests, hypot_tests" in "; ".join(result.findings)
    latin = tmp_path / "latin.ipynb"
    latin.write_bytes("{\"cells\": [\"é\"]}".encode("latin-1"))
    assert "not UTF-8" in preflight(latin, release, "latin.ipynb").fatal
