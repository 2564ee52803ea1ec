"""Instructor autograding: the catalogue of hostile and broken submissions, on a tiny assignment.

One class of ~40 students (tests/fixtures/autograde/catalogue.py) is graded once, with
two workers, through ``cnngrade``; every student must get the outcome the
catalogue states (score and reason), honest students full marks, every cheat zero, and
source/, release/, nbgrader_config.py and the other grades of the gradebook must be
untouched. The torch catalogue (patched comparisons and check helpers) runs separately.
"""

from __future__ import annotations

import http.server
import json
import re
import threading

import pytest
from autograde_course import (
    build_course,
    gradebook_scores,
    needs_bwrap,
    other_grades,
    protected_digest,
    run_grader,
)
from fixtures.autograde import catalogue

from cnngrade.sandbox import GiB, Limits

pytestmark = needs_bwrap


class _Solution(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):  # noqa: N802 - http.server's API
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def solution_server():
    """A server on the grader's loopback that hands out the solution: the sandbox must not reach it."""
    source = json.loads((catalogue.COURSE / "source" / "ag_tiny" / "ag_tiny.ipynb").read_text())
    _Solution.body = "\n".join("".join(c["source"]) for c in source["cells"]
                               if c.get("metadata", {}).get("nbgrader", {}).get("solution")).encode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Solution)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, solution_server):
    tmp = tmp_path_factory.mktemp("tiny")
    root = build_course(tmp, "ag_tiny", catalogue.TINY, solution_server)
    before = protected_digest(root)
    others = other_grades(root)
    run, code, output = run_grader(root, "ag_tiny", jobs=2)
    return {"root": root, "run": run, "code": code, "output": output, "before": before, "others": others}


# ------------------------------------------------------------------------------ tests

@pytest.mark.parametrize("case", catalogue.TINY, ids=[c.student for c in catalogue.TINY])
def test_catalogue_outcome(tiny, case):
    outcome = tiny["run"].outcomes[case.student]
    shown = f"{case.student} ({case.what}): {outcome.score} / {outcome.max_score}; reasons: {outcome.reasons}"
    assert outcome.status == "graded", shown
    assert outcome.max_score == 8, shown
    assert outcome.score == case.score, shown
    joined = "; ".join(outcome.reasons)
    if case.clean:
        assert not outcome.reasons, shown
    if case.reason:
        assert re.search(case.reason, joined), f"reason /{case.reason}/ not found: {shown}"


def test_run_finishes_with_a_table(tiny):
    assert tiny["code"] == 0
    out = tiny["output"]
    assert "student" in out and "score" in out and "reason" in out
    for case in catalogue.TINY:
        assert re.search(rf"^{re.escape(case.student)}\s+\d+ / 8", out, re.M), f"{case.student} missing from the table"
    assert f"graded {len(catalogue.TINY)}, unchanged 0" in out


def test_course_files_and_other_grades_untouched(tiny):
    root = tiny["root"]
    assert protected_digest(root) == tiny["before"], "source/, release/ or nbgrader_config.py changed"
    assert other_grades(root) == tiny["others"], "another assignment's grade changed"
    backups = list(root.glob("gradebook.db.bak-*"))
    assert len(backups) == 1, "the gradebook is backed up exactly once per run"


def test_gradebook_agrees_with_the_table(tiny):
    scores = gradebook_scores(tiny["root"], "ag_tiny")
    assert set(scores) == {c.student for c in catalogue.TINY}
    for student, outcome in tiny["run"].outcomes.items():
        assert sum(v or 0 for v in scores[student].values()) == outcome.score, student
        assert all(v is not None for v in scores[student].values()), f"{student}: a grade was left empty"


def test_autograded_and_feedback_written(tiny):
    root = tiny["root"]
    for case in catalogue.TINY:
        fb = root / "feedback" / case.student / "ag_tiny" / "ag_tiny.html"
        assert fb.is_file(), f"no feedback for {case.student}"
        assert (root / "autograded" / case.student / "ag_tiny" / ".cnnlab-autograde.json").is_file()
    honest = json.loads((root / "autograded" / "honest" / "ag_tiny" / "ag_tiny.ipynb").read_text())
    tests = [c for c in honest["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade")
             and not c["metadata"]["nbgrader"].get("solution")]
    assert tests and all("BEGIN HIDDEN TESTS" in "".join(c["source"]) for c in tests), "hidden tests not restored"
    assert "_cnnlab_guard" not in json.dumps(honest), "the guard's lines leaked into the autograded notebook"
    assert "could not be executed" in (root / "feedback" / "empty" / "ag_tiny" / "ag_tiny.html").read_text()
    assert (root / "autograded" / "autograde-ag_tiny.txt").is_file()


def test_rerun_skips_graded_and_regrades_changed(tiny):
    root = tiny["root"]
    before = gradebook_scores(root, "ag_tiny")
    nb_path = root / "submitted" / "partial" / "ag_tiny" / "ag_tiny.ipynb"
    nb = json.loads(nb_path.read_text())
    catalogue.set_source(nb, "hypot", "import math\ndef hypot(a, b):\n    return math.sqrt(a * a + b * b)\n")
    nb_path.write_text(json.dumps(nb))
    run, code, out = run_grader(root, "ag_tiny", jobs=2)
    assert code == 0
    assert f"graded 1, unchanged {len(catalogue.TINY) - 1}" in out, out
    assert run.outcomes["partial"].score == 5
    after = gradebook_scores(root, "ag_tiny")
    assert {k: v for k, v in after.items() if k != "partial"} == {k: v for k, v in before.items() if k != "partial"}
    assert sum(after["partial"].values()) == 5


# ------------------------------------------------------------------------------ torch

@pytest.fixture(scope="module")
def torch_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("torch")
    root = build_course(tmp, "ag_torch", catalogue.TORCH)
    before = protected_digest(root)
    run, code, output = run_grader(root, "ag_torch", jobs=2, cell_timeout=120,
                                   limits=Limits(memory_bytes=6 * GiB, cpu_seconds=600))
    return {"root": root, "run": run, "code": code, "output": output, "before": before}


@pytest.mark.parametrize("case", catalogue.TORCH, ids=[c.student for c in catalogue.TORCH])
def test_torch_catalogue_outcome(torch_run, case):
    outcome = torch_run["run"].outcomes[case.student]
    shown = f"{case.student} ({case.what}): {outcome.score} / {outcome.max_score}; reasons: {outcome.reasons}"
    assert outcome.max_score == 6, shown
    assert outcome.score == case.score, shown
    if case.clean:
        assert not outcome.reasons, shown
    if case.reason:
        assert re.search(case.reason, "; ".join(outcome.reasons)), shown
    assert protected_digest(torch_run["root"]) == torch_run["before"]
