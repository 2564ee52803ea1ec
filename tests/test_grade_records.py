"""Records, report, files and the gradebook steps of the grading service, without any kernel."""

from __future__ import annotations

import json
import sqlite3

import pytest

from cnncourse.grading import ensure_env_on_path
from cnngrade import report
from cnngrade.execute import GuardLink, literal_text, marker
from cnngrade.files import copy_regular_files, hash_dir, install_dir
from cnngrade.gradebook import (
    backup,
    memoize_alembic_version,
    merge,
    sync_assignment,
    zero_notebooks,
)
from cnngrade.records import (
    RECORD_VERSION,
    Grade,
    Job,
    Marker,
    NotebookResult,
    Outcome,
    RecordError,
    Result,
)


def test_job_and_result_round_trip_as_plain_json():
    job = Job("ann", "hw1", "/s", "/t", "/w", ["hw1"], {"limits": {}}, "h", "sh", 120.0, 900.0)
    assert Job.from_json(job.to_json()) == job
    result = Result("ann", notebooks={"hw1": NotebookResult({"q1": Grade(1.0, 2.0), "q2": Grade(None, 3.0)})})
    back = Result.from_json(result.to_json())
    assert back == result and back.totals() == (1.0, 5.0)
    assert json.loads(result.to_json())["version"] == RECORD_VERSION


def test_records_of_another_version_are_refused():
    data = json.loads(Result("ann").to_json())
    data["version"] = RECORD_VERSION + 1
    with pytest.raises(RecordError):
        Result.from_json(json.dumps(data))
    with pytest.raises(RecordError):
        Job.from_json("[1, 2]")


def test_marker_written_and_read_back(tmp_path):
    Marker("h", "s", 3.0, 8.0, ["a reason"], "2026-01-01 00:00:00").write(tmp_path)
    assert Marker.read(tmp_path).score == 3.0
    (tmp_path / ".cnnlab-autograde.json").write_text("{not json")
    assert Marker.read(tmp_path) is None


def test_report_rows_table_and_file(tmp_path):
    outcomes = {"bob": Outcome("bob", 0, 8, ["x" * 200]), "al": Outcome("al", 8, 8),
                "cy": Outcome("cy", None, None, ["grader error: boom"], "internal")}
    table = report.table(outcomes).splitlines()
    assert [line.split()[0] for line in table[2:]] == ["al", "bob", "cy"]
    assert table[3].endswith("...") and len(table[3]) < 170
    assert report.summary(outcomes, 1.0, None).startswith("graded 2, unchanged 0, NOT graded")
    report.write_report(tmp_path / "r.txt", "hw1", outcomes)
    assert "\t- " + "x" * 200 in (tmp_path / "r.txt").read_text()


def test_guard_answers_count_only_with_the_key():
    link = GuardLink()
    text = "math.isclose was replaced"
    good = f"{link.mac(f'begin|N|restored|{text}')}|restored|{text}"
    assert link.answer("begin", "N", "error", good) == ("restored", text)
    assert link.answer("begin", "N", "error", good.replace("|restored|", "|ok|"))[0] == "invalid", "status changed"
    assert link.answer("begin", "M", "error", good)[0] == "invalid", "an answer for another test"
    assert link.answer("verdict", "N", "error", good)[0] == "invalid", "an answer to another question"
    assert link.answer("begin", "N", "ok", good)[0] == "invalid", "a value, not the guard's raised answer"
    assert GuardLink().answer("begin", "N", "error", good)[0] == "invalid", "another kernel's key"
    assert marker("begin", "N") == "(lambda: 'cnnlab-guard:begin:N').__code__"
    assert literal_text("'a; b'") == "a; b" and literal_text("__import__('os')") == "__import__('os')"


def test_copy_regular_files_skips_links_and_limits(tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "d" / "b.txt").write_text("bb")
    (src / "big.bin").write_bytes(b"x" * 100)
    (src / "link").symlink_to("/etc/passwd")
    notes = copy_regular_files(src, tmp_path / "out", limit_bytes=50)
    assert sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file()) == ["a.txt", "b.txt"]
    assert any("link (not a regular file)" in n for n in notes) and any("big.bin" in n for n in notes)
    before = hash_dir(src)
    (src / "a.txt").write_text("A")
    assert hash_dir(src) != before


def test_install_dir_swaps_in_read_only_files(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    (src / "nb.ipynb").write_text("{}")
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    install_dir(src, dest, mode=0o444)
    assert [p.name for p in dest.iterdir()] == ["nb.ipynb"]
    assert (dest / "nb.ipynb").stat().st_mode & 0o777 == 0o444
    install_dir(src, dest, mode=0o444)  # a second install replaces read-only files
    assert (dest / "nb.ipynb").read_text() == "{}"


def _gradebook(path, aid="hw1"):
    from nbgrader.api import Gradebook

    ensure_env_on_path()  # nbgrader runs `alembic` from PATH (once: its answer is memoized)
    memoize_alembic_version()
    gb = Gradebook(f"sqlite:///{path}", course_id="c")
    gb.add_assignment(aid)
    gb.add_notebook(aid, aid)
    gb.add_grade_cell("q1", aid, aid, max_score=2, cell_type="code")
    gb.add_grade_cell("q2", aid, aid, max_score=3, cell_type="code")
    gb.add_source_cell("q1", aid, aid, cell_type="code", locked=True, source="assert 1", checksum="x")
    gb.add_source_cell("q2", aid, aid, cell_type="code", locked=True, source="assert 2", checksum="y")
    return gb


def test_merge_writes_auto_scores_and_keeps_manual_ones(tmp_path):
    with _gradebook(tmp_path / "gb.db") as gb:
        merge(gb, "hw1", Result("ann", notebooks={"hw1": NotebookResult({"q1": Grade(2.0, 2.0), "q2": Grade(0.0, 3)})}))
        grade = gb.find_grade("q2", "hw1", "hw1", "ann")
        grade.manual_score = 1.5
        gb.db.commit()
        zeros = zero_notebooks(gb.find_assignment("hw1"))
        merge(gb, "hw1", Result("ann", notebooks=zeros))
        q1, q2 = gb.find_grade("q1", "hw1", "hw1", "ann"), gb.find_grade("q2", "hw1", "hw1", "ann")
        assert (q1.auto_score, q2.auto_score, q2.manual_score) == (0.0, 0.0, 1.5)
        assert q2.needs_manual_grade and not q1.needs_manual_grade


def test_sync_assignment_adds_then_reports_changed_cells(tmp_path):
    from nbgrader.api import Gradebook

    with _gradebook(tmp_path / "t.db") as tgb, Gradebook(f"sqlite:///{tmp_path / 'i.db'}", course_id="c") as gb:
        assert sync_assignment(gb, tgb, "hw1") == ["assignment hw1 added to the gradebook from source/hw1"]
        assert sync_assignment(gb, tgb, "hw1") == []
        gb.update_or_create_grade_cell("q9", "hw1", "hw1", max_score=1, cell_type="code")
        assert "cells no longer in the source: hw1/q9" in sync_assignment(gb, tgb, "hw1")[0]


def test_backup_is_a_consistent_copy(tmp_path):
    db = tmp_path / "gradebook.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE t (x)")
        con.execute("INSERT INTO t VALUES (42)")
    first, second = backup(db), backup(db)
    assert first != second and first.name.startswith("gradebook.db.bak-")
    with sqlite3.connect(second) as con:
        assert con.execute("SELECT x FROM t").fetchall() == [(42,)]
    assert backup(tmp_path / "none.db") is None


def test_copy_out_never_follows_links(tmp_path):
    import os

    from cnngrade.files import copy_out_nofollow

    work = tmp_path / "home" / "student" / "work"
    (work / "sub").mkdir(parents=True)
    (work / "out.txt").write_text("kept")
    (work / "sub" / "deep.csv").write_text("1,2")
    (work / "nb.ipynb").write_text("{}")
    (work / "secret").symlink_to("/etc/hostname")
    (work / "linkdir").symlink_to("/etc")
    os.mkfifo(work / "pipe")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert copy_out_nofollow(fd, ("home", "student", "work"), tmp_path / "dest") == []
    finally:
        os.close(fd)
    copied = sorted(str(p.relative_to(tmp_path / "dest")) for p in (tmp_path / "dest").rglob("*"))
    assert copied == ["out.txt", "sub", "sub/deep.csv"]
    (tmp_path / "home" / "student").rename(tmp_path / "home" / "real")
    (tmp_path / "home" / "student").symlink_to(tmp_path / "home" / "real")  # a linked path component
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert copy_out_nofollow(fd, ("home", "student", "work"), tmp_path / "dest2") == [
            "files written by the notebook could not be read"]
    finally:
        os.close(fd)
