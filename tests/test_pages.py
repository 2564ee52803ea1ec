"""Generated pages (interview index, topic tables) are current, complete, and their links resolve."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from cnncourse.catalog import EXERCISE, topics
from cnncourse.interviews import (
    anchors,
    load_questions,
    markdown_cells,
    normalise,
    split_cross_link,
)
from cnncourse.pages import HOME, INDEX, stale
from cnncourse.paths import ENV_VAR, course_root, lectures

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\((?P<file>[^)#\s]+\.ipynb)(?:#(?P<anchor>[^)\s]+))?\)")


def test_generated_pages_are_current():
    assert not stale(ROOT), "run `make index`"


def test_index_lists_every_question_once_and_links_resolve():
    text = "\n".join(markdown_cells(ROOT / INDEX))
    listed = Counter(normalise(m) for m in re.findall(r"^- \[(.+?)\]\(", text, re.M))
    missing = [q.text for q in load_questions(ROOT / "curriculum" / "interview-questions.tsv")
               if listed[normalise(q.text)] != 1]
    assert not missing, f"{len(missing)} questions not listed exactly once, e.g. {missing[:3]}"
    for m in LINK.finditer(text):
        target = ROOT / "notebooks" / m["file"]
        assert target.is_file(), f"index links to a missing notebook {m['file']}"
        assert m["anchor"] and m["anchor"].startswith("heading="), f"index link without a JupyterLab section: {m[0]}"
        assert split_cross_link(m["anchor"]) in anchors(markdown_cells(target)), f"index links to a missing section {m[0]}"


def test_home_links_resolve_to_lectures_and_student_copies():
    text = "\n".join(markdown_cells(ROOT / HOME))
    for m in LINK.finditer(text):
        file = m["file"].replace("../mywork/", "../release/")  # mywork/ is the learner's copy of release/
        assert (ROOT / "notebooks" / file).resolve().is_file(), f"home links to a missing notebook {m['file']}"
    assert "../source/" not in text, "the home page never sends learners to the answer key"


def test_every_topic_has_exercises_with_points_and_headers():
    found = topics(ROOT)
    assert [t.slug for t in found] == [p.stem for p in lectures(ROOT)]
    for t in found:
        assert t.exercises, f"{t.slug}: no '### Exercise N: name (P points, about M minutes)' header found"
        assert t.points > 0, f"{t.slug}: no graded points"


def test_exercise_header_format():
    m = EXERCISE.search("### Exercise 3: conv2d_naive (4 points, about 40 minutes)")
    assert (m["n"], m["name"], m["points"], m["minutes"]) == ("3", "conv2d_naive", "4", "40")
    assert EXERCISE.search("### Exercise 1: box_iou (1 point)")["minutes"] is None


def test_course_root_from_cwd_and_env(tmp_path, monkeypatch):
    course = tmp_path / "course"
    (course / "source").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text("")
    (course / "a" / "b").mkdir(parents=True)
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert course_root(course / "a" / "b") == course.resolve()
    with pytest.raises(FileNotFoundError, match=ENV_VAR):
        course_root(tmp_path)
    monkeypatch.setenv(ENV_VAR, str(course))
    assert course_root(tmp_path) == course.resolve()
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not a course folder"):
        course_root()


def test_stored_notebooks_carry_full_language_info():
    """JupyterLab fills in language_info on open; storing it in full keeps a fresh notebook unmodified."""
    paths = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "source").glob("*/*.ipynb"))
    incomplete = [p.relative_to(ROOT).as_posix() for p in paths
                  if "pygments_lexer" not in json.loads(p.read_text())["metadata"].get("language_info", {})]
    assert not incomplete, f"notebooks without the kernel's full language_info: {incomplete}"
