"""Lectures: each ends with its interview questions, every question is answered once, links resolve."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from cnncourse.interviews import (
    anchors,
    heading_anchor,
    lecture_answers,
    load_questions,
    markdown_cells,
    normalise,
    parse_answers,
    split_cross_link,
)
from cnncourse.paths import lectures

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = load_questions(ROOT / "curriculum" / "interview-questions.tsv")
TOPICS = sorted({q.topic for q in QUESTIONS})
LECTURES = lectures(ROOT)
LINK = re.compile(r"\]\(#([^)\s]+)\)")
MIN_WORDS = 40


def test_question_list_is_complete():
    assert len(QUESTIONS) == 147
    assert len({q.id for q in QUESTIONS}) == len(QUESTIONS)
    assert all(q.text.strip() and q.topic for q in QUESTIONS)


@pytest.mark.parametrize("topic", TOPICS)
def test_every_topic_has_a_lecture(topic):
    assert (ROOT / "notebooks" / f"{topic}.ipynb").is_file(), f"notebooks/{topic}.ipynb is missing"


def test_every_question_is_answered_exactly_once_in_its_lecture():
    asked = Counter(
        (a.topic, normalise(q)) for path in LECTURES for a in lecture_answers(path) for q in a.questions
    )
    problems = []
    for q in QUESTIONS:
        n = asked[(q.topic, normalise(q.text))]
        if n != 1:
            problems.append(f"{q.topic}: asked {n} times (want 1): {q.text}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.stem)
def test_lecture_answers_are_paragraphs_that_link_their_section(path):
    cells = markdown_cells(path)
    known = anchors(cells)
    answers = parse_answers(path.stem, cells)
    assert answers, "the interview section has no questions"
    for a in answers:
        label = a.questions[0][:60]
        assert a.words >= MIN_WORDS, f"{label!r}: the answer is too short ({a.words} words)"
        assert a.anchors, f"{label!r}: link the section that explains it"
        missing = [x for x in a.anchors if x not in known]
        assert not missing, f"{label!r}: links to missing sections {missing}"


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.stem)
def test_lecture_links_point_to_headings(path):
    cells = markdown_cells(path)
    known = anchors(cells)
    broken = sorted({a for c in cells for a in LINK.findall(c) if a not in known})
    assert not broken, f"links to missing headings: {broken}"


@pytest.mark.parametrize("path", LECTURES + sorted((ROOT / "source").glob("*/*.ipynb")), ids=lambda p: p.stem)
def test_no_internal_question_ids_shown(path):
    text = "\n".join(markdown_cells(path))
    assert not re.search(r"\bIQ\d{3}\b", text), "question ids are bookkeeping: do not show them to learners"


EXERCISE_LINK = re.compile(r"\]\(\.\./\.\./notebooks/(?P<nb>[^)#\s]+\.ipynb)(?:#(?P<fragment>[^)\s]+))?\)")
LECTURE_LINK = re.compile(r"\]\((?P<nb>[0-9]{2}_[A-Za-z0-9_]+\.ipynb)(?:#(?P<fragment>[^)\s]+))?\)")


def check_cross_link(m: re.Match) -> None:
    """A link into a lecture: the lecture exists and, in JupyterLab's '#heading=' form, so does the section."""
    lecture = ROOT / "notebooks" / m["nb"]
    assert lecture.is_file(), f"link to missing lecture {m['nb']}"
    if m["fragment"]:
        # JupyterLab scrolls another notebook to a section only for '#heading=Anchor'
        assert m["fragment"].startswith("heading="), f"use '#heading=' in links to another notebook: {m[0]}"
        anchor = split_cross_link(m["fragment"])
        assert anchor in anchors(markdown_cells(lecture)), f"link to missing section {m['nb']}#{anchor}"


@pytest.mark.parametrize("path", sorted((ROOT / "source").glob("*/*.ipynb")), ids=lambda p: p.stem)
def test_exercise_links_point_to_lecture_headings(path):
    """Exercises link back to the lecture sections they draw on; every such link must resolve."""
    links = [m for c in markdown_cells(path) for m in EXERCISE_LINK.finditer(c)]
    assert links, "an exercise notebook links back to its lecture"
    for m in links:
        check_cross_link(m)


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_links_between_lectures_resolve(path):
    """A lecture that mentions another topic links to it, in the form JupyterLab scrolls to."""
    for m in (m for c in markdown_cells(path) for m in LECTURE_LINK.finditer(c)):
        check_cross_link(m)


def test_heading_anchor_matches_jupyterlab():
    assert heading_anchor(" Add or concatenate ") == "Add-or-concatenate"


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_learners_are_never_sent_to_the_answer_key(path):
    """source/ holds solutions and hidden tests: lectures link to the student copy in release/ instead."""
    text = "\n".join(markdown_cells(path))
    assert not re.search(r"\]\((\.\./)+source/", text), "link to release/NN_topic/, not the answer key in source/"

