"""Preflight step 3: rebuild the notebook from the matched cells, the release's metadata and the source.

- nbgrader metadata always comes from the release notebook (stripped or edited
  metadata, changed points, a forged extra graded cell are all repaired);
- a duplicated solution cell keeps every copy in order (they all run, so the last
  definition wins, as in the student's own top-to-bottom run) and only the first is
  the graded cell; a duplicated test cell keeps one copy;
- a deleted test cell is put back (nbgrader then restores its hidden tests); a deleted
  solution cell is put back blank; a retyped graded cell gets its type back;
- locked cells always get the release's source (nbgrader then puts back the hidden
  tests), so they are never scored as the student left them; an edited test cell that
  is not locked is graded as the student left it, as nbgrader does, and named;
- the kernelspec / language_info come from the source, never from the submission.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field

from cnncourse.cells import cell_source, nbg
from cnngrade.preflight.match import Match
from cnngrade.preflight.read import ID_RE


@dataclass
class Rebuilt:
    """The rebuilt cells and what the rebuild repaired."""

    cells: list[dict] = field(default_factory=list)
    placed: dict[int, int] = field(default_factory=dict)  # reference index -> position in cells
    used_ids: set[str] = field(default_factory=set)
    retyped: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)           # locked: restored from the source
    edited_unlocked: list[str] = field(default_factory=list)  # not locked: graded as left, like nbgrader
    metadata_fixed: list[str] = field(default_factory=list)
    missing_tests: list[str] = field(default_factory=list)
    missing_solutions: list[str] = field(default_factory=list)

    def add(self, cell: dict) -> None:
        """Append ``cell`` with a unique valid id and no outputs."""
        cid = cell.get("id")
        if not isinstance(cid, str) or not ID_RE.match(cid) or cid in self.used_ids:
            cid = self.new_id()
        cell["id"] = cid
        self.used_ids.add(cid)
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        else:
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
        self.cells.append(cell)

    def new_id(self) -> str:
        cid = uuid.uuid4().hex[:12]
        while cid in self.used_ids:
            cid = uuid.uuid4().hex[:12]
        return cid


def _strip_volatile(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k not in ("checksum", "schema_version", "cell_type")}


def _grade_id(ref: dict) -> str:
    return nbg(ref).get("grade_id", ref.get("id"))


def _matched(cell: dict, ri: int, m: Match, src_tests: dict[str, str], out: Rebuilt) -> dict:
    """The reference cell ``ri`` carrying the student's source (or the release's, when locked)."""
    ref = m.refs[ri]
    new = {"cell_type": ref["cell_type"], "id": ref.get("id"), "metadata": copy.deepcopy(ref.get("metadata", {})),
           "source": cell["source"]}
    gid = _grade_id(ref)
    if cell["cell_type"] != ref["cell_type"]:
        out.retyped.append(f"{gid} ({cell['cell_type']}->{ref['cell_type']})")
    if m.kinds[ri] in ("test", "locked", "graded"):
        changed = cell["source"] != cell_source(ref) and cell["source"] != src_tests.get(gid)
        if nbg(ref).get("locked"):
            if changed:
                out.edited.append(gid)
            new["source"] = cell_source(ref)
        elif changed and m.kinds[ri] == "test":
            out.edited_unlocked.append(gid)
    if nbg(cell) and gid not in m.metadata_restored and _strip_volatile(nbg(cell)) != _strip_volatile(nbg(ref)):
        out.metadata_fixed.append(gid)
    if "attachments" in cell and new["cell_type"] == "markdown":
        new["attachments"] = cell["attachments"]
    return new


def _unmatched(cell: dict, si: int, m: Match, reserved: set[str]) -> dict | None:
    """A student cell the reference does not know: kept without nbgrader metadata (duplicate tests dropped)."""
    if si in m.extra_copies:
        ri = next(r for r, c in enumerate(m.refs) if nbg(c).get("grade_id") == nbg(cell)["grade_id"])
        if m.kinds[ri] != "solution":
            return None  # a second copy of a locked / test cell
        cell = dict(cell, metadata={k: v for k, v in cell["metadata"].items() if k != "nbgrader"})
        cell.pop("id", None)
        if cell["cell_type"] != "code":
            cell["cell_type"] = "code"
        return cell
    if nbg(cell):
        cell = dict(cell, metadata={k: v for k, v in cell["metadata"].items() if k != "nbgrader"})
    if cell.get("id") in reserved:
        cell.pop("id", None)
    return cell


def _insert_missing(out: Rebuilt, m: Match) -> None:
    """Reference cells with no match go back after their matched predecessor."""
    for ri in m.tracked:
        if ri in out.placed:
            continue
        ref = m.refs[ri]
        before = [out.placed[r] for r in out.placed if r < ri]
        pos = max(before) + 1 if before else 0
        new = copy.deepcopy(ref)
        new["source"] = cell_source(ref)
        (out.missing_solutions if m.kinds[ri] == "solution" else out.missing_tests).append(_grade_id(ref))
        if not isinstance(new.get("id"), str) or new["id"] in out.used_ids:
            new["id"] = out.new_id()
        out.used_ids.add(new["id"])
        out.cells.insert(pos, new)
        if new["cell_type"] == "code":
            new["outputs"], new["execution_count"] = [], None
        for r in out.placed:
            if out.placed[r] >= pos:
                out.placed[r] += 1
        out.placed[ri] = pos


def rebuild(cells: list[dict], m: Match, src_tests: dict[str, str]) -> Rebuilt:
    """The repaired cells, in the student's order, missing graded cells inserted."""
    out = Rebuilt()
    reserved = {m.refs[ri]["id"] for ri in m.by_ref if m.refs[ri].get("id")}
    for si, cell in enumerate(cells):
        if si in m.by_student:
            ri = m.by_student[si]
            out.add(_matched(cell, ri, m, src_tests, out))
            out.placed[ri] = len(out.cells) - 1
            continue
        kept = _unmatched(cell, si, m, reserved)
        if kept is not None:
            out.add(kept)
    _insert_missing(out, m)
    return out


def findings(m: Match, out: Rebuilt) -> list[str]:
    """One line per kind of repair, in a fixed order."""
    f: list[str] = []
    if m.duplicated:
        f.append("duplicated graded cell(s) " + ", ".join(sorted(set(m.duplicated)))
                 + ": every solution copy runs in order, the first is graded; extra test copies removed")
    if out.missing_tests:
        f.append("deleted test cell(s) " + ", ".join(out.missing_tests) + " restored from the source")
    if out.missing_solutions:
        f.append("deleted solution cell(s) " + ", ".join(out.missing_solutions) + " restored blank")
    if out.retyped:
        f.append("retyped cell(s) " + ", ".join(out.retyped) + " restored")
    if out.edited:
        f.append("edited test cell(s) " + ", ".join(out.edited) + " restored from the source")
    if out.edited_unlocked:
        f.append("edited test cell(s) " + ", ".join(out.edited_unlocked)
                 + " (not locked: graded as submitted, as nbgrader does)")
    if m.metadata_restored:
        f.append("stripped nbgrader metadata restored for " + ", ".join(str(x) for x in m.metadata_restored))
    if out.metadata_fixed:
        f.append("edited nbgrader metadata restored for " + ", ".join(out.metadata_fixed))
    if m.unknown:
        f.append("unknown graded cell(s) " + ", ".join(sorted(set(m.unknown)))
                 + " ignored (their nbgrader metadata removed)")
    return f


def kernelspec_note(parsed: object, reference: dict) -> str:
    """A note when the submission names another kernel than the release (it is replaced)."""
    meta = parsed.get("metadata") if isinstance(parsed, dict) else None
    ks = meta.get("kernelspec") if isinstance(meta, dict) else None
    ref_ks = reference.get("metadata", {}).get("kernelspec", {})
    if ks is not None and (not isinstance(ks, dict) or ks.get("name") != ref_ks.get("name")
                           or ks.get("language", ref_ks.get("language")) != ref_ks.get("language")):
        shown = ks.get("name") if isinstance(ks, dict) else type(ks).__name__
        return f"kernelspec {str(shown)[:40]!r} replaced by {ref_ks.get('name', 'python3')!r}"
    return ""


def assemble(cells: list[dict], reference: dict) -> dict:
    """A notebook of ``cells`` with the release's kernelspec and language_info."""
    return {
        "cells": cells,
        "metadata": {k: copy.deepcopy(v) for k, v in reference.get("metadata", {}).items()
                     if k in ("kernelspec", "language_info")},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
