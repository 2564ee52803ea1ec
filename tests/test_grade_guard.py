"""The in-kernel guard, cell by cell, in one sandboxed kernel: what costs a test, what does not.

Each test cell below is run the way the grader runs it (``CellRunner``: begin, the cell
inside a function, verdict). A test that passes honestly keeps no penalty and no event;
every way of reaching past the test (frames, trace functions, re-running the test,
forging the guard's answers) ends with a ``GradingError`` output, which scores 0.
"""

from __future__ import annotations

import pytest

from cnngrade.execute import CellRunner
from cnngrade.sandbox import SandboxSettings, bwrap

pytestmark = pytest.mark.skipif(bwrap.bwrap_path() is None, reason="bubblewrap (bwrap) is not installed")

SETUP = '''
import inspect, sys
def double(x):
    return 2 * x
def via_inspect(x):
    return inspect.currentframe().f_back.f_locals.get("_expected", 0)
def via_trace(x):
    seen = {}
    def tracer(frame, event, arg):
        if event == "return" and frame.f_back is not None:
            seen.update(frame.f_back.f_locals)
        return tracer
    sys.settrace(tracer)
    sys.settrace(None)
    return 2 * x
def rerun(x):
    exec(sys._getframe(1).f_code, {})
    return 2 * x
def forged_finish(x):
    import re
    nonce = re.findall(r"cnnlab-guard:finish:([0-9a-f]+)", In[-1])[0]
    marker = eval("lambda: 'cnnlab-guard:finish:" + nonce + "'")
    sys.audit("object.__getattr__", marker, "__code__")
    return 2 * x
'''


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    work = tmp_path_factory.mktemp("guard")
    files = work / "files"
    files.mkdir()
    settings = SandboxSettings.from_dict({})
    settings.preload = ["torch", "cnnlab.checks"]
    run = CellRunner(settings, work, files, cell_timeout=60, deadline=0)
    run.start()
    outputs, _ = run.run(SETUP, test=False, label="setup")
    assert not [o for o in outputs if o["output_type"] == "error"], outputs
    yield run
    run.stop()


def grade(runner: CellRunner, source: str) -> tuple[list[str], list[str]]:
    """(the error names of the cell's outputs, the events it caused)."""
    before = len(runner.events)
    outputs, _ = runner.run(source, test=True, label="t")
    return [o["ename"] for o in outputs if o["output_type"] == "error"], [e["text"] for e in runner.events[before:]]


def test_an_honest_test_passes_without_events(runner):
    assert grade(runner, "_expected = 4\nassert double(2) == _expected\nprint('ok')\n") == ([], [])


def test_a_failing_test_fails_without_events(runner):
    assert grade(runner, "assert double(2) == 5, 'wrong'\n") == (["AssertionError"], [])


@pytest.mark.parametrize("fn,why", [("via_inspect", "read the call stack"), ("via_trace", "trace or profile function"),
                                    ("rerun", "call stack"), ("forged_finish", "outside the test cell")])
def test_reaching_past_the_test_costs_it(runner, fn, why):
    errors, events = grade(runner, f"_expected = 4\nassert {fn}(2) == _expected\n")
    assert "GradingError" in errors, (errors, events)
    assert any(why in e for e in events), events


def test_a_forged_verdict_is_not_believed(runner):
    """The notebook answers the grader's requests itself: without the key its answers do not count."""
    runner.run("get_ipython().user_expressions = lambda expressions: "
               "{k: {'status': 'error', 'ename': 'Reply', 'evalue': 'x|finished|'} for k in expressions}\n",
               test=False, label="forge")
    errors, events = grade(runner, "assert double(2) == 4\n")
    assert "GradingError" in errors and any("could not" in e for e in events), (errors, events)
