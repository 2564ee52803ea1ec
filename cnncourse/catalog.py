"""What the course contains, read from its notebooks: topics, lectures, graded exercises.

The home notebook's topic table and the README's are generated from here (`make index`),
so the names, points and time estimates a learner reads are the ones the notebooks hold.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from cnncourse.colab import CELL_ID as COLAB_CELL_ID
from cnncourse.interviews import lecture_title, markdown_cells
from cnncourse.paths import lectures

EXERCISE = re.compile(
    r"^### Exercise (?P<n>\d+): (?P<name>.+?) \((?P<points>\d+(?:\.\d+)?) points?(?:, about (?P<minutes>\d+) minutes)?\)",
    re.M,
)
WORDS_PER_MINUTE = 150
MINUTES_PER_CODE_CELL = 0.5


@dataclass(frozen=True)
class Exercise:
    """One graded exercise as its header announces it."""

    name: str
    points: float
    minutes: int | None


@dataclass(frozen=True)
class Topic:
    """A topic: lecture and exercise notebook, with what the exercises grade."""

    slug: str
    title: str
    reading_minutes: int
    exercises: tuple[Exercise, ...]
    points: float

    @property
    def exercise_minutes(self) -> int | None:
        minutes = [e.minutes for e in self.exercises]
        return sum(minutes) if minutes and None not in minutes else None


def graded_points(path: Path) -> float:
    """Total points of the locked test cells, from their nbgrader metadata."""
    cells = json.loads(Path(path).read_text())["cells"]
    meta = [c.get("metadata", {}).get("nbgrader", {}) for c in cells]
    return float(sum(m.get("points", 0) for m in meta if m.get("grade") and not m.get("solution")))


def reading_minutes(path: Path) -> int:
    """Time to work through a lecture: its prose at a study pace plus running and reading each code cell."""
    cells = json.loads(Path(path).read_text())["cells"]
    words = sum(len("".join(c["source"]).split()) for c in cells if c["cell_type"] == "markdown")
    code = sum(1 for c in cells if c["cell_type"] == "code" and c.get("id") != COLAB_CELL_ID)
    return max(5, 5 * round((words / WORDS_PER_MINUTE + code * MINUTES_PER_CODE_CELL) / 5))


def exercises(path: Path) -> tuple[Exercise, ...]:
    found = [m for c in markdown_cells(path) for m in EXERCISE.finditer(c)]
    return tuple(Exercise(m["name"].strip("` "), float(m["points"]), int(m["minutes"]) if m["minutes"] else None)
                 for m in found)


def topics(root: Path) -> list[Topic]:
    """Every topic that has a lecture, in order; exercises read from ``source/``."""
    found = []
    for lecture in lectures(root):
        slug = lecture.stem
        source = Path(root) / "source" / slug / f"{slug}.ipynb"
        exs = exercises(source) if source.is_file() else ()
        points = graded_points(source) if source.is_file() else 0.0
        found.append(Topic(slug, lecture_title(lecture), reading_minutes(lecture), exs, points))
    return found


def _points(value: float) -> str:
    return f"{value:g}"


def topics_table(root: Path, lecture_prefix: str, exercise_prefix: str) -> str:
    """A markdown table of the topics; links are relative to where the table is shown."""
    rows = ["| lecture (reading time) | graded exercises | points | exercise time |",
            "|---|---|---:|---:|"]
    for t in topics(root):
        lecture = f"[{t.title}]({lecture_prefix}{t.slug}.ipynb)"
        names = ", ".join(f"`{e.name}`" if e.name.isidentifier() else e.name for e in t.exercises) or "—"
        work = f"[{t.slug}]({exercise_prefix}{t.slug}/{t.slug}.ipynb): {names}" if t.exercises else names
        minutes = t.exercise_minutes
        rows.append(f"| {lecture} (~{t.reading_minutes} min) | {work} | {_points(t.points)} | "
                    f"{'~' + str(minutes) + ' min' if minutes else '—'} |")
    return "\n".join(rows)
