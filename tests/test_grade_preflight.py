"""Preflight, step by step, on tiny notebooks (read, match, rebuild, suspicious)."""

from __future__ import annotations

import copy
import json

import pytest

from cnncourse.cells import cell_source, nbg
from cnncourse.nbsrc import py_to_notebook
from cnngrade.preflight import preflight, repair
from cnngrade.preflight.match import match_cells
from cnngrade.preflight.read import read_json, student_cells
from cnngrade.preflight.suspicious import scan

RELEASE = py_to_notebook('''# %% [markdown]
# Two exercises.
# %%
import math
# %% [solution square]
def square(x):
    # YOUR CODE HERE
    raise NotImplementedError()
# %% [tests square_tests points=2]
assert square(3) == 9
# %% [solution hypot]
def hypot(a, b):
    # YOUR CODE HERE
    raise NotImplementedError()
# %% [tests hypot_tests points=3]
assert hypot(3, 4) == 5
''')
SQUARE = "def square(x):\n    return x * x"
HYPOT = "def hypot(a, b):\n    return math.sqrt(a * a + b * b)"


def student(**sources: str) -> dict:
    """The release notebook with solution cells filled in (by grade_id)."""
    nb = copy.deepcopy(RELEASE)
    for cell in nb["cells"]:
        if nbg(cell).get("grade_id") in sources:
            cell["source"] = sources[nbg(cell)["grade_id"]]
    return nb


def by_gid(nb: dict) -> dict[str, dict]:
    return {nbg(c)["grade_id"]: c for c in nb["cells"] if nbg(c).get("grade_id")}


# ---------------------------------------------------------------- step 1: read

@pytest.mark.parametrize("content, reason", [
    (b"", "empty notebook file"),
    (b"\x00\x01binary", "binary data"),
    ("{\"cells\": \"é\"}".encode("latin-1"), "not UTF-8"),
    (b'{"cells": [1,, 2]}', "invalid JSON at line 1, column 14"),
    (b"[" * 50000 + b"]" * 50000, "nested too deeply"),
])
def test_read_gives_one_line_reasons(tmp_path, content, reason):
    path = tmp_path / "a.ipynb"
    path.write_bytes(content)
    parsed, why = read_json(path, "a.ipynb")
    assert parsed is None and reason in why and "\n" not in why


def test_read_refuses_missing_and_links(tmp_path):
    assert read_json(tmp_path / "none.ipynb", "hw.ipynb")[1] == "no notebook hw.ipynb in the submission"
    target = tmp_path / "real.ipynb"
    target.write_text(json.dumps(RELEASE))
    (tmp_path / "link.ipynb").symlink_to(target)
    assert "not a regular file" in read_json(tmp_path / "link.ipynb", "hw.ipynb")[1]
    assert read_json(target, "hw.ipynb") == (RELEASE, "")


def test_student_cells_drop_malformed_ones():
    cells, reason, dropped = student_cells({"cells": [1, {"cell_type": "code", "source": 5}, {"cell_type": "evil"},
                                                      {"cell_type": "code", "source": ["a\n", "b"], "id": "bad id!"}]})
    assert reason == "" and dropped == 3
    assert cells == [{"cell_type": "code", "metadata": {}, "source": "a\nb"}]
    assert student_cells([])[1] == "not a Jupyter notebook (the JSON is not an object)"


# ---------------------------------------------------------------- step 2: match

def test_match_by_grade_id_then_cell_id_then_defined_function_then_position():
    nb = student(square=SQUARE, hypot=HYPOT)
    cells = student_cells(nb)[0]
    sq, sq_tests, hy, hy_tests = (next(i for i, c in enumerate(cells) if nbg(c).get("grade_id") == g)
                                  for g in ("square", "square_tests", "hypot", "hypot_tests"))
    cells[sq]["metadata"] = {}                     # metadata stripped: matched by cell id
    cells[hy]["metadata"], cells[hy]["id"] = {}, "x1"  # and id changed: matched by the function it defines
    cells[hy_tests]["metadata"], cells[hy_tests]["id"] = {}, "x2"  # a test cell: by identical source
    m = match_cells(cells, RELEASE["cells"])
    refs = {nbg(c)["grade_id"]: i for i, c in enumerate(RELEASE["cells"]) if nbg(c).get("grade_id")}
    assert m.by_ref == {refs["square"]: sq, refs["square_tests"]: sq_tests, refs["hypot"]: hy,
                        refs["hypot_tests"]: hy_tests}
    assert sorted(m.metadata_restored) == ["hypot", "hypot_tests", "square"]


def test_match_by_position_between_matched_neighbours():
    nb = student(square=SQUARE)
    cells = student_cells(nb)[0]
    i = next(i for i, c in enumerate(cells) if nbg(c).get("grade_id") == "hypot")
    cells[i] = {"cell_type": "code", "metadata": {}, "source": "result = 5"}  # defines nothing, no id
    m = match_cells(cells, RELEASE["cells"])
    assert m.by_student[i] == next(r for r, c in enumerate(RELEASE["cells"]) if nbg(c).get("grade_id") == "hypot")


def test_match_notes_duplicates_and_unknown_grade_ids():
    nb = student(square=SQUARE)
    extra = copy.deepcopy(by_gid(nb)["square"])
    forged = copy.deepcopy(by_gid(nb)["square_tests"])
    forged["metadata"]["nbgrader"]["grade_id"] = "bonus_tests"
    nb["cells"] += [extra, forged]
    m = match_cells(student_cells(nb)[0], RELEASE["cells"])
    assert m.duplicated == ["square"] and m.unknown == ["bonus_tests"]


# ---------------------------------------------------------------- step 3: rebuild

def test_rebuild_restores_locked_tests_and_names_them():
    nb = student(square=SQUARE, hypot=HYPOT)
    by_gid(nb)["square_tests"]["source"] = "pass  # nothing to see"
    result = repair(nb, RELEASE)
    assert "edited test cell(s) square_tests restored from the source" in result.findings
    assert cell_source(by_gid(result.notebook)["square_tests"]) == "assert square(3) == 9"


def test_rebuild_names_an_edited_test_cell_that_is_not_locked():
    release = copy.deepcopy(RELEASE)
    by_gid(release)["hypot_tests"]["metadata"]["nbgrader"]["locked"] = False
    nb = copy.deepcopy(release)
    by_gid(nb)["hypot_tests"]["source"] = "assert True"
    result = repair(nb, release)
    assert any("edited test cell(s) hypot_tests (not locked" in f for f in result.findings), result.findings
    assert cell_source(by_gid(result.notebook)["hypot_tests"]) == "assert True"  # as nbgrader grades it


def test_rebuild_puts_back_deleted_cells_and_types_and_metadata():
    nb = student(square=SQUARE)
    nb["cells"] = [c for c in nb["cells"] if nbg(c).get("grade_id") not in ("hypot", "square_tests")]
    by_gid(nb)["hypot_tests"]["cell_type"] = "markdown"
    by_gid(nb)["hypot_tests"]["metadata"]["nbgrader"]["points"] = 100
    result = repair(nb, RELEASE)
    joined = "; ".join(result.findings)
    assert "deleted test cell(s) square_tests restored from the source" in joined
    assert "deleted solution cell(s) hypot restored blank" in joined
    assert "retyped cell(s) hypot_tests (markdown->code) restored" in joined
    assert "edited nbgrader metadata restored for hypot_tests" in joined
    order = [nbg(c).get("grade_id") for c in result.notebook["cells"] if nbg(c).get("grade_id")]
    assert order == ["square", "square_tests", "hypot", "hypot_tests"]
    assert by_gid(result.notebook)["hypot_tests"]["metadata"]["nbgrader"]["points"] == 3


def test_rebuild_keeps_duplicate_solutions_in_order_and_drops_forged_cells():
    nb = student(square="def square(x):\n    return 0")
    second = copy.deepcopy(by_gid(nb)["square"])
    second["source"] = SQUARE
    forged = copy.deepcopy(by_gid(nb)["square_tests"])
    forged["metadata"]["nbgrader"]["grade_id"] = "bonus_tests"
    at = nb["cells"].index(by_gid(nb)["square"]) + 1
    nb["cells"][at:at] = [second, forged]
    out = repair(nb, RELEASE).notebook
    sources = [cell_source(c) for c in out["cells"]]
    assert sources.index("def square(x):\n    return 0") < sources.index(SQUARE)  # last definition wins
    graded = [nbg(c).get("grade_id") for c in out["cells"] if nbg(c).get("grade_id")]
    assert graded == ["square", "square_tests", "hypot", "hypot_tests"]  # the copy and the forgery carry none


def test_rebuild_replaces_the_kernelspec():
    nb = student(square=SQUARE)
    nb["metadata"]["kernelspec"] = {"name": "evil", "language": "python"}
    result = repair(nb, RELEASE)
    assert "kernelspec 'evil' replaced by 'python3'" in result.findings
    assert result.notebook["metadata"]["kernelspec"] == RELEASE["metadata"]["kernelspec"]


# ---------------------------------------------------------------- step 4: suspicious

def test_suspicious_code_is_listed_outside_test_cells_only():
    cells = [{"cell_type": "code", "metadata": {}, "source": "import math\nmath.sqrt = lambda x: 5"},
             {"cell_type": "code", "metadata": {}, "source": "setattr(math, 'pi', 3)"},
             {"cell_type": "code", "metadata": {}, "source": "import subprocess"}]
    notes = scan(cells, {2: "test"})
    assert notes == ["assigns to a library attribute (monkeypatching) (cell #1)", "calls setattr (cell #2)"]


def test_preflight_end_to_end_on_a_file(tmp_path):
    path = tmp_path / "hw.ipynb"
    path.write_text(json.dumps(student(square=SQUARE, hypot=HYPOT)))
    result = preflight(path, RELEASE, "hw.ipynb")
    assert not result.fatal and result.findings == [] and result.suspicious == []
    assert preflight(tmp_path / "missing.ipynb", RELEASE, "hw.ipynb").fatal == "no notebook hw.ipynb in the submission"
