"""Preflight step 2: match the submission's cells to the student version (the release notebook).

Cells are matched by nbgrader ``grade_id``, then by cell id, then by the functions a
solution cell defines (tests and locked cells: by identical source), then by position
between matched neighbours. A second cell with the grade_id of an already matched
cell is a duplicate (kept for solutions, dropped for tests by the rebuild step).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from cnncourse.cells import cell_source, nbg


def kind(ref: dict) -> str:
    """solution | test (graded code) | graded (graded markdown) | locked | plain."""
    meta = nbg(ref)
    if meta.get("solution"):
        return "solution"
    if meta.get("grade") or meta.get("task"):
        return "test" if ref.get("cell_type") == "code" else "graded"
    if meta.get("locked"):
        return "locked"
    return "plain"


def defined_names(src: str) -> frozenset[str]:
    """Functions and classes a cell defines at top level (a regex guess when it does not parse)."""
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError):
        return frozenset(re.findall(r"^(?:def|class)\s+(\w+)", src, re.M))
    return frozenset(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))


def looks_like_code(src: str) -> bool:
    try:
        ast.parse(src)
    except (SyntaxError, ValueError):
        return False
    return bool(src.strip())


@dataclass
class Match:
    """Which student cell stands for which reference cell, and what the matching noticed."""

    refs: list[dict]
    kinds: list[str]
    by_student: dict[int, int] = field(default_factory=dict)    # student index -> reference index
    by_ref: dict[int, int] = field(default_factory=dict)        # reference index -> student index
    extra_copies: list[int] = field(default_factory=list)       # student indices: duplicated graded cells
    duplicated: list[str] = field(default_factory=list)         # grade_ids seen twice
    metadata_restored: list[str] = field(default_factory=list)  # matched without (the right) nbgrader metadata
    unknown: list[str] = field(default_factory=list)            # grade_ids the release does not have

    @property
    def tracked(self) -> list[int]:
        """Reference cells that must be present: everything but plain cells."""
        return [i for i, k in enumerate(self.kinds) if k != "plain"]

    def pair(self, si: int, ri: int, restored: bool = False) -> None:
        self.by_student[si], self.by_ref[ri] = ri, si
        if restored:
            self.metadata_restored.append(nbg(self.refs[ri]).get("grade_id", self.refs[ri].get("id")))

    def free(self, si: int) -> bool:
        return si not in self.by_student and si not in self.extra_copies

    def neighbours(self, ri: int, n_cells: int) -> tuple[int, int]:
        """Student indices of the nearest matched reference cells before and after ``ri``."""
        lo = max([self.by_ref[r] for r in self.by_ref if r < ri], default=-1)
        hi = min([self.by_ref[r] for r in self.by_ref if r > ri], default=n_cells)
        return lo, hi


def match_ids(cells: list[dict], m: Match) -> None:
    """By nbgrader grade_id (duplicates noted), then by cell id."""
    ref_by_gid = {nbg(c)["grade_id"]: i for i, c in enumerate(m.refs) if nbg(c).get("grade_id")}
    ref_by_id = {c.get("id"): i for i, c in enumerate(m.refs) if c.get("id")}
    for si, cell in enumerate(cells):
        gid = nbg(cell).get("grade_id")
        ri = ref_by_gid.get(gid) if isinstance(gid, str) else None
        if ri is None:
            if isinstance(gid, str) and nbg(cell):
                m.unknown.append(gid)
            continue
        if ri in m.by_ref:
            m.extra_copies.append(si)
            m.duplicated.append(gid)
            continue
        m.pair(si, ri)
    for si, cell in enumerate(cells):
        if not m.free(si):
            continue
        ri = ref_by_id.get(cell.get("id"))
        if ri is not None and ri not in m.by_ref and m.kinds[ri] != "plain":
            m.pair(si, ri, restored=True)


def match_content(cells: list[dict], m: Match) -> None:
    """Solution cells by the functions they define; tests and locked cells by identical source."""
    for ri in m.tracked:
        if ri in m.by_ref:
            continue
        ref = m.refs[ri]
        if m.kinds[ri] == "solution" and ref["cell_type"] == "code":
            names = defined_names(cell_source(ref))
            lo, hi = m.neighbours(ri, len(cells))

            def defines(si: int, names=names) -> bool:
                return m.free(si) and bool(names) and names <= defined_names(cells[si]["source"])

            cands = [si for si in range(lo + 1, hi) if defines(si)] or [si for si in range(len(cells)) if defines(si)]
        else:
            text = cell_source(ref).strip()
            cands = [si for si in range(len(cells)) if m.free(si) and cells[si]["source"].strip() == text]
        if cands:
            m.pair(cands[0], ri, restored=True)


def match_position(cells: list[dict], m: Match) -> None:
    """A single free cell of the right kind between matched neighbours."""
    for ri in m.tracked:
        if ri in m.by_ref:
            continue
        lo, hi = m.neighbours(ri, len(cells))
        want = m.refs[ri]["cell_type"]
        solution = m.kinds[ri] == "solution"
        cands = [si for si in range(lo + 1, hi) if m.free(si) and not nbg(cells[si])
                 and (cells[si]["cell_type"] == want or solution)]
        if solution:
            code = [si for si in cands if cells[si]["cell_type"] == "code"]
            cands = code if len(code) == 1 else [si for si in cands if cells[si]["cell_type"] != "markdown"
                                                 or looks_like_code(cells[si]["source"])]
        if len(cands) == 1:
            m.pair(cands[0], ri, restored=True)


def match_cells(cells: list[dict], refs: list[dict]) -> Match:
    """All three matching passes, in order."""
    m = Match(refs, [kind(c) for c in refs])
    match_ids(cells, m)
    match_content(cells, m)
    match_position(cells, m)
    return m
