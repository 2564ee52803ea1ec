"""Student code cannot buy points: in-process cheats on the 01_convolution exercises score zero.

One class (tests/fixtures/autograde/cheats.py) is graded once through ``cnngrade``: the
honest and blank controls get 16 and 0 without any reason, and every cheat gets 0 with a
reason naming what was caught.
"""

from __future__ import annotations

import re

import pytest
from autograde_course import build_course, needs_bwrap, protected_digest, run_grader
from fixtures.autograde import cheats

from cnngrade.sandbox import GiB, Limits

pytestmark = needs_bwrap


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = build_course(tmp_path_factory.mktemp("cheats"), cheats.AID, cheats.CHEATS, sources=cheats.SOURCE)
    before = protected_digest(root)
    run, code, output = run_grader(root, cheats.AID, jobs=2, cell_timeout=120,
                                   limits=Limits(memory_bytes=6 * GiB, cpu_seconds=600))
    return {"root": root, "run": run, "code": code, "output": output, "before": before}


@pytest.mark.parametrize("case", cheats.CHEATS, ids=[c.student for c in cheats.CHEATS])
def test_cheat_outcome(graded, case):
    outcome = graded["run"].outcomes[case.student]
    shown = f"{case.student} ({case.what}): {outcome.score} / {outcome.max_score}; reasons: {outcome.reasons}"
    assert outcome.status == "graded", shown
    assert outcome.max_score == cheats.MAX_SCORE, shown
    assert outcome.score == case.score, shown
    if case.clean:
        assert not outcome.reasons, shown
    if case.reason:
        assert re.search(case.reason, "; ".join(outcome.reasons)), f"reason /{case.reason}/ not found: {shown}"


def test_run_finishes_and_course_untouched(graded):
    assert graded["code"] == 0, graded["output"]
    assert protected_digest(graded["root"]) == graded["before"]
