"""Helpers shared by the autograder's end-to-end tests: an instructor course with submissions, and a run."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
from fixtures.autograde import catalogue

from cnncourse.grading import COURSE_ID, generate
from cnngrade.sandbox import GiB, Limits, bwrap_path

CELL_TIMEOUT = 6
LIMITS = Limits(memory_bytes=2 * GiB, cpu_seconds=300)

needs_bwrap = pytest.mark.skipif(
    bwrap_path() is None,
    reason="bubblewrap (bwrap) is not installed: the grading sandbox needs it (apt-get install bubblewrap; "
           ".ci/run installs it)",
)


def build_course(tmp: Path, aid: str, cases: list[catalogue.Case], http_port: int = 0,
                 sources: Path = catalogue.COURSE / "source") -> Path:
    """An instructor course: source/, release/ and gradebook.db made by nbgrader, a config, submissions."""
    root = tmp / "course"
    shutil.copytree(sources / aid, root / "source" / aid)
    generate(root, [aid], root / "gradebook.db")
    (root / "nbgrader_config.py").write_text(f"c = get_config()  # noqa: F821\nc.CourseDirectory.course_id = {COURSE_ID!r}\n")
    add_other_grades(root)
    release = json.loads((root / "release" / aid / f"{aid}.ipynb").read_text())
    source = json.loads((root / "source" / aid / f"{aid}.ipynb").read_text())
    for case in cases:
        ctx = catalogue.Ctx(release, source, root, root / "submitted" / case.student / aid, aid, http_port)
        case.build(ctx)
    return root


def add_other_grades(root: Path) -> None:
    """Another assignment with a hand-given grade: no run may touch it."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", course_id=COURSE_ID) as gb:
        gb.add_assignment("hw0")
        gb.add_notebook("hw0", "hw0")
        gb.add_grade_cell("q1", "hw0", "hw0", max_score=10, cell_type="markdown")
        gb.add_solution_cell("q1", "hw0", "hw0")
        gb.add_source_cell("q1", "hw0", "hw0", cell_type="markdown", locked=False, source="Why?", checksum="x")
        gb.add_student("zoe")
        gb.add_submission("hw0", "zoe")
        grade = gb.find_grade("q1", "hw0", "hw0", "zoe")
        grade.manual_score = 7.0
        gb.db.commit()


def other_grades(root: Path) -> list:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", course_id=COURSE_ID) as gb:
        grade = gb.find_grade("q1", "hw0", "hw0", "zoe")
        return [grade.manual_score, grade.auto_score, grade.needs_manual_grade]


def gradebook_scores(root: Path, aid: str) -> dict[str, dict[str, float | None]]:
    from nbgrader.api import Gradebook

    out: dict[str, dict[str, float | None]] = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", course_id=COURSE_ID) as gb:
        for sub in gb.find_assignment(aid).submissions:
            out[sub.student.id] = {g.name: g.auto_score for nb in sub.notebooks for g in nb.grades}
    return out


def protected_digest(root: Path) -> dict[str, str]:
    """Hashes of everything a submission must never change."""
    digests = {}
    for top in ("source", "release"):
        for path in sorted((root / top).rglob("*")):
            if path.is_file():
                digests[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    digests["nbgrader_config.py"] = hashlib.sha256((root / "nbgrader_config.py").read_bytes()).hexdigest()
    return digests


def run_grader(root: Path, aid: str, jobs: int, **kw):
    from cnngrade.run import Run

    out = io.StringIO()
    run = Run(aid, root, jobs=jobs, timeout=kw.pop("timeout", 300), cell_timeout=kw.pop("cell_timeout", CELL_TIMEOUT),
              limits=kw.pop("limits", LIMITS), out=out, **kw)
    code = run.execute()
    return run, code, out.getvalue()
