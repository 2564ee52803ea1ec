"""The host side's defences against a submission, without a kernel: output caps, parsing, report text, HTML.

The end-to-end cases (a real sandboxed run, the feedback page, the formgrader's copy)
are in the hostile catalogue (``tests/fixtures/autograde/catalogue.py``); these tests pin
each piece on its own, quickly.
"""

from __future__ import annotations

import json

import nbformat
import pytest

from cnngrade import report
from cnngrade.preflight import read
from cnngrade.records import Outcome
from cnngrade.sandbox.limits import Limits
from cnngrade.sandbox.outputs import MESSAGE_OVERHEAD, CellOutputs, OutputBudget
from cnngrade.sanitize import render_markdown, sanitise_notebook, unsafe

LIMITS = Limits(cell_output_bytes=10_000, total_output_bytes=25_000, cell_output_messages=20,
                total_output_messages=50)


def cell(keep: str = "", budget: OutputBudget | None = None) -> CellOutputs:
    return CellOutputs(LIMITS, budget or OutputBudget(), keep)


# ------------------------------------------------------------------------------ output caps

@pytest.mark.parametrize("mtype, content", [
    ("error", {"ename": "ValueError", "evalue": "e" * 50_000, "traceback": ["t" * 1000] * 100}),
    ("display_data", {"data": {"text/plain": "x"}, "metadata": {"huge": "m" * 50_000}}),
    ("display_data", {"data": {"text/plain": "x", "application/x-a": "a" * 30_000, "text/x-b": "b" * 30_000}}),
    ("execute_result", {"data": {"text/plain": "x", "application/json": {"k": ["v" * 100] * 500}},
                        "execution_count": 1}),
])
def test_every_kind_of_output_counts_against_the_cell_budget(mtype, content):
    out = cell()
    out.add(mtype, content)
    kept = len(json.dumps(out.outputs))
    assert kept < 3_000, f"{mtype}: {kept} bytes kept of an output far over the cell's 10,000"
    assert out.cut == {"bytes"} and "more than 10000 bytes" in out.note()


def test_an_error_past_the_budget_still_fails_the_cell_but_shortened():
    out = cell()
    out.add("stream", {"name": "stdout", "text": "s" * 20_000})
    out.add("error", {"ename": "AssertionError", "evalue": "v" * 50_000, "traceback": ["t" * 5000] * 50})
    errors = [o for o in out.outputs if o["output_type"] == "error"]
    assert len(errors) == 1 and errors[0]["ename"] == "AssertionError" and len(json.dumps(errors[0])) < 3000


def test_the_number_of_messages_is_capped_and_the_nonce_survives():
    out = cell(keep="NONCE")
    for _ in range(1000):
        out.add("display_data", {"data": {}, "metadata": {}})
    out.add("stream", {"name": "stdout", "text": "NONCE\n"})
    assert len(out.outputs) == 20 + 1 and out.outputs[-1]["text"] == "NONCE\n"
    assert out.cut == {"messages"} and "more than 20 output messages" in out.note()


def test_tiny_messages_cost_bytes_too():
    out = cell()
    for _ in range(15):
        out.add("display_data", {"data": {}, "metadata": {}})
    assert out.bytes == 15 * (2 + 2 + MESSAGE_OVERHEAD)


def test_the_notebook_budget_is_shared_between_cells():
    budget = OutputBudget()
    for _ in range(3):
        out = cell(budget=budget)
        out.add("stream", {"name": "stdout", "text": "x" * 9_000})
    assert budget.bytes <= LIMITS.total_output_bytes and out.cut == {"bytes"}
    assert sum(len(o["text"]) for o in out.outputs) < 9_000


def test_a_stream_is_cut_to_the_room_left():
    out = cell(keep="NONCE")
    out.add("stream", {"name": "stdout", "text": "a" * 30_000 + "NONCE\n"})
    text = out.outputs[0]["text"]
    assert text.endswith("NONCE\n") and len(text) <= LIMITS.cell_output_bytes
    assert out.bytes <= LIMITS.cell_output_bytes


# ------------------------------------------------------------------------------ parsing

def test_a_number_python_will_not_convert_is_a_reason_not_a_crash(tmp_path):
    path = tmp_path / "hw.ipynb"
    path.write_text('{"cells": [], "n": ' + "9" * 5000 + "}")
    parsed, why = read.read_json(path, "hw.ipynb")
    assert parsed is None and why.startswith("corrupted notebook: Exceeds the limit (4300 digits)")


def test_a_file_that_needs_too_much_memory_to_parse_is_a_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(read, "PARSE_MEMORY_BYTES", 160 * 2**20)
    path = tmp_path / "hw.ipynb"
    path.write_text('{"cells": [' + "[[]]," * (2 * 2**20) + "[]]}")  # 10 MiB of text, ~250 MiB parsed
    parsed, why = read.read_json(path, "hw.ipynb")
    assert parsed is None and why == "notebook too large to read: parsing it needs more than 160 MiB"


def test_a_lone_surrogate_is_a_reason_but_a_pair_is_text(tmp_path):
    path = tmp_path / "hw.ipynb"
    path.write_text('{"cells": [{"cell_type": "markdown", "metadata": {}, "source": "a\\ud800b"}]}')
    assert read.read_json(path, "hw.ipynb") == (None, "corrupted notebook: invalid Unicode (a lone surrogate "
                                                      "escape such as \\ud800)")
    path.write_text('{"cells": [{"cell_type": "markdown", "metadata": {}, "source": "\\ud83d\\ude00"}]}')
    assert read.read_json(path, "hw.ipynb")[0]["cells"][0]["source"] == "\U0001f600"


def test_an_ordinary_notebook_still_parses_once_checked(tmp_path):
    path = tmp_path / "hw.ipynb"
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "x"}], "metadata": {}, "nbformat": 4,
          "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    assert read.read_json(path, "hw.ipynb") == (nb, "")


# ------------------------------------------------------------------------------ report text

FORGE = "x\nmallory          8 / 8\x1b[2K\r\u202e"


def test_report_lines_escape_and_bound_submission_text(tmp_path):
    outcomes = {"eve": Outcome("eve", 0, 8, [f"unknown graded cell(s) {FORGE}", "y" * 5000]),
                "mallory": Outcome("mallory", 3, 8, [])}
    table = report.table(outcomes)
    assert table.count("\n") == 3 and "\x1b" not in table and "\r" not in table and "\u202e" not in table
    assert "x\\nmallory" in table and "\\x1b[2K\\r\\u202e" in table
    report.write_report(tmp_path / "r.txt", "hw1", outcomes)
    lines = (tmp_path / "r.txt").read_text().splitlines()
    assert [ln.split("\t")[0] for ln in lines if ln and not ln.startswith(("\t", "autograde"))] == ["eve", "mallory"]
    assert max(len(ln) for ln in lines) <= report.REASON_CHARS + 10


def test_visible_leaves_ordinary_text_alone():
    assert report.visible("edited test cell(s) square_tests, 'ä' ok") == "edited test cell(s) square_tests, 'ä' ok"
    assert report.visible("a" * 1000, 10) == "aaaaaaa..."


# ------------------------------------------------------------------------------ HTML

@pytest.mark.parametrize("markdown", [
    "# Title\n\nSome *text*, $a<b$, $$\\frac{1}{2}$$, [a link](https://example.org) and `x < 1`.",
    "![plot](data:image/png;base64,iVBORw0KGgo=) ![att](attachment:a.png)\n\n| a | b |\n|---|---|\n| 1 | 2 |",
    "x < y & z > w, AT&T\n\n<details><summary>more</summary><b>bold</b> <sub>2</sub></details>",
])
def test_ordinary_markdown_is_safe(markdown):
    assert not unsafe(render_markdown(markdown, {"a.png": {"image/png": "iVBORw0KGgo="}}))


@pytest.mark.parametrize("markdown", [
    "<script>alert(1)</script>", '<img src="x" onerror="alert(1)">', "[x](javascript:alert(1))",
    "![x](javascript:alert(1))", '<a href="jav&#x09;ascript:alert(1)">x</a>', '<iframe src="x"></iframe>',
    '<object data="x"></object>', '<embed src="x">', '<meta http-equiv="refresh" content="0;url=x">',
    '<svg onload="alert(1)"></svg>', '<a href="data:text/html,x">x</a>', '<div style="position:fixed">8/8</div>',
])
def test_active_markdown_is_unsafe(markdown):
    assert unsafe(render_markdown(markdown))


def test_sanitise_notebook_shows_active_markdown_as_text_and_cleans_outputs():
    nb = nbformat.v4.new_notebook()
    locked = nbformat.v4.new_markdown_cell("<b>instructions</b> > kept", metadata={"nbgrader": {"locked": True}})
    student = nbformat.v4.new_markdown_cell("my answer <script>alert(1)</script>")
    code = nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output(
        "display_data", data={"text/html": "<b onclick='x()'>hi</b>", "application/javascript": "x()",
                              "image/png": "iVBORw0KGgo=", "text/plain": "hi"},
        metadata={"image/png": {"width": 3, "height": "1 onerror=x"}, "filenames": {"image/png": "x"}})])
    nb.cells = [locked, student, code]
    done = sanitise_notebook(nb)
    assert (done.cells, done.outputs) == (1, 1)
    assert nb.cells[0].source == "<b>instructions</b> > kept"
    assert "shown as text by the grader" in nb.cells[1].source and "    my answer <script>" in nb.cells[1].source
    assert not unsafe(render_markdown(nb.cells[1].source))
    out = nb.cells[2].outputs[0]
    assert set(out.data) == {"text/html", "image/png", "text/plain"} and "onclick" not in out.data["text/html"]
    assert out.metadata == {"image/png": {"width": 3}}


def test_the_course_own_text_is_left_as_written():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("<div style='color: red'>Read this first</div>")]
    assert sanitise_notebook(nb, frozenset({"<div style='color: red'>Read this first</div>"})).cells == 0
    assert sanitise_notebook(nb).cells == 1 and "shown as text" in nb.cells[0].source
