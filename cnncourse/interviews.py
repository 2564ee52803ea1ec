"""The interview questions the course answers, and where each lecture answers them.

Every lecture ends with a ``## Interview questions`` section. In it, a question is a
markdown line that is bold from start to end (``**What is pooling?**``); the lines
after it, up to the next question, are its answer. Several question lines in a row
share one answer (near-duplicate phrasings of one question). The course's list of
questions is ``curriculum/interview-questions.tsv`` (id, topic, level, question): the
ids are for bookkeeping only and never appear in a notebook.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

from cnncourse.nbmeta import METADATA
from cnncourse.paths import lectures

SECTION = re.compile(r"^## Interview questions\s*$", re.M)
QUESTION_LINE = re.compile(r"^\*\*(?P<q>[^*].*?)\*\*\s*$")
LINK = re.compile(r"\]\(#(?P<anchor>[^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(?P<text>.+?)\s*$", re.M)


@dataclass(frozen=True)
class Question:
    """One row of ``interview-questions.tsv``."""

    id: str
    topic: str
    level: str
    text: str


@dataclass(frozen=True)
class Answer:
    """One answer in a lecture's closing section, with the question lines it answers."""

    topic: str
    questions: tuple[str, ...]
    text: str

    @property
    def anchors(self) -> list[str]:
        """The in-notebook sections the answer links to, in order."""
        return [m["anchor"] for m in LINK.finditer(self.text)]

    @property
    def words(self) -> int:
        return len(self.text.split())


def normalise(text: str) -> str:
    """Compare questions case- and whitespace-insensitively."""
    return " ".join(text.split()).lower()


def load_questions(path: Path) -> list[Question]:
    """Read the question list; a missing file is an error, not an empty list."""
    with Path(path).open(newline="") as f:
        return [Question(r["id"], r["topic"], r["level"], r["question"]) for r in csv.DictReader(f, delimiter="\t")]


def markdown_cells(path: Path) -> list[str]:
    """The markdown cells of a notebook, as text."""
    cells = json.loads(Path(path).read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


INLINE_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


def heading_anchor(heading: str) -> str:
    """The anchor JupyterLab gives a heading: its rendered text with spaces turned into hyphens.

    The rendered text drops inline markup: code backticks, bold markers and link targets.
    """
    text = INLINE_LINK.sub(r"\1", heading).replace("`", "").replace("**", "").replace("__", "")
    return text.strip().replace(" ", "-")


def anchors(cells: list[str]) -> set[str]:
    """Every heading anchor of a notebook's markdown cells."""
    return {heading_anchor(m["text"]) for c in cells for m in HEADING.finditer(c)}


def interview_section(cells: list[str]) -> list[str]:
    """The lines of the closing section, from its heading to the end of the notebook."""
    text = "\n".join(cells)
    m = SECTION.search(text)
    if m is None:
        raise ValueError("no '## Interview questions' section")
    return text[m.end():].splitlines()


def parse_answers(topic: str, cells: list[str]) -> list[Answer]:
    """Split a lecture's closing section into answers, each with its question lines."""
    answers: list[Answer] = []
    questions: list[str] = []
    body: list[str] = []

    def flush() -> None:
        if questions:
            answers.append(Answer(topic, tuple(questions), "\n".join(body).strip()))

    for line in interview_section(cells):
        m = QUESTION_LINE.match(line.strip())
        if m:
            if body and any(b.strip() for b in body):
                flush()
                questions, body = [], []
            questions.append(m["q"].strip())
        elif questions:
            body.append(line)
    flush()
    return answers


def lecture_answers(path: Path) -> list[Answer]:
    """The answers in one lecture, topic taken from the file name."""
    return parse_answers(Path(path).stem, markdown_cells(path))


def cross_link(notebook: str, anchor: str) -> str:
    """A link into another notebook's section, in the ``#heading=`` form JupyterLab navigates to.

    A bare ``other.ipynb#Anchor`` only opens the other notebook at its top; JupyterLab scrolls
    to a section of another notebook for ``#heading=Anchor`` (and ``#cell-id=``).
    """
    return f"{notebook}#heading={anchor}"


def split_cross_link(fragment: str) -> str:
    """The heading anchor of a cross-notebook fragment (``heading=Anchor`` or a bare ``Anchor``)."""
    return fragment.split("heading=", 1)[1] if fragment.startswith("heading=") else fragment


def lecture_title(path: Path) -> str:
    """The lecture's first heading, without its leading hashes."""
    for cell in markdown_cells(path):
        m = HEADING.search(cell)
        if m:
            return m["text"]
    return Path(path).stem


def index_markdown(lectures: list[Path]) -> list[str]:
    """The interview index as markdown cells: one cell per lecture, one line per question."""
    cells = [
        "# Interview index\n\n"
        "Every interview question the course answers, grouped by topic. Each question links to the "
        "lecture section that explains it; the full answer is in that lecture's closing section "
        "(\"answer\"). Questions that are near-duplicates share one answer.\n\n"
        "This page is generated from the lectures by `make index`: edit the lectures, not this page."
    ]
    for path in lectures:
        lines = [f"## {lecture_title(path)}", ""]
        for answer in lecture_answers(path):
            target = cross_link(path.name, answer.anchors[0]) if answer.anchors else path.name
            for q in answer.questions:
                lines.append(f"- [{q}]({target}) ([answer]({cross_link(path.name, 'Interview-questions')}))")
        cells.append("\n".join(lines))
    return cells


def index_notebook(lectures: list[Path]) -> dict:
    """A notebook (nbformat 4.5, no code) holding the interview index, deterministic ids."""
    cells = [
        {"cell_type": "markdown", "id": f"index-{i:02d}", "metadata": {}, "source": _source_lines(text)}
        for i, text in enumerate(index_markdown(lectures))
    ]
    return {"cells": cells, "metadata": METADATA, "nbformat": 4, "nbformat_minor": 5}


def _source_lines(text: str) -> list[str]:
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def render_index(root: Path) -> str:
    """The index notebook's file text for the course at ``root``."""
    found = [p for p in lectures(root) if SECTION.search("\n".join(markdown_cells(p)))]
    return json.dumps(index_notebook(found), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
