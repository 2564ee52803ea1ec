"""The gradebook in a real PostgreSQL server: same scores as SQLite, consistent reads during merges, backups.

A PostgreSQL server from Debian's binaries is started for this module in a temporary data
directory, on a free port of 127.0.0.1 (its unix socket in the same directory), as the
``postgres`` system user when the tests run as root (the server refuses root), and
stopped at the end whatever happened. Each test grades into its own database.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from autograde_course import build_course, needs_bwrap, run_grader
from fixtures.autograde import catalogue

from cnncourse.grading import COURSE_ID, generate
from cnngrade import gradebook
from cnngrade.gradebook import GradebookUrl, backup, copy_gradebook, merge
from cnngrade.records import Grade, NotebookResult, Result

AID = "ag_tiny"
CLASS = ("honest", "blank", "partial", "gradebook_delete")  # full marks, zero, partial, hostile


def postgres_bin() -> Path | None:
    """Debian's ``/usr/lib/postgresql/<version>/bin`` of the newest version installed, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running PostgreSQL server: its binaries, port and socket folder; databases made on demand."""

    bindir: Path
    folder: Path
    port: int
    user: str | None          # the system user the server runs as (None: this process's user)
    created: list[str] = field(default_factory=list)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> GradebookUrl:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        self.created.append(name)
        return GradebookUrl(self.url(name))

    def run(self, *args: str) -> subprocess.CompletedProcess:
        """A server command (initdb, pg_ctl) as the server's user, in its folder."""
        return subprocess.run([str(self.bindir / args[0]), *args[1:]], cwd=self.folder, user=self.user,
                              group=self.user, capture_output=True, text=True, timeout=120)


def _start(bindir: Path) -> Server:
    folder = Path(tempfile.mkdtemp(prefix="cnngrade-pg-"))
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        shutil.chown(folder, user, user)
    server = Server(bindir, folder, free_port(), user)
    try:
        _init_and_start(server)
    except BaseException:
        _stop(server)
        raise
    return server


def _init_and_start(server: Server) -> None:
    folder = server.folder
    init = server.run("initdb", "-D", str(folder / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                      "--no-sync", "--no-instructions")
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed: {init.stderr or init.stdout}")
    options = (f"-c listen_addresses=127.0.0.1 -p {server.port} -c unix_socket_directories={folder} "
               "-c fsync=off -c full_page_writes=off -c synchronous_commit=off")
    start = server.run("pg_ctl", "-D", str(folder / "data"), "-o", options, "-l", str(folder / "server.log"),
                       "-w", "-t", "60", "start")
    if start.returncode != 0:
        log = (folder / "server.log").read_text(errors="replace") if (folder / "server.log").exists() else ""
        raise RuntimeError(f"pg_ctl start failed: {start.stderr or start.stdout}\n{log[-2000:]}")


def _stop(server: Server) -> None:
    data = server.folder / "data"
    if (data / "postmaster.pid").exists():
        server.run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def pg() -> Iterator[Server]:
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
                    "apt-get install postgresql (.ci/run installs it)")
    server = None
    try:
        server = _start(bindir)
        yield server
    finally:
        if server is not None:
            _stop(server)


def scores(db: GradebookUrl, aid: str = AID) -> dict:
    """Every student's grades, read back through nbgrader's Gradebook API.

    Per student: the submission's score, each notebook's score, and per graded cell
    (auto score, max score, needs manual grade).
    """
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(db.url, course_id=COURSE_ID) as gb:
        for sub in gb.find_assignment(aid).submissions:
            out[sub.student.id] = {
                "score": sub.score,
                "notebooks": {nb.name: (nb.score, {g.name: (g.auto_score, g.max_score, g.needs_manual_grade)
                                                   for g in nb.grades}) for nb in sub.notebooks},
            }
    return out


def manual_grade_of_zoe(db: GradebookUrl) -> float | None:
    """The hand-given grade in another assignment (``hw0``) that no run may touch."""
    from nbgrader.api import Gradebook

    with Gradebook(db.url, course_id=COURSE_ID) as gb:
        return gb.find_grade("q1", "hw0", "hw0", "zoe").manual_score


def pg_restore(server: Server, dump: Path, database: str) -> GradebookUrl:
    """A ``pg_dump`` archive restored into a new database."""
    db = server.create_database(database)
    proc = subprocess.run([str(server.bindir / "pg_restore"), "--no-owner", f"--dbname={db.url}", str(dump)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"pg_restore failed: {proc.stderr}"
    return db


# ------------------------------------------------------------------ (a) same gradebook as SQLite

@pytest.fixture(scope="module")
def graded(pg, tmp_path_factory):
    """The same small class graded into SQLite and into PostgreSQL (the PostgreSQL gradebook starts as
    a copy of the SQLite one: another assignment's hand-given grade included)."""
    cases = [c for c in catalogue.TINY if c.student in CLASS]
    lite_root = build_course(tmp_path_factory.mktemp("lite"), AID, cases)
    pg_root = build_course(tmp_path_factory.mktemp("pg"), AID, cases)
    pg_db = pg.create_database("graded")
    copy_gradebook(GradebookUrl.sqlite(pg_root / "gradebook.db"), pg_db)
    (pg_root / "gradebook.db").unlink()
    config = pg_root / "nbgrader_config.py"
    config.write_text(config.read_text() + f"c.CourseDirectory.db_url = {pg_db.url!r}\n")
    lite = run_grader(lite_root, AID, jobs=2)
    on_pg = run_grader(pg_root, AID, jobs=2)
    return {"lite_root": lite_root, "pg_root": pg_root, "pg_db": pg_db, "lite": lite, "pg": on_pg}


@needs_bwrap
def test_postgres_gradebook_equals_sqlite_gradebook(graded):
    (lite_run, lite_code, lite_out), (pg_run, pg_code, pg_out) = graded["lite"], graded["pg"]
    assert (lite_code, pg_code) == (0, 0), f"SQLite run:\n{lite_out}\nPostgreSQL run:\n{pg_out}"
    lite = scores(GradebookUrl.sqlite(graded["lite_root"] / "gradebook.db"))
    on_pg = scores(graded["pg_db"])
    assert set(lite) == set(CLASS), f"SQLite gradebook has {sorted(lite)}"
    assert on_pg == lite, f"PostgreSQL {on_pg}\n!= SQLite {lite}"
    assert {s: lite[s]["score"] for s in lite} == {s: o.score for s, o in pg_run.outcomes.items()} \
        == {s: o.score for s, o in lite_run.outcomes.items()}, "the runs' tables disagree with the gradebooks"
    assert len({lite[s]["score"] for s in lite}) >= 3, "the class should span several different scores"
    assert not (graded["pg_root"] / "gradebook.db").exists(), "the PostgreSQL run wrote an SQLite gradebook"


@needs_bwrap
def test_postgres_run_keeps_other_grades_and_rerun_skips(graded):
    assert manual_grade_of_zoe(graded["pg_db"]) == 7.0
    rerun, code, out = run_grader(graded["pg_root"], AID, jobs=1)
    assert code == 0 and {o.status for o in rerun.outcomes.values()} == {"skipped"}, out


def test_db_url_names_the_backend(tmp_path):
    from traitlets.config import Config

    from cnngrade.errors import InstructorError
    from cnngrade.run import course_gradebook

    config = Config()
    config.CourseDirectory.db_url = "sqlite:///grades/gb.db"
    assert course_gradebook(tmp_path, config)[0] == GradebookUrl.sqlite(tmp_path / "grades" / "gb.db")
    config.CourseDirectory.db_url = "postgresql://grader:secret@127.0.0.1:5432/course"
    db = course_gradebook(tmp_path, config)[0]
    assert (db.backend, db.path, db.exists()) == ("postgresql", None, True)
    assert "secret" not in db.shown() and "secret" not in str(db)
    config.CourseDirectory.db_url = "mysql://grader@127.0.0.1/course"
    with pytest.raises(InstructorError, match="mysql are not supported"):
        course_gradebook(tmp_path, config)


@needs_bwrap
def test_an_unreachable_server_stops_the_run_before_grading(tmp_path, capsys):
    from cnngrade.cli import main

    root = tmp_path / "course"
    shutil.copytree(catalogue.COURSE / "source" / AID, root / "source" / AID)
    (root / "submitted" / "ann" / AID).mkdir(parents=True)
    shutil.copy(root / "source" / AID / f"{AID}.ipynb", root / "submitted" / "ann" / AID)
    (root / "nbgrader_config.py").write_text(
        f"c = get_config()  # noqa: F821\nc.CourseDirectory.db_url = 'postgresql://postgres@127.0.0.1:{free_port()}/x'\n")
    assert main([AID, "--root", str(root), "--jobs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be reached" in err[0], err
    assert not (root / "autograded").exists() and not (root / "gradebook.db").exists()


# ------------------------------------------------------------------ (b) readers see whole students

@pytest.fixture(scope="module")
def tiny_definition(tmp_path_factory) -> Path:
    """An SQLite gradebook holding ag_tiny's definition (as nbgrader's generate_assignment writes it)."""
    root = tmp_path_factory.mktemp("definition")
    shutil.copytree(catalogue.COURSE / "source" / AID, root / "source" / AID)
    generate(root, [AID], root / "gradebook.db")
    return root / "gradebook.db"


def class_results(db: GradebookUrl, students: list[str]) -> dict[str, Result]:
    """A result per student, each with a different nonzero score on every graded cell."""
    from nbgrader.api import Gradebook

    with Gradebook(db.url, course_id=COURSE_ID) as gb:
        notebooks = [(nb.name, [(c.name, c.max_score) for c in nb.grade_cells])
                     for nb in gb.find_assignment(AID).notebooks]
    results = {}
    for k, student in enumerate(students):
        grades = {nb: NotebookResult(grades={cell: Grade(top * (k + 1) / (len(students) + 1), top)
                                             for cell, top in cells}) for nb, cells in notebooks}
        results[student] = Result(student, "graded", AID, notebooks=grades)
    return results


@dataclass
class Reader:
    """A formgrader-like reader polling the gradebook from its own connection while merges run.

    Every read must show each student either not submitted, or submitted with exactly the
    final scores. ``read_once`` makes one read happen while a merge is half-way.
    """

    db: GradebookUrl
    final: dict[str, dict[str, float]]
    problems: list[str] = field(default_factory=list)
    reads: int = 0
    mid_merge_reads: int = 0
    request: threading.Event = field(default_factory=threading.Event)
    answered: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def check(self, gb) -> None:
        from nbgrader.api import MissingEntry

        for row in gb.submission_dicts(AID):  # the formgrader's "Manage Submissions" query
            want = sum(self.final[row["student"]].values())
            if abs(row["score"] - want) > 1e-9:
                self.problems.append(f"submission_dicts: {row['student']} scored {row['score']}, not {want}")
        for student, want in self.final.items():
            try:
                sub = gb.find_submission(AID, student)
            except MissingEntry:
                continue
            got = {g.name: g.auto_score for nb in sub.notebooks for g in nb.grades}
            if got != want:
                self.problems.append(f"{student} half-written: {got}")

    def poll(self) -> None:
        from nbgrader.api import Gradebook

        with Gradebook(self.db.url, course_id=COURSE_ID) as gb:
            while not self.done.is_set():
                mid = self.request.is_set()
                gb.db.rollback()
                gb.db.expire_all()
                try:
                    self.check(gb)
                except Exception as exc:  # noqa: BLE001 - reported by the test, never a stuck merge
                    self.problems.append(f"read failed: {type(exc).__name__}: {exc}")
                self.reads += 1
                if mid:
                    self.mid_merge_reads += 1
                    self.request.clear()
                    self.answered.set()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_reader_never_sees_a_half_merged_student(backend, pg, tiny_definition, tmp_path, monkeypatch):
    if backend == "sqlite":
        db = GradebookUrl.sqlite(tmp_path / "gradebook.db")
    else:
        db = pg.create_database("concurrent")
    copy_gradebook(GradebookUrl.sqlite(tiny_definition), db)
    students = ["ann", "bob", "cyd", "dan"]
    results = class_results(db, students)
    final = {s: {name: g.auto_score for nb in r.notebooks.values() for name, g in nb.grades.items()}
             for s, r in results.items()}
    reader = Reader(db, final)
    real = gradebook._merge_notebook

    def half_way(subnb, entry):  # the merge has written the submission and these grades, not yet committed
        real(subnb, entry)
        reader.answered.clear()
        reader.request.set()
        assert reader.answered.wait(30), "the reader did not read during the merge"

    monkeypatch.setattr(gradebook, "_merge_notebook", half_way)
    thread = threading.Thread(target=reader.poll, daemon=True)
    thread.start()
    try:
        with gradebook.open_gradebook(db.url, COURSE_ID) as gb:
            for student in students:
                merge(gb, AID, results[student])
    finally:
        reader.done.set()
        thread.join(30)
    assert not thread.is_alive(), "the reader is stuck"
    assert reader.mid_merge_reads == len(students), f"{reader.mid_merge_reads} reads during a merge"
    assert not reader.problems, "\n".join(reader.problems[:5])
    assert {s: {n: v for nb in d["notebooks"].values() for n, (v, _, _) in nb[1].items()}
            for s, d in scores(db).items()} == final


def test_a_failing_merge_leaves_no_trace(pg, tiny_definition):
    db = pg.create_database("rollback")
    copy_gradebook(GradebookUrl.sqlite(tiny_definition), db)
    result = class_results(db, ["eve"])["eve"]
    result.timestamp = "not a date"  # nbgrader refuses it after the student row was written
    with gradebook.open_gradebook(db.url, COURSE_ID) as gb:
        with pytest.raises(Exception):  # noqa: B017, PT011 - whatever nbgrader raises
            merge(gb, AID, result)
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db.url, course_id=COURSE_ID) as gb, pytest.raises(MissingEntry):
        gb.find_student("eve")


# ------------------------------------------------------------------ (c) backups of both backends

@needs_bwrap
def test_each_run_backs_up_its_gradebook_before_writing(graded, pg):
    lite_backups = sorted(graded["lite_root"].glob("gradebook.db.bak-*"))
    dumps = sorted(graded["pg_root"].glob("gradebook-graded.bak-*.dump"))
    assert len(lite_backups) == 1 and len(dumps) == 1, (lite_backups, dumps)
    for before in (GradebookUrl.sqlite(lite_backups[0]), pg_restore(pg, dumps[0], "restored_run_backup")):
        assert scores(before) == {}, f"{before}: the backup was taken after grading"
        assert manual_grade_of_zoe(before) == 7.0


@pytest.mark.parametrize("use_pg_dump", [True, False], ids=["pg_dump", "export"])
def test_postgres_backup_holds_the_whole_gradebook(use_pg_dump, pg, tiny_definition, tmp_path):
    db = pg.create_database(f"backup_{int(use_pg_dump)}")
    copy_gradebook(GradebookUrl.sqlite(tiny_definition), db)
    with gradebook.open_gradebook(db.url, COURSE_ID) as gb:
        for result in class_results(db, ["ann", "bob"]).values():
            merge(gb, AID, result)
    live = scores(db)
    target = backup(db, tmp_path, use_pg_dump=use_pg_dump)
    assert target is not None and target.parent == tmp_path
    assert target.name.startswith(f"gradebook-backup_{int(use_pg_dump)}.bak-"), target.name
    if use_pg_dump:
        assert target.suffix == ".dump"
        restored = pg_restore(pg, target, "restored_dump")
    else:
        assert target.suffix == ".db"
        assert scores(GradebookUrl.sqlite(target)) == live, "the export differs from the live gradebook"
        restored = pg.create_database("restored_export")
        copy_gradebook(GradebookUrl.sqlite(target), restored)
    assert scores(restored) == live and set(live) == {"ann", "bob"}


def test_backup_of_an_empty_postgres_database_is_none(pg, tmp_path):
    assert backup(pg.create_database("empty"), tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_sqlite_backup_is_a_gradebook_copy(tiny_definition, tmp_path):
    db = GradebookUrl.sqlite(tmp_path / "gradebook.db")
    copy_gradebook(GradebookUrl.sqlite(tiny_definition), db)
    with gradebook.open_gradebook(db.url, COURSE_ID) as gb:
        merge(gb, AID, class_results(db, ["ann"])["ann"])
    target = backup(db)
    assert target is not None and target.name.startswith("gradebook.db.bak-")
    assert scores(GradebookUrl.sqlite(target)) == scores(db) != {}
