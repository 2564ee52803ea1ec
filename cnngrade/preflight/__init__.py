"""Preflight: read a submitted notebook as untrusted data and repair it before any execution.

Runs on the trusted side (no student code runs here), in four steps, one module each:

1. :mod:`~cnngrade.preflight.read`: a notebook that cannot be read at all (missing,
   empty, binary, not UTF-8, corrupted JSON, not a notebook, too large) gets a one-line
   reason and no execution: every test of it scores zero;
2. :mod:`~cnngrade.preflight.match`: a readable notebook is matched cell by cell to the
   student version of the assignment (the release notebook, which carries the nbgrader
   metadata);
3. :mod:`~cnngrade.preflight.rebuild`: the notebook is rebuilt from the matched cells;
4. :mod:`~cnngrade.preflight.suspicious`: suspicious code (monkeypatching, kernel
   tampering, course files, databases, network, processes) is listed for the
   instructor; those notes do not change scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cnncourse.cells import cell_source, nbg
from cnngrade.preflight.match import kind, match_cells
from cnngrade.preflight.read import MAX_NOTEBOOK_BYTES, read_json, student_cells
from cnngrade.preflight.rebuild import assemble, findings, kernelspec_note, rebuild
from cnngrade.preflight.suspicious import SUSPICIOUS, scan

__all__ = ["MAX_NOTEBOOK_BYTES", "SUSPICIOUS", "Preflight", "preflight", "read_json", "repair"]


@dataclass
class Preflight:
    """What preflight made of one submitted notebook."""

    notebook: dict | None = None      # the repaired notebook (None: nothing to execute)
    fatal: str = ""                   # why the notebook could not be used at all
    findings: list[str] = field(default_factory=list)    # repairs, one line each
    suspicious: list[str] = field(default_factory=list)  # notes for the instructor


def repair(parsed: object, reference: dict, source: dict | None = None) -> Preflight:
    """Match the submission's cells to ``reference`` (the release notebook) and rebuild it.

    ``source`` (the instructor's notebook) only serves to recognise a test cell that
    holds the source's own text (e.g. the reference solution submitted as a student),
    which is not reported as edited.
    """
    cells, reason, dropped = student_cells(parsed)
    if cells is None:
        return Preflight(fatal=reason)
    src_tests = {nbg(c).get("grade_id"): cell_source(c) for c in (source or {}).get("cells", [])
                 if nbg(c).get("grade_id")}
    m = match_cells(cells, reference["cells"])
    out = rebuild(cells, m, src_tests)
    result = Preflight(findings=[f"{dropped} malformed cell(s) dropped"] if dropped else [])
    result.findings += findings(m, out)
    note = kernelspec_note(parsed, reference)
    if note:
        result.findings.append(note)
    nb = assemble(out.cells, reference)
    kinds = {i: kind(c) if nbg(c) else "plain" for i, c in enumerate(out.cells)}
    result.suspicious = scan(out.cells, kinds)
    try:
        import nbformat

        nbformat.validate(nbformat.from_dict(nb))
    except Exception as exc:  # noqa: BLE001
        result.fatal = f"notebook could not be repaired ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})"
        return result
    result.notebook = nb
    return result


def preflight(path: Path | None, reference: dict, expected_name: str, source: dict | None = None) -> Preflight:
    """Read ``path`` (untrusted) and repair it against ``reference``; never raises on bad input."""
    parsed, reason = read_json(path, expected_name)
    if reason:
        return Preflight(fatal=reason)
    try:
        return repair(parsed, reference, source)
    except RecursionError:
        return Preflight(fatal="corrupted notebook: structure nested too deeply")
