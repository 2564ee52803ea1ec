"""Shared checks for every topic: mutants rejected, autograde scores, exercise structure.

Each topic has one test module, ``tests/test_topic_NN_name.py``, that lists its
mutants and defines four short test functions calling :func:`check_structure`,
:func:`check_mutants`, :func:`check_autograde` and :func:`check_release`. One module
per topic lets pytest-xdist (``--dist loadfile``) spread the topics over the workers.

A mutant is a plausible wrong solution written as a text replacement inside a
solution cell of the source notebook. The notebook is executed once in one kernel;
for each mutant only the mutated solution cell and its test cells are re-run, then
the original cell is restored.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from cnncourse.grading import autograde_notebooks
from cnncourse.kernel import KernelSession, cell_key, load_cells
from cnncourse.paths import course_root

REPO = course_root()

MIN_MUTANTS_PER_SOLUTION = 3


@dataclass(frozen=True)
class Mutant:
    """A wrong solution: replace ``old`` by ``new`` in solution cell ``cell``.

    ``name`` says what mistake it models. ``rerun`` names extra cells (grade_id or
    cell id) to run after the mutated cell and before its tests, e.g. a training cell
    that uses the mutated function. ``visible=True`` marks a classic mistake that the
    *visible* part of the test cells (the lines before ``### BEGIN HIDDEN TESTS``) must
    already reject, so a learner hears of it before grading.
    """

    cell: str
    name: str
    old: str
    new: str
    rerun: tuple[str, ...] = ()
    visible: bool = False


def source_notebook(topic: str) -> Path:
    return REPO / "source" / topic / f"{topic}.ipynb"


def release_notebook(topic: str) -> Path:
    return REPO / "release" / topic / f"{topic}.ipynb"


def _src(cell: dict) -> str:
    return "".join(cell["source"])


def _nbg(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def solution_cells(cells: list[dict]) -> list[str]:
    return [cell_key(c) for c in cells if c["cell_type"] == "code" and _nbg(c).get("solution")]


HIDDEN_MARKER = "### BEGIN HIDDEN TESTS"


def visible_part(source: str) -> str:
    """The lines of a test cell a learner sees: everything before the hidden-tests marker."""
    return source.split(HIDDEN_MARKER, 1)[0]


def graded_cells_after(cells: list[dict], key: str) -> list[int]:
    """Indices of the graded test cells that follow solution cell ``key`` (up to the next solution)."""
    start = next(i for i, c in enumerate(cells) if cell_key(c) == key)
    found = []
    for i in range(start + 1, len(cells)):
        meta = _nbg(cells[i])
        if meta.get("solution"):
            break
        if meta.get("grade") and cells[i]["cell_type"] == "code":
            found.append(i)
    return found


def run_mutants(topic: str, mutants: list[Mutant], path: Path | None = None) -> list[str]:
    """Execute the source notebook and every mutant; return a list of problems (empty = all good)."""
    path = path or source_notebook(topic)
    cells = load_cells(path)
    index = {cell_key(c): i for i, c in enumerate(cells)}
    problems: list[str] = []
    with KernelSession(path.parent) as kernel:
        for cell in cells:
            if cell["cell_type"] != "code":
                continue
            result = kernel.run(_src(cell))
            if not result.ok:
                return [f"source cell {cell_key(cell)!r} fails on the reference solution: {result}"]
        for m in mutants:
            label = f"mutant {m.cell}/{m.name!r}"
            if m.cell not in index or not _nbg(cells[index[m.cell]]).get("solution"):
                problems.append(f"{label}: no solution cell named {m.cell!r}")
                continue
            original = _src(cells[index[m.cell]])
            if m.old not in original:
                problems.append(f"{label}: text {m.old!r} not found in the solution cell")
                continue
            mutated = original.replace(m.old, m.new)
            result = kernel.run(mutated)
            if not result.ok:
                problems.append(f"{label}: the mutated cell itself fails ({result}); a mutant must run")
                kernel.run(original)
                continue
            killed = None
            for key in m.rerun:
                if key not in index:
                    problems.append(f"{label}: rerun cell {key!r} does not exist")
                    continue
                result = kernel.run(_src(cells[index[key]]))
                if not result.ok:
                    killed = f"{key}: {result}"
                    break
            tests = graded_cells_after(cells, m.cell)
            if not tests:
                problems.append(f"{label}: solution cell has no graded test cell after it")
            for i in tests:
                if killed:
                    break
                code = visible_part(_src(cells[i])) if m.visible else _src(cells[i])
                result = kernel.run(code)
                if not result.ok:
                    killed = f"{cell_key(cells[i])}: {result}"
            if killed is None:
                where = "the visible part of every test cell" if m.visible else "every test cell"
                problems.append(f"{label} SURVIVED: {where} passed")
            kernel.run(original)
            for key in m.rerun:
                if key in index:
                    kernel.run(_src(cells[index[key]]))
    return problems


def structure_problems(topic: str, mutants: list[Mutant], path: Path | None = None) -> list[str]:
    """Static checks on the exercise notebook and its mutant list."""
    cells = load_cells(path or source_notebook(topic))
    problems = []
    counts = Counter(m.cell for m in mutants)
    for key in solution_cells(cells):
        if counts[key] < MIN_MUTANTS_PER_SOLUTION:
            problems.append(f"solution cell {key!r} has {counts[key]} mutants; need {MIN_MUTANTS_PER_SOLUTION}")
        src = _src(cells[[cell_key(c) for c in cells].index(key)])
        if "### BEGIN SOLUTION" not in src or "### END SOLUTION" not in src:
            problems.append(f"solution cell {key!r} lacks BEGIN/END SOLUTION markers")
        tests = graded_cells_after(cells, key)
        if not tests:
            problems.append(f"solution cell {key!r} has no graded test cell after it")
        elif not any("### BEGIN HIDDEN TESTS" in _src(cells[i]) for i in tests):
            problems.append(f"solution cell {key!r} has no hidden tests")
    for c in cells:
        meta = _nbg(c)
        if meta.get("grade") and not meta.get("solution"):
            if not meta.get("locked"):
                problems.append(f"test cell {cell_key(c)!r} is not locked")
            if not meta.get("points"):
                problems.append(f"test cell {cell_key(c)!r} has no points")
    return problems


def check_structure(topic: str, mutants: list[Mutant]) -> None:
    """Every solution cell has markers, enough mutants and a locked, pointed test cell with hidden tests."""
    problems = structure_problems(topic, mutants)
    assert not problems, "\n".join(problems)


def check_mutants(topic: str, mutants: list[Mutant]) -> None:
    """The reference solution passes every test cell and every mutant is rejected."""
    problems = run_mutants(topic, mutants)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


def check_autograde(topic: str, workdir: Path) -> None:
    """Through nbgrader: the source as a submission scores full marks, the blank release zero."""
    reports = autograde_notebooks(
        topic, {"reference": source_notebook(topic), "blank": release_notebook(topic)},
        workdir=workdir, feedback=False,
    )
    ref, blank = reports["reference"], reports["blank"]
    assert ref.max_score > 0, f"no graded cells found: {ref}"
    assert ref.score == ref.max_score, f"reference solution lost points:\n{ref.table()}"
    assert blank.score == 0, f"the untouched student notebook earns points:\n{blank.table()}"
    assert len(blank.exercises) == len(ref.exercises)


def check_release(topic: str) -> None:
    """The student version has every cell of the source, in order, with solutions removed."""
    src_cells = load_cells(source_notebook(topic))
    rel_cells = load_cells(release_notebook(topic))
    assert [cell_key(c) for c in rel_cells] == [cell_key(c) for c in src_cells], "run `make release`"


def load_notebook(path: Path) -> dict:
    return json.loads(Path(path).read_text())
