"""Grading through nbgrader itself: generate, autograde, feedback, read the gradebook.

Used by ``make release`` (student versions), ``make grade`` (a learner grades their
own notebook against the hidden tests) and the pipeline tests. Every grading run
happens in a private course directory with its own gradebook, so self-grading never
touches an instructor's database, and the scores are read from the gradebook, never
from an exit code (nbgrader's exit status says nothing reliable about scores).

    python -m cnncourse.grading 01_convolution              # grades mywork/01_convolution/01_convolution.ipynb
    python -m cnncourse.grading 01_convolution path/to/nb.ipynb

The course is found from the working directory (or ``CNN_COURSE_ROOT``), see
:mod:`cnncourse.paths`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cnncourse.paths import CourseNotFound, course_root

COURSE_ID = "cnn-course"


@dataclass
class ExerciseScore:
    """Points for one graded test cell (grade_id) of one notebook, and why points were lost."""

    name: str
    score: float
    max_score: float
    message: str = ""


@dataclass
class Report:
    """What autograding one student's submission gave."""

    student: str
    exercises: list[ExerciseScore] = field(default_factory=list)
    feedback: Path | None = None
    error: str = ""

    @property
    def score(self) -> float:
        return sum(e.score for e in self.exercises)

    @property
    def max_score(self) -> float:
        return sum(e.max_score for e in self.exercises)

    def table(self) -> str:
        """A printable table of points per exercise in notebook order, each failure's first line, the total."""
        width = max([len(e.name) for e in self.exercises] + [8])
        rows = [f"{'exercise':<{width}}  points"]
        for e in self.exercises:
            why = f"   {e.message}" if e.message and e.score < e.max_score else ""
            rows.append(f"{e.name:<{width}}  {e.score:g} / {e.max_score:g}{why}")
        rows.append(f"{'total':<{width}}  {self.score:g} / {self.max_score:g}")
        return "\n".join(rows)


MESSAGE_CHARS = 160
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def failure_messages(notebook: Path) -> dict[str, str]:
    """grade_id -> the first line of the error a graded cell raised (``Name: message``), from an executed notebook."""
    found: dict[str, str] = {}
    for cell in json.loads(Path(notebook).read_text())["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if grade_id and errors:
            first = _ANSI.sub("", str(errors[0].get("evalue", ""))).strip().splitlines()
            text = f"{errors[0].get('ename', 'Error')}: {first[0] if first else ''}".strip()
            found[grade_id] = text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."
    return found


def cell_order(notebook: Path) -> dict[str, int]:
    """grade_id -> position in the notebook, so a report reads in the order the learner worked."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    ids = [c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in cells]
    return {g: i for i, g in enumerate(ids) if g}


def ensure_env_on_path(environ: dict | None = None) -> None:
    """Put this interpreter's ``bin/`` first on PATH: nbgrader runs ``alembic`` and kernels from PATH."""
    env = os.environ if environ is None else environ
    bindir = str(Path(sys.executable).parent)
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")


def topics(root: Path | None = None) -> list[str]:
    """Assignment ids: the folders of ``source/`` (one per topic)."""
    root = course_root() if root is None else Path(root)
    return sorted(p.name for p in (root / "source").iterdir() if p.is_dir() and not p.name.startswith("."))


def load_course_config(root: Path):
    """The course's own ``nbgrader_config.py`` as a traitlets Config (empty when there is none)."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    path = Path(root) / "nbgrader_config.py"
    if not path.is_file():
        return Config()
    return PyFileConfigLoader(path.name, path=str(path.parent)).load_config()


def course_config(root: Path, db_path: Path, timeout: int = 900, base=None):
    """nbgrader's configuration for the course at ``root`` with its gradebook at ``db_path``.

    ``base`` (the course's own ``nbgrader_config.py``, see :func:`load_course_config`) is
    honoured; only the root, the gradebook and the execution timeout are set here, and the
    course id and solution stub when ``base`` does not set them.
    """
    from traitlets.config import Config

    c = Config()
    if base is not None:
        c.merge(base)
    c.CourseDirectory.root = str(root)
    if "course_id" not in c.CourseDirectory:
        c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.db_url = f"sqlite:///{db_path}"
    c.ExecutePreprocessor.timeout = timeout
    c.Execute.timeout = timeout
    if "code_stub" not in c.ClearSolutions:
        c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    # self-grading shows a learner their own hidden tests; the course config hides them from a class
    from cnncourse.feedback import configure as configure_feedback

    configure_feedback(c, hide_hidden_tests=base is not None)
    return c


def course_id(config) -> str:
    """The course id a configuration names (the default course's otherwise)."""
    return config.CourseDirectory.course_id if "course_id" in config.CourseDirectory else COURSE_ID


def nbgrader_api(root: Path, db_path: Path, timeout: int = 900, config=None):
    """An NbGraderAPI for the course at ``root`` with its gradebook at ``db_path`` (or for ``config``)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    ensure_env_on_path()
    c = course_config(root, db_path, timeout) if config is None else config
    coursedir = CourseDirectory(config=c)
    api = NbGraderAPI(coursedir=coursedir, config=c)
    api.log_level = logging.ERROR
    return api


def generate(root: Path, assignment_ids: list[str], db_path: Path | None = None, base=None) -> None:
    """Run nbgrader generate_assignment for each id: ``source/<id>`` -> ``release/<id>``.

    Raises RuntimeError with nbgrader's log when generation fails.
    """
    db_path = db_path or root / "gradebook.db"
    api = nbgrader_api(root, db_path, config=course_config(root, db_path, base=base))
    for aid in assignment_ids:
        result = api.generate_assignment(aid, force=True, create=True)
        if not result["success"]:
            raise RuntimeError(f"generate_assignment {aid} failed:\n{result.get('error') or result.get('log')}")


def autograde_notebooks(topic: str, submissions: dict[str, Path], workdir: Path | None = None,
                        source_root: Path | None = None, feedback: bool = True) -> dict[str, Report]:
    """Autograde notebooks as if students submitted them, in a private course directory.

    ``submissions`` maps a student id to the notebook that student hands in (named
    after the topic inside the submission). Returns a :class:`Report` per student with
    points per graded cell, read from the private gradebook.
    """
    from nbgrader.api import Gradebook, MissingEntry

    source_root = course_root() if source_root is None else Path(source_root)
    if not (source_root / "source" / topic).is_dir():
        raise ValueError(f"no assignment {topic!r} in {source_root / 'source'}; choose one of {topics(source_root)}")
    owned = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix=f"grade-{topic}-")) if workdir is None else Path(workdir)
    try:
        course = workdir / "course"
        if course.exists():
            shutil.rmtree(course)
        shutil.copytree(source_root / "source" / topic, course / "source" / topic)
        db_path = course / "gradebook.db"
        api = nbgrader_api(course, db_path)
        generate(course, [topic], db_path)
        for student, nb_path in submissions.items():
            dest = course / "submitted" / student / topic
            dest.mkdir(parents=True)
            shutil.copy(nb_path, dest / f"{topic}.ipynb")
        reports: dict[str, Report] = {}
        for student in submissions:
            result = api.autograde(topic, student, force=True, create=True)
            report = Report(student)
            if feedback:
                api.generate_feedback(topic, student, force=True)
                html = course / "feedback" / student / topic / f"{topic}.html"
                report.feedback = html if html.exists() else None
            with Gradebook(f"sqlite:///{db_path}", course_id=COURSE_ID) as gb:
                try:
                    sub = gb.find_submission(topic, student)
                except MissingEntry:
                    report.error = (result.get("error") or result.get("log") or "not graded").strip().splitlines()[-1]
                    reports[student] = report
                    continue
                executed = course / "autograded" / student / topic / f"{topic}.ipynb"
                messages = failure_messages(executed) if executed.is_file() else {}
                order = cell_order(course / "source" / topic / f"{topic}.ipynb")
                for nb in sub.notebooks:
                    for grade in sorted(nb.grades, key=lambda g: order.get(g.name, len(order))):
                        if grade.cell.cell_type == "code":
                            report.exercises.append(ExerciseScore(grade.name, float(grade.auto_score or 0),
                                                                  float(grade.max_score), messages.get(grade.name, "")))
            if not result["success"]:
                report.error = "nbgrader reported an error while grading (see the feedback)"
            reports[student] = report
        return reports
    finally:
        if owned and not feedback:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Self-grading: ``python -m cnncourse.grading TOPIC [NOTEBOOK]``."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        root = course_root()
    except CourseNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    known = topics(root)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: make grade TOPIC=<topic> [NOTEBOOK=path]\ntopics: {' '.join(known)}")
        return 2
    topic = argv[0]
    if topic not in known:
        print(f"error: unknown topic {topic!r}; choose one of {' '.join(known)}", file=sys.stderr)
        return 2
    notebook = Path(argv[1]) if len(argv) > 1 else root / "mywork" / topic / f"{topic}.ipynb"
    if not notebook.is_file():
        print(f"error: {notebook} not found (run `make lab` once to create your copy in mywork/)", file=sys.stderr)
        return 2
    workdir = root / ".grading" / topic
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"grading {notebook} against the hidden tests of {topic} (this runs the whole notebook)...")
    report = autograde_notebooks(topic, {"learner": notebook}, workdir=workdir, source_root=root)["learner"]
    print(report.table())
    if report.error:
        print(f"note: {report.error}")
    if report.feedback:
        target = notebook.parent / f"{topic}_feedback.html"
        shutil.copy(report.feedback, target)
        print(f"feedback: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
