"""The instructor's gradebook: where it is, backup, the assignment's definition, merging one student's result.

The gradebook is the database the course's ``nbgrader_config.py`` names in
``c.CourseDirectory.db_url``: an SQLite file by default, a PostgreSQL database
(``postgresql://user@host/db``) when several instructors and the formgrader share it.

Only the run's parent process writes here, one student at a time (one writer: no
"database is locked" between workers). Workers grade into private gradebooks and send
back :class:`~cnngrade.records.Result` records. Each student's result is written in one
transaction (:func:`merge`), so a reader such as the formgrader sees a student either
as before the merge or as after it, never half-written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cnngrade.records import Grade, NotebookResult, Result

BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class GradebookUrl:
    """The gradebook's SQLAlchemy URL (an SQLite path made absolute against the course root)."""

    url: str

    @classmethod
    def from_config(cls, url: str, root: Path) -> GradebookUrl:
        """The ``db_url`` of a course configuration; a relative SQLite path is relative to ``root``."""
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            return cls.sqlite(path if path.is_absolute() else Path(root) / path)
        return cls(url)

    @classmethod
    def sqlite(cls, path: Path) -> GradebookUrl:
        return cls(f"sqlite:///{Path(path)}")

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgresql``, ... (the URL's dialect without its driver)."""
        from sqlalchemy.engine import make_url

        return make_url(self.url).get_backend_name()

    @property
    def path(self) -> Path | None:
        """The SQLite file, or None for a server database."""
        from sqlalchemy.engine import make_url

        return Path(make_url(self.url).database) if self.backend == "sqlite" else None

    def exists(self) -> bool:
        """An SQLite file exists; a server database is taken to exist (the server reports otherwise)."""
        return self.path.exists() if self.path is not None else True

    def shown(self) -> str:
        """The URL for messages and reports, password hidden."""
        from sqlalchemy.engine import make_url

        return self.url if self.path is not None else make_url(self.url).render_as_string(hide_password=True)

    def __str__(self) -> str:
        return str(self.path) if self.path is not None else self.shown()


def _as_url(db: GradebookUrl | Path) -> GradebookUrl:
    return db if isinstance(db, GradebookUrl) else GradebookUrl.sqlite(Path(db))


def unreachable(db: GradebookUrl) -> str:
    """Why a server gradebook cannot be reached ("" when it can, and always for SQLite), in one line."""
    if db.path is not None:
        return ""
    from sqlalchemy import create_engine, text

    timeout = {"connect_timeout": 15} if db.backend == "postgresql" else {}  # a host that never answers
    engine = create_engine(db.url, future=True, connect_args=timeout)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return ""
    except Exception as exc:  # noqa: BLE001 - any driver error: no server, refused login, no database
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"the gradebook {db.shown()} cannot be reached: {first}"
    finally:
        engine.dispose()


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


def backup(db: GradebookUrl | Path, folder: Path | None = None, use_pg_dump: bool = True) -> Path | None:
    """A consistent copy of the gradebook, taken before a run writes to it; None when there is nothing to copy.

    SQLite: ``<db>.bak-<date>-<time>`` next to the file, by SQLite's online backup.
    PostgreSQL, in ``folder`` (the course root): ``gradebook-<database>.bak-<date>-<time>.dump``
    by ``pg_dump`` (custom format, for ``pg_restore``; pg_dump reads in one snapshot); when
    pg_dump is missing or fails (for example older than the server), ``....db``: every
    nbgrader table copied by :func:`copy_gradebook` in one read-only REPEATABLE READ
    transaction into an SQLite gradebook that nbgrader opens as it is.
    """
    db = _as_url(db)
    if db.path is not None:
        return _backup_sqlite(db.path)
    if db.backend != "postgresql":
        raise ValueError(f"no backup for {db.backend} gradebooks (supported: {', '.join(BACKENDS)})")
    if not _has_tables(db):
        return None
    from sqlalchemy.engine import make_url

    stem = f"gradebook-{make_url(db.url).database}.bak-{time.strftime('%Y%m%d-%H%M%S')}"
    folder = Path(folder) if folder is not None else Path.cwd()
    if use_pg_dump:
        target = _fresh(folder, stem, ".dump")
        if _pg_dump(db, target):
            return target
    target = _fresh(folder, stem, ".db")
    copy_gradebook(db, GradebookUrl.sqlite(target))
    return target


def _fresh(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem+suffix``, or ``stem-2``, ``stem-3``... when taken (two backups in one second)."""
    target, n = folder / f"{stem}{suffix}", 1
    while target.exists():
        n += 1
        target = folder / f"{stem}-{n}{suffix}"
    return target


def _backup_sqlite(db: Path) -> Path | None:
    if not db.exists():
        return None
    target = _fresh(db.parent, f"{db.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}", "")
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    return target


def _has_tables(db: GradebookUrl) -> bool:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(db.url, future=True)
    try:
        return "grade" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def _pg_dump(db: GradebookUrl, target: Path) -> bool:
    """``pg_dump`` of the whole database into ``target``; False (and no file) when it is missing or fails.

    The password goes through the environment, never the command line (which others can list).
    """
    from sqlalchemy.engine import make_url

    exe = shutil.which("pg_dump")
    if exe is None:
        return False
    url = make_url(db.url)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    libpq = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    try:
        proc = subprocess.run([exe, "--format=custom", "--no-owner", "--no-privileges", f"--file={target}",
                               f"--dbname={libpq}"], env=env, capture_output=True, timeout=3600)
    except (OSError, subprocess.TimeoutExpired):
        proc = None
    if proc is None or proc.returncode != 0:
        target.unlink(missing_ok=True)
        return False
    return True


def copy_gradebook(src: GradebookUrl, dst: GradebookUrl) -> None:
    """Every nbgrader table of ``src`` into ``dst`` (a new or empty gradebook), in both directions.

    On PostgreSQL the reads run in one read-only REPEATABLE READ transaction: one snapshot
    of the database taken at its first query, so a merge committing meanwhile is in the copy
    wholly or not at all. The writes are one transaction. Used for the PostgreSQL backup
    (into SQLite) and to restore such a backup (from SQLite into an empty database).
    """
    from nbgrader.api import Base
    from sqlalchemy import create_engine, text

    reader, writer = create_engine(src.url, future=True), create_engine(dst.url, future=True)
    try:
        Base.metadata.create_all(writer)
        with reader.connect() as rc, writer.begin() as wc:
            if src.backend == "postgresql":
                rc = rc.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with rc.begin():
                for table in Base.metadata.sorted_tables:
                    rows = [dict(row) for row in rc.execute(table.select()).mappings()]
                    if rows:
                        wc.execute(table.insert(), rows)
                versions = rc.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            wc.execute(text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL)"))
            wc.execute(text("DELETE FROM alembic_version"))
            for version in versions:
                wc.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": version})
    finally:
        reader.dispose()
        writer.dispose()


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
    """Create / update the assignment's definition in the instructor gradebook from the template's (one transaction)."""
    from nbgrader.api import MissingEntry

    ta = template_gb.find_assignment(aid)
    with one_transaction(gb):
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
    """Write one student's result into the instructor gradebook, in one transaction (manual scores kept).

    One transaction per student, not per run: results arrive over the whole run (hours for
    a large class), and a run-wide transaction would hold the gradebook (SQLite) or the
    touched rows (PostgreSQL) against the formgrader's writes all that time, and an
    interruption would throw away every student already graded, whose autograded files
    and markers are installed as each student completes. Per student, a marker on disk
    always means that student's scores are committed, and a reader never sees a student
    half-written.
    """
    from nbgrader.api import MissingEntry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nbgrader's own SQLAlchemy autoflush warnings
        with one_transaction(gb):
            gb.update_or_create_student(result.student)
            kwargs = {"timestamp": result.timestamp} if result.timestamp else {}
            gb.update_or_create_submission(aid, result.student, **kwargs)
            for nbname, entry in result.notebooks.items():
                try:
                    subnb = gb.find_submission_notebook(nbname, aid, result.student)
                except MissingEntry:
                    continue
                _merge_notebook(subnb, entry)


@contextlib.contextmanager
def one_transaction(gb) -> Iterator[None]:
    """Every write made through ``gb`` in the block is committed together at its end, or rolled back.

    nbgrader's ``add_*`` / ``update_or_create_*`` helpers commit after each row (a new
    submission is committed with empty grades, before any score is set). Inside this block
    their commits only flush: the rows reach the database inside the open transaction,
    invisible to other connections until the one commit at the end.
    """
    session = gb.db
    session.commit = session.flush  # shadows the session's commit for this block only
    try:
        yield
    except BaseException:
        del session.commit
        session.rollback()
        raise
    del session.commit
    session.commit()


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


def copy_duedate(db: GradebookUrl | Path, template_db: Path, aid: str, course_id: str) -> None:
    """The instructor's due date for ``aid`` into the template (late penalties as nbgrader computes them)."""
    from nbgrader.api import MissingEntry

    db = _as_url(db)
    if not db.exists():
        return
    try:
        with open_gradebook(db.url, course_id) as gb:
            duedate = gb.find_assignment(aid).duedate
    except (MissingEntry, Exception):  # noqa: BLE001 - no due date known
        return
    if duedate is not None:
        with open_gradebook(f"sqlite:///{template_db}", course_id) as tgb:
            tgb.update_or_create_assignment(aid, duedate=duedate)
