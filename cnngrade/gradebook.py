"""The instructor's gradebook: backup, the assignment's definition, merging one student's result.

Only the run's parent process writes here, one student at a time (one writer: no
"database is locked" between workers). Workers grade into private gradebooks and send
back :class:`~cnngrade.records.Result` records.
"""

from __future__ import annotations

import sqlite3
import time
import warnings
from pathlib import Path

from cnngrade.records import Grade, NotebookResult, Result


def memoize_alembic_version() -> None:
    """nbgrader asks the ``alembic`` command for its schema version at every new gradebook
    (seconds each time); the answer never changes within a process."""
    import nbgrader.api as nbapi

    real = nbapi.get_alembic_version
    if getattr(real, "_cnnlab_memo", False):
        return
    memo: dict[str, str] = {}

    def get_alembic_version() -> str:
        if "head" not in memo:
            memo["head"] = real()
        return memo["head"]

    get_alembic_version._cnnlab_memo = True
    nbapi.get_alembic_version = get_alembic_version


def open_gradebook(db_url: str, course_id: str):
    from nbgrader.api import Gradebook

    return Gradebook(db_url, course_id=course_id)


def backup(db: Path) -> Path | None:
    """A consistent copy ``<db>.bak-<date>-<time>`` (SQLite's online backup), or None without a gradebook."""
    if not db.exists():
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = db.with_name(f"{db.name}.bak-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = db.with_name(f"{db.name}.bak-{stamp}-{n}")
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    return target


def _graded_cells(assignment) -> set[tuple[str, str, float]]:
    return {(nb.name, c.name, float(c.max_score)) for nb in assignment.notebooks for c in nb.grade_cells}


def _copy_notebook_definition(gb, tnb, aid: str) -> None:
    gb.update_or_create_notebook(tnb.name, aid, kernelspec=tnb.kernelspec)
    for c in tnb.grade_cells:
        gb.update_or_create_grade_cell(c.name, tnb.name, aid, max_score=c.max_score, cell_type=c.cell_type)
    for c in tnb.solution_cells:
        gb.update_or_create_solution_cell(c.name, tnb.name, aid)
    for c in tnb.task_cells:
        gb.update_or_create_task_cell(c.name, tnb.name, aid, max_score=c.max_score, cell_type=c.cell_type)
    for c in tnb.source_cells:
        gb.update_or_create_source_cell(c.name, tnb.name, aid, cell_type=c.cell_type, locked=c.locked,
                                        source=c.source, checksum=c.checksum)


def sync_assignment(gb, template_gb, aid: str) -> list[str]:
    """Create / update the assignment's definition in the instructor gradebook from the template's."""
    from nbgrader.api import MissingEntry

    ta = template_gb.find_assignment(aid)
    try:
        before = _graded_cells(gb.find_assignment(aid))
    except MissingEntry:
        gb.add_assignment(aid)
        before = None
    for tnb in ta.notebooks:
        _copy_notebook_definition(gb, tnb, aid)
    after = _graded_cells(ta)
    if before is None:
        return [f"assignment {aid} added to the gradebook from source/{aid}"]
    if before != after:
        extra = sorted(f"{n}/{c}" for n, c, _ in before - after)
        return [f"the gradebook's graded cells of {aid} differed from source/{aid}; updated"
                + (f" (cells no longer in the source: {', '.join(extra)})" if extra else "")]
    return []


def merge(gb, aid: str, result: Result) -> None:
    """Write one student's result into the instructor gradebook (one transaction; manual scores kept)."""
    from nbgrader.api import MissingEntry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nbgrader's own SQLAlchemy autoflush warnings
        gb.update_or_create_student(result.student)
        kwargs = {"timestamp": result.timestamp} if result.timestamp else {}
        gb.update_or_create_submission(aid, result.student, **kwargs)
        for nbname, entry in result.notebooks.items():
            try:
                subnb = gb.find_submission_notebook(nbname, aid, result.student)
            except MissingEntry:
                continue
            _merge_notebook(subnb, entry)
        gb.db.commit()


def _merge_notebook(subnb, entry: NotebookResult) -> None:
    for grade in subnb.grades:
        info = entry.grades.get(grade.name)
        auto = info.auto_score if info else (0.0 if entry.zeroed else None)
        grade.auto_score = auto
        if entry.zeroed:
            grade.needs_manual_grade = grade.manual_score is not None
        else:
            grade.needs_manual_grade = grade.manual_score is not None or auto is None
    for comment in subnb.comments:
        if comment.name in entry.comments:
            comment.auto_comment = entry.comments[comment.name]
    subnb.late_submission_penalty = entry.late_penalty


def zero_notebooks(assignment) -> dict[str, NotebookResult]:
    """Every graded cell of the assignment at 0 points (a notebook that was not executed)."""
    return {nb.name: NotebookResult(grades={c.name: Grade(0.0, c.max_score)
                                            for c in list(nb.grade_cells) + list(nb.task_cells)}, zeroed=True)
            for nb in assignment.notebooks}


def read_notebook_result(gb, aid: str, student: str, nb) -> NotebookResult | None:
    """The grades nbgrader wrote for one submitted notebook (None when it has none)."""
    from nbgrader.api import MissingEntry

    try:
        subnb = gb.find_submission_notebook(nb.name, aid, student)
    except MissingEntry:
        return None
    return NotebookResult(grades={g.name: Grade(g.auto_score, g.max_score) for g in subnb.grades},
                          comments={c.name: c.auto_comment for c in subnb.comments},
                          late_penalty=subnb.late_submission_penalty)


def copy_duedate(db: Path, template_db: Path, aid: str, course_id: str) -> None:
    """The instructor's due date for ``aid`` into the template (late penalties as nbgrader computes them)."""
    from nbgrader.api import MissingEntry

    if not db.exists():
        return
    try:
        with open_gradebook(f"sqlite:///{db}", course_id) as gb:
            duedate = gb.find_assignment(aid).duedate
    except (MissingEntry, Exception):  # noqa: BLE001 - no due date known
        return
    if duedate is not None:
        with open_gradebook(f"sqlite:///{template_db}", course_id) as tgb:
            tgb.update_or_create_assignment(aid, duedate=duedate)
