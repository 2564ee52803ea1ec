"""Lectures: each ends with its interview questions, every question is answered once, links resolve."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from cnnlab.grading import REPO

QUESTIONS_TSV = REPO.parent / "shared" / "interview-questions.tsv"

# Which lecture answers which of the course's interview questions (ids of interview-questions.tsv).
PLAN: dict[str, str] = {
    "01_convolution": "011 012 014 015 017 018 021 030 031 036 037 039 040 048 049 050 051 052 053 054 058 059 060 "
                      "066 067 068 069 070 071 072 073",
    "02_pooling": "002 016 032 038 055 056 057 064 108 109",
    "03_backprop": "034 035 061 062 063",
    "04_training": "004 010 013 022 024 047 082 083 084 085 086 087 088 089 090",
    "05_architectures": "003 005 042 065 096 098 104 105 106 107",
    "06_resnet": "009 020 023 028 029 033 041 078 079 080 081 097 099",
    "07_efficient": "006 007 019 026 043 075 076 100 101 110 111 112 113 138 139 140 141",
    "08_transfer": "044 091 092 093 094 095",
    "09_detection": "114 115 116 117 118 119 120 121 125 126 127",
    "10_segmentation": "001 008 045 046 074 077 102 103 122 123 124",
    "11_interpretability": "025 027 128 129 130 131 132",
    "12_compression": "133 134 135 136 137",
    "13_beyond": "142 143 144 145 146 147",
}
LECTURES = sorted((REPO / "notebooks").glob("*.ipynb"))
HEADING = re.compile(r"^#{1,6} +(.+?)\s*$", re.M)
LINK = re.compile(r"\]\(#([^)\s]+)\)")
QID = re.compile(r"\bIQ(\d{3})\b")


def _questions() -> dict[str, str]:
    if not QUESTIONS_TSV.is_file():
        pytest.skip(f"{QUESTIONS_TSV} not found (the course repo expects ../shared beside it)")
    with QUESTIONS_TSV.open() as f:
        return {row["id"][2:]: row["question"] for row in csv.DictReader(f, delimiter="\t")}


def _markdown(path: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]


def _interview_section(cells: list[str]) -> str:
    start = next((i for i, c in enumerate(cells) if re.search(r"^## Interview questions\s*$", c, re.M)), None)
    assert start is not None, "no '## Interview questions' section"
    return "\n".join(cells[start:])


def test_plan_covers_every_question_exactly_once():
    ids = [q for v in PLAN.values() for q in v.split()]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(_questions())


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.stem)
def test_lecture_answers_its_interview_questions(path):
    questions = _questions()
    section = _interview_section(_markdown(path))
    found = set(QID.findall(section))
    expected = set(PLAN[path.stem].split())
    assert found == expected, f"missing {sorted(expected - found)}, unexpected {sorted(found - expected)}"
    for qid in expected:
        # each answer quotes its question and is a real paragraph with a link to the lecture section
        block = section.split(f"IQ{qid}", 1)[1].split("**IQ", 1)[0]
        assert questions[qid][:25].lower() in block.lower(), f"IQ{qid}: quote the question"
        assert len(block.split()) >= 40, f"IQ{qid}: the answer is too short ({len(block.split())} words)"
        assert LINK.search(block), f"IQ{qid}: link the section that explains it"


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.stem)
def test_lecture_links_point_to_headings(path):
    cells = _markdown(path)
    anchors = {h.replace(" ", "-") for c in cells for h in HEADING.findall(c)}
    broken = sorted({a for c in cells for a in LINK.findall(c) if a not in anchors})
    assert not broken, f"links to missing headings: {broken}"


EXERCISE_LINK = re.compile(r"\]\(\.\./\.\./notebooks/(?P<nb>[^)#\s]+\.ipynb)(?:#(?P<anchor>[^)\s]+))?\)")


@pytest.mark.parametrize("path", sorted((REPO / "source").glob("*/*.ipynb")), ids=lambda p: p.stem)
def test_exercise_links_point_to_lecture_headings(path):
    """Exercises link back to the lecture sections they draw on; every such link must resolve."""
    links = [m for c in _markdown(path) for m in EXERCISE_LINK.finditer(c)]
    assert links, "an exercise notebook links back to its lecture"
    for m in links:
        lecture = REPO / "notebooks" / m["nb"]
        assert lecture.is_file(), f"link to missing lecture {m['nb']}"
        if m["anchor"]:
            anchors = {h.replace(" ", "-") for c in _markdown(lecture) for h in HEADING.findall(c)}
            assert m["anchor"] in anchors, f"link to missing section {m['nb']}#{m['anchor']}"
