"""Typed records passed between the run, its workers and the report, serialised as plain JSON.

A :class:`Job` goes from the run to a worker (``job.json``); a :class:`Result` comes
back (``result.json``); an :class:`Outcome` is one line of the final table; a
:class:`Marker` (``autograded/<student>/<id>/.cnnlab-autograde.json``) lets a re-run skip
a student whose submission has not changed. Every record carries ``version``: a reader
refuses a record of another version rather than misreading it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

RECORD_VERSION = 1
GRADER_VERSION = "1"  # part of the source hash: a new grader regrades everyone
MARKER = ".cnnlab-autograde.json"


class RecordError(ValueError):
    """A record file of another version, or not a record at all."""


def _check_version(data: dict, kind: str) -> dict:
    if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
        raise RecordError(f"{kind} record of version {data.get('version') if isinstance(data, dict) else '?'}, "
                          f"expected {RECORD_VERSION}")
    return data


def _known(cls, data: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class Job:
    """One student's grading job: where the submission and the template are, and the limits."""

    student: str
    assignment: str
    submission: str          # submitted/<student>/<id>/ (read-only for the job)
    template: str            # the run's template course (source/, release/, gradebook.db)
    work: str                # the job's private folder
    notebooks: list[str]     # notebook names (without .ipynb) of the assignment
    sandbox: dict            # SandboxSettings.to_dict()
    hash: str                # hash of the submitted files
    source_hash: str
    cell_timeout: float
    timeout: float
    feedback: bool = True
    deadline: float = 0.0    # time.time() after which no new cell starts
    version: int = RECORD_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls(**_known(cls, _check_version(json.loads(text), "job")))


@dataclass
class Grade:
    auto_score: float | None
    max_score: float


@dataclass
class NotebookResult:
    """Automatic grades and comments of one notebook, as read from the job's private gradebook."""

    grades: dict[str, Grade] = field(default_factory=dict)
    comments: dict[str, str | None] = field(default_factory=dict)
    late_penalty: float | None = None
    fatal: str = ""
    zeroed: bool = False     # no execution: every grade is 0

    @classmethod
    def from_dict(cls, data: dict) -> NotebookResult:
        data = dict(data)
        data["grades"] = {k: Grade(**v) for k, v in data.get("grades", {}).items()}
        return cls(**_known(cls, data))


@dataclass
class Result:
    """What a worker sends back for one student (``status``: graded | killed | internal)."""

    student: str
    status: str = "graded"
    assignment: str = ""
    hash: str = ""
    source_hash: str = ""
    notebooks: dict[str, NotebookResult] = field(default_factory=dict)
    timestamp: str | None = None
    reasons: list[str] = field(default_factory=list)
    suspicious: list[str] = field(default_factory=list)
    score: float = 0.0
    max_score: float = 0.0
    autograded: str | None = None   # the job's autograded/<student>/<id>/ folder
    feedback: str | None = None     # the job's feedback/<student>/<id>/ folder
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    error: str = ""                 # status internal / killed: what went wrong
    version: int = RECORD_VERSION

    def totals(self) -> tuple[float, float]:
        grades = [g for nb in self.notebooks.values() for g in nb.grades.values()]
        return sum(g.auto_score or 0 for g in grades), sum(g.max_score or 0 for g in grades)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Result:
        data = dict(_check_version(json.loads(text), "result"))
        data["notebooks"] = {k: NotebookResult.from_dict(v) for k, v in data.get("notebooks", {}).items()}
        return cls(**_known(cls, data))


@dataclass
class Outcome:
    """One line of the final table (``status``: graded | skipped | internal)."""

    student: str
    score: float | None = None
    max_score: float | None = None
    reasons: list[str] = field(default_factory=list)
    status: str = "graded"
    seconds: float = 0.0


@dataclass
class Marker:
    """Written next to a graded student's autograded notebook: what was graded, and the outcome."""

    hash: str | None
    source_hash: str | None
    score: float
    max_score: float
    reasons: list[str]
    graded_at: str
    grader_version: str = GRADER_VERSION

    def write(self, folder: Path) -> None:
        (folder / MARKER).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, folder: Path) -> Marker | None:
        try:
            data: Any = json.loads((folder / MARKER).read_text())
            return cls(**_known(cls, data)) if isinstance(data, dict) else None
        except (OSError, ValueError, TypeError):
            return None
