"""Feedback pages: math typeset without network, hidden tests left out, private files kept out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from autograde_course import needs_bwrap, run_grader
from fixtures.autograde import catalogue

from cnncourse.feedback import (
    HIDDEN_NOTE,
    HideHiddenTests,
    has_math,
    offline_mathjax,
    strip_hidden,
)
from cnncourse.grading import generate
from cnncourse.paths import course_root

CDN_PAGE = """<html><head>
<!-- Load mathjax -->
    <script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX-AMS_CHTML-full,Safe"> </script>
<!-- End of mathjax configuration -->
</head><body>{body}</body></html>"""
TEST_CELL = """assert square(3) == 9, "square(3) should be 9"
### BEGIN HIDDEN TESTS
for v in range(-5, 6):
    assert square(v) == v * v, f"square({v})"
### END HIDDEN TESTS
print("done")"""


@pytest.mark.parametrize("body, math", [
    ("<p>The output is $H - k + 1$ wide.</p>", True),
    ("<p>$$\\sum_i x_i$$</p>", True),
    ("<p>\\(a^2\\)</p>", True),
    ("<p>It costs $5 and $10.</p><pre>echo $HOME</pre>", True),  # a false positive costs only page size
    ("<p>No formulas here.</p><script>var s = '$x$';</script>", False),
])
def test_math_is_detected_in_the_text_only(body, math):
    assert has_math(CDN_PAGE.format(body=body)) is math


def test_the_cdn_block_becomes_an_inline_mathjax_3_or_goes():
    with_math = offline_mathjax(CDN_PAGE.format(body="<p>$x^2$</p>"))
    assert "cdnjs" not in with_math and "<script src=" not in with_math
    assert "window.MathJax" in with_math and len(with_math) > 1_000_000
    assert with_math.count("</script>") == with_math.count("<script")  # nothing closed the script early
    without = offline_mathjax(CDN_PAGE.format(body="<p>plain</p>"))
    assert "cdnjs" not in without and "MathJax" not in without and len(without) < 500


def test_a_template_that_loads_mathjax_differently_is_an_error():
    with pytest.raises(ValueError, match="CDN"):
        offline_mathjax('<script src="https://cdn.example/mathjax.js"></script><p>$x$</p>')


def test_strip_hidden_keeps_the_visible_tests_and_notes_each_block():
    text, blocks = strip_hidden(TEST_CELL)
    assert blocks == 1
    assert text.splitlines() == ['assert square(3) == 9, "square(3) should be 9"', HIDDEN_NOTE, 'print("done")']
    assert strip_hidden("x = 1") == ("x = 1", 0)


def _notebook() -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(TEST_CELL)
    cell.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="square(-5)",
                                           traceback=["----", "      3 for v in range(-5, 6):",
                                                      "----> 4     assert square(v) == v * v", "AssertionError: square(-5)"])]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("$x$"), cell])


def test_hide_hidden_tests_removes_source_and_traceback_and_can_be_turned_off():
    nb, _ = HideHiddenTests().preprocess(_notebook(), {})
    cell = nb.cells[1]
    assert "range(-5, 6)" not in cell.source and HIDDEN_NOTE in cell.source
    assert cell.outputs[0]["traceback"] == ["AssertionError: square(-5)"]
    nb, _ = HideHiddenTests(enabled=False).preprocess(_notebook(), {})
    assert "range(-5, 6)" in nb.cells[1].source and len(nb.cells[1].outputs[0]["traceback"]) == 4


def _course(tmp_path: Path) -> Path:
    """ag_tiny with a formula in its instructions, the course's nbgrader_config.py, and one student."""
    root = tmp_path / "course"
    shutil.copytree(catalogue.COURSE / "source" / "ag_tiny", root / "source" / "ag_tiny")
    shutil.copy(course_root() / "nbgrader_config.py", root / "nbgrader_config.py")
    src = root / "source" / "ag_tiny" / "ag_tiny.ipynb"
    nb = json.loads(src.read_text())
    nb["cells"].insert(1, {"cell_type": "markdown", "id": "formula", "metadata": {},
                           "source": "The hypotenuse is $\\sqrt{a^2 + b^2}$."})
    src.write_text(json.dumps(nb))
    generate(root, ["ag_tiny"], root / "gradebook.db")
    student = json.loads((root / "release" / "ag_tiny" / "ag_tiny.ipynb").read_text())
    for cell in student["cells"]:
        if "def square" in "".join(cell["source"]):
            cell["source"] = "def square(x):\n    return float(x * x)\n"  # fails a hidden test only
    dest = root / "submitted" / "ann" / "ag_tiny"
    dest.mkdir(parents=True)
    (dest / "ag_tiny.ipynb").write_text(json.dumps(student))
    return root


def _check_page(page: Path) -> str:
    html = page.read_text()
    assert "range(-5, 6)" not in html and HIDDEN_NOTE in html, "hidden tests' source reached the feedback"
    assert "cdnjs" not in html and "window.MathJax" in html
    return html


@needs_bwrap
def test_every_path_writes_offline_feedback_without_hidden_tests_or_private_files(tmp_path):
    root = _course(tmp_path)
    _, code, out = run_grader(root, "ag_tiny", jobs=1)
    assert code == 0, out
    feedback = root / "feedback" / "ann" / "ag_tiny"
    _check_page(feedback / "ag_tiny.html")
    assert (root / "autograded" / "ann" / "ag_tiny" / ".cnnlab-autograde.json").exists()
    # plain nbgrader, as an instructor runs it before release_feedback
    shutil.rmtree(root / "feedback")
    nbgrader = Path(sys.executable).parent / "nbgrader"
    env = {**os.environ, "PATH": f"{nbgrader.parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(nbgrader), "generate_feedback", "ag_tiny", "--force"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    _check_page(feedback / "ag_tiny.html")
    assert sorted(p.name for p in feedback.iterdir()) == ["ag_tiny.html"], "only the page reaches feedback/"
    _typeset_offline(feedback / "ag_tiny.html")


def _typeset_offline(page: Path) -> None:
    """Open the page from disk in Chromium with every host unresolvable; MathJax must typeset it."""
    from browser import chrome, wait_for

    driver = chrome()
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0})
        driver.get(page.as_uri())
        wait_for(lambda: driver.execute_script("return document.querySelectorAll('mjx-container svg').length > 0"),
                 60, "MathJax to typeset the formula")
        text = driver.execute_script("return document.body.innerText")
        assert "$\\sqrt" not in text, "a formula stayed raw TeX"
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()
