"""Instructor autograding: the catalogue of hostile and broken submissions, on a tiny assignment.

One class of ~40 students (tests/fixtures/autograde/catalogue.py) is graded once, with
two workers, through ``cnngrade``; every student must get the outcome the
catalogue states (score and reason), honest students full marks, every cheat zero, and
source/, release/, nbgrader_config.py and the other grades of the gradebook must be
untouched. The torch catalogue (patched comparisons and check helpers) runs separately.
"""

from __future__ import annotations

import html.parser
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

from cnncourse.feedback import offline_mathjax
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


def test_outputs_of_every_kind_count_against_the_caps(tiny):
    root = tiny["root"]
    autograded = root / "autograded" / "output_flood" / "ag_tiny" / "ag_tiny.ipynb"
    feedback = root / "feedback" / "output_flood" / "ag_tiny" / "ag_tiny.html"
    assert autograded.stat().st_size < 3 * 2**20, f"autograded notebook of {autograded.stat().st_size} bytes"
    assert feedback.stat().st_size < 3 * 2**20, f"feedback page of {feedback.stat().st_size} bytes"
    text = autograded.read_text()
    assert text.count("[output truncated by the grader: ") == 3, "each flooded cell must say it was truncated"
    assert "output messages in this cell" in text


def test_no_submission_can_forge_a_line_of_the_table_or_the_report(tiny):
    report = (tiny["root"] / "autograded" / "autograde-ag_tiny.txt").read_text()
    for text, pattern in ((tiny["output"], r"^honest\s"), (report, r"^honest\t")):
        assert "\x1b" not in text and "\r" not in text, "a control character reached the terminal or the report"
        assert len(re.findall(pattern, text, re.M)) == 1, "a submission forged the line of student 'honest'"
    forged = [line for line in tiny["output"].splitlines() if line.startswith("forged_line ")]
    assert len(forged) == 1 and "bonus\\nhonest" in forged[0] and "\\x1b[2K" in forged[0], forged


class _ActiveContent(html.parser.HTMLParser):
    """What in a page could run code or navigate away: scripts, event handlers, frames, script URLs."""

    FRAMES = {"iframe", "frame", "frameset", "object", "embed", "applet", "base"}

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._in_script = True
            self.scripts.append(dict(attrs).get("src") or "")
        if tag in self.FRAMES:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            value = re.sub(r"[\x00-\x20]", "", value or "").lower()
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}>")
            if name in ("href", "src", "action", "formaction", "data") and value.startswith(("javascript:", "vbscript:",
                                                                                              "data:text")):
                self.found.append(f"<{tag} {name}={value[:30]}>")
        if tag == "meta" and "refresh" in (dict(attrs).get("http-equiv") or "").lower():
            self.found.append("<meta http-equiv=refresh>")

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False


def active_content(page: str) -> _ActiveContent:
    parser = _ActiveContent()
    parser.feed(page)
    parser.close()
    return parser


def test_feedback_pages_run_no_code_from_the_submission(tiny):
    root = tiny["root"]
    template = active_content((root / "feedback" / "blank" / "ag_tiny" / "ag_tiny.html").read_text())
    assert not template.found, "the template itself changed: adapt this test"
    # the only scripts a page may carry: the template's own, and the course's inline MathJax on pages with math
    mathjax = active_content(offline_mathjax("<!-- Load mathjax --><!-- End of mathjax configuration --><body>$x$</body>"))
    allowed = set(template.scripts) | set(mathjax.scripts)
    for case in catalogue.TINY:
        page = active_content((root / "feedback" / case.student / "ag_tiny" / "ag_tiny.html").read_text())
        assert not page.found, f"{case.student}: {page.found}"
        assert set(page.scripts) <= allowed, f"{case.student}: a script not from the template"
    page = (root / "feedback" / "html_injection" / "ag_tiny" / "ag_tiny.html").read_text()
    assert "Here is my answer." in page and "shown as text by the grader" in page, "the student's text is shown"
    assert "&lt;script&gt;document.title" in page


def formgrade_page(path) -> str:
    """The page nbgrader's formgrader shows for an autograded notebook (its exporter, template and resources)."""
    from nbconvert import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers

    resources = {"assignment_id": "ag_tiny", "notebook_id": "ag_tiny", "submission_id": "s", "index": 0, "total": 1,
                 "base_url": "/", "student": "s", "last_name": "L", "first_name": "F", "notebook_path": "/s"}
    exporter = HTMLExporter(template_name="formgrade", extra_template_basedirs=[handlers.template_path])
    return exporter.from_filename(str(path), resources=resources)[0]


def test_the_formgrader_reads_the_sanitised_notebook(tiny):
    """The formgrader renders the installed ``autograded/<student>/<id>/`` copy: it holds no active HTML."""
    root = tiny["root"]
    path = root / "autograded" / "html_injection" / "ag_tiny" / "ag_tiny.ipynb"
    page = active_content(formgrade_page(path))
    template = active_content(formgrade_page(root / "autograded" / "blank" / "ag_tiny" / "ag_tiny.ipynb"))
    assert sorted(page.found) == sorted(template.found), "active content not from the formgrader's template"
    assert set(page.scripts) <= set(template.scripts)
    outputs = [o for c in json.loads(path.read_text())["cells"] for o in c.get("outputs", [])]
    mimes = {m for o in outputs for m in o.get("data", {})}
    assert mimes <= {"text/plain", "text/html", "image/png"}, mimes
    assert all(set(o.get("metadata", {})) <= {"image/png"} for o in outputs)


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
