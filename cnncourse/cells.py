"""Small helpers on notebook cells, written once for the course tooling and the grader.

They accept both forms a cell's source takes (a string, or a list of lines as stored
on disk) and tolerate malformed metadata, since the grader reads untrusted notebooks
with them.
"""

from __future__ import annotations

from collections.abc import Mapping


def nbg(cell: Mapping) -> dict:
    """The cell's nbgrader metadata (an empty dict when absent or malformed)."""
    meta = cell.get("metadata")
    found = meta.get("nbgrader") if isinstance(meta, Mapping) else None
    return found if isinstance(found, dict) else {}


def cell_source(cell: Mapping) -> str:
    """The cell's source as one string (lines joined; anything that is not text dropped)."""
    src = cell.get("source", "")
    if isinstance(src, list):
        return "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def cell_key(cell: Mapping) -> str:
    """A cell's name: its nbgrader grade_id when it has one, else its cell id."""
    return nbg(cell).get("grade_id") or cell.get("id", "")


def is_test_cell(cell: Mapping) -> bool:
    """An autograded test cell: a graded code cell that is not a solution."""
    meta = nbg(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def is_solution_cell(cell: Mapping) -> bool:
    return cell.get("cell_type") == "code" and bool(nbg(cell).get("solution"))
