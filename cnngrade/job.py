"""One student, one job, inside a worker: preflight, nbgrader's autograde in the sandbox, grades out.

The job works in a private temporary course (a copy of the run's template: source,
private gradebook) and never opens the instructor's gradebook. It returns a
:class:`~cnngrade.records.Result`; the run merges it.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from cnncourse.grading import course_config, course_id, load_course_config, nbgrader_api
from cnngrade.execute import make_execute_class
from cnngrade.files import copy_regular_files
from cnngrade.gradebook import open_gradebook, read_notebook_result, zero_notebooks
from cnngrade.preflight import preflight
from cnngrade.records import Job, NotebookResult, Result
from cnngrade.sanitize import sanitise_folder


@dataclass
class Submission:
    """The submission as preflight left it in the job's course, and what preflight said."""

    folder: Path
    reasons: list[str] = field(default_factory=list)
    suspicious: list[str] = field(default_factory=list)
    fatal: dict[str, str] = field(default_factory=dict)  # notebook name -> why it cannot run
    timestamp: str | None = None


def dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def timestamp_ok(text: str) -> bool:
    from nbgrader.utils import parse_utc

    try:
        return parse_utc(text.strip()) is not None
    except Exception:  # noqa: BLE001
        return False


def make_course(job: Job) -> Path:
    """The job's private course: the template's source and a copy of its gradebook."""
    course = Path(job.work) / "course"
    shutil.rmtree(course, ignore_errors=True)
    shutil.copytree(Path(job.template) / "source", course / "source")
    shutil.copy(Path(job.template) / "gradebook.db", course / "gradebook.db")
    return course


def _submitted_path(sub_in: Path, nbname: str, notebooks: list[str], present: set[str],
                    reasons: list[str]) -> Path:
    """The student's file for ``nbname``; a single notebook under another name is taken instead."""
    path = sub_in / f"{nbname}.ipynb"
    if not os.path.lexists(path):
        others = sorted(present - {f"{n}.ipynb" for n in notebooks})
        if len(notebooks) == 1 and len(others) == 1:
            reasons.append(f"notebook submitted as {others[0]!r}: graded as {nbname}.ipynb")
            path = sub_in / others[0]
    return path


def prepare_submission(job: Job, course: Path) -> Submission:
    """Preflight every notebook into ``submitted/<student>/<id>/`` of the job's course; copy the other files."""
    template, aid = Path(job.template), job.assignment
    sub = Submission(course / "submitted" / job.student / aid)
    sub.folder.mkdir(parents=True)
    sub_in = Path(job.submission)
    if sub_in.is_symlink():
        sub.reasons.append("the submission folder is a symbolic link: ignored")
        sub_in = Path(job.work) / "empty-submission"
        sub_in.mkdir(exist_ok=True)
    present = {p.name for p in sub_in.glob("*.ipynb")} if sub_in.is_dir() else set()
    for nbname in job.notebooks:
        reference = json.loads((template / "release" / aid / f"{nbname}.ipynb").read_text())
        source_nb = json.loads((template / "source" / aid / f"{nbname}.ipynb").read_text())
        path = _submitted_path(sub_in, nbname, job.notebooks, present, sub.reasons)
        pf = preflight(path if os.path.lexists(path) else None, reference, f"{nbname}.ipynb", source_nb)
        if pf.fatal:
            sub.fatal[nbname] = pf.fatal
            sub.reasons.append(pf.fatal if len(job.notebooks) == 1 else f"{nbname}: {pf.fatal}")
            continue
        sub.reasons.extend(pf.findings)
        sub.suspicious.extend(pf.suspicious)
        (sub.folder / f"{nbname}.ipynb").write_text(json.dumps(pf.notebook, indent=1, ensure_ascii=False))
    skip = {f"{n}.ipynb" for n in job.notebooks} | present
    sub.reasons.extend(copy_regular_files(sub_in, sub.folder, names=skip)[:3])
    _read_timestamp(sub)
    return sub


def _read_timestamp(sub: Submission) -> None:
    """nbgrader's ``timestamp.txt``: kept when it parses; an unparseable one is reported and removed."""
    ts = sub.folder / "timestamp.txt"
    if not ts.exists():
        return
    text = ts.read_text(errors="replace")[:200]
    if not text.strip():
        return  # nbgrader copies an empty timestamp.txt and records no timestamp
    if timestamp_ok(text):
        sub.timestamp = text.strip()
    else:
        ts.unlink()  # nbgrader stops on it; here only this student's timestamp is lost
        sub.reasons.append("invalid timestamp in timestamp.txt: graded without a submission time")


def autograde(job: Job, course: Path, events_path: Path) -> tuple[object, str]:
    """nbgrader's autograde with the sandboxed execute step; the API and nbgrader's one-line error ("" if none)."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        IgnorePattern,
        LimitOutput,
        SaveAutoGrades,
    )

    cfg = course_config(course, course / "gradebook.db", timeout=int(job.cell_timeout),
                        base=load_course_config(Path(job.template)))
    cfg.Autograde.autograde_preprocessors = [make_execute_class(), IgnorePattern, ClearMetadataPreprocessor,
                                             LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    cfg.SandboxExecute.settings = job.sandbox
    cfg.SandboxExecute.cell_timeout = float(job.cell_timeout)
    cfg.SandboxExecute.deadline = float(job.deadline)
    cfg.SandboxExecute.events_path = str(events_path)
    cfg.SandboxExecute.workdir = str(Path(job.work) / "sandbox")
    api = nbgrader_api(course, course / "gradebook.db", config=cfg)
    result = api.autograde(job.assignment, job.student, force=True, create=True)
    if result.get("success"):
        return api, ""
    log = (result.get("error") or result.get("log") or "").strip().splitlines()
    error = next((ln for ln in reversed(log) if ln.strip() and not ln.startswith(" ")), "unknown")
    return api, re.sub(r"\s+", " ", error)[:200]


def read_events(events_path: Path) -> list[str]:
    """The execute step's events as reasons; a sandbox that could not start is the grader's failure."""
    reasons = []
    if events_path.exists():
        for line in events_path.read_text().splitlines():
            event = json.loads(line)
            if event["kind"] == "infra":  # our problem, not the student's: no grade, retried next run
                raise RuntimeError(f"the sandbox could not start: {event['text'][:300]}")
            reasons.append(event["text"])
    return reasons


def collect_grades(course: Path, job: Job, sub: Submission, nbgrader_error: str) -> dict[str, NotebookResult]:
    """Per notebook: nbgrader's grades from the private gradebook, or zeros when it did not run."""
    out: dict[str, NotebookResult] = {}
    with open_gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id(load_course_config(Path(job.template)))) as gb:
        assignment = gb.find_assignment(job.assignment)
        zeros = zero_notebooks(assignment)
        for nb in assignment.notebooks:
            found = None
            if nb.name not in sub.fatal and not nbgrader_error:
                found = read_notebook_result(gb, job.assignment, job.student, nb)
            entry = found or zeros[nb.name]
            entry.fatal = sub.fatal.get(nb.name, "")
            out[nb.name] = entry
    return out


def plain_feedback(student: str, aid: str, nbname: str, reasons: list[str]) -> str:
    """A short page for a notebook that could not be executed at all."""
    items = "".join(f"<li>{html.escape(r)}</li>" for r in reasons) or "<li>no details</li>"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(aid)} feedback</title></head>"
            f"<body><h1>{html.escape(aid)} / {html.escape(nbname)}: {html.escape(student)}</h1>"
            f"<p>Your submission could not be executed, so every test scores zero:</p><ul>{items}</ul></body></html>")


def write_feedback(api, job: Job, course: Path, reasons: list[str], nbgrader_error: str) -> Path:
    """nbgrader's feedback HTML, or the plain page when there is nothing nbgrader can render."""
    autograded = course / "autograded" / job.student / job.assignment
    feedback_dir = course / "feedback" / job.student / job.assignment
    if api is not None and autograded.is_dir() and any(autograded.glob("*.ipynb")) and not nbgrader_error:
        try:
            api.generate_feedback(job.assignment, job.student, force=True)
        except Exception as exc:  # noqa: BLE001 - feedback is a convenience; grades are already safe
            reasons.append(f"feedback not generated ({type(exc).__name__})")
    if not any(feedback_dir.glob("*.html")):
        feedback_dir.mkdir(parents=True, exist_ok=True)
        for nbname in job.notebooks:
            (feedback_dir / f"{nbname}.html").write_text(plain_feedback(job.student, job.assignment, nbname, reasons))
    return feedback_dir


def course_texts(job: Job) -> frozenset[str]:
    """The markdown and raw cells of the assignment's own notebooks (release and source): trusted text."""
    texts = set()
    for folder in ("release", "source"):
        for nbname in job.notebooks:
            nb = json.loads((Path(job.template) / folder / job.assignment / f"{nbname}.ipynb").read_text())
            texts.update("".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                         for c in nb["cells"] if c["cell_type"] in ("markdown", "raw"))
    return frozenset(texts)


def sanitise_autograded(job: Job, autograded: Path) -> list[str]:
    """Untrusted HTML out of the autograded notebooks, before the feedback and the formgrader read them."""
    if not autograded.is_dir():
        return []
    try:
        return sanitise_folder(autograded, course_texts(job))
    except Exception as exc:  # noqa: BLE001 - never leave an unsanitised notebook behind
        for path in autograded.glob("*.ipynb"):
            path.unlink()
        return [f"the autograded notebook could not be sanitised ({type(exc).__name__}): removed"]


def run_job(job: Job) -> Result:
    """Grade one student's submission in a private course."""
    t0 = time.time()
    course = make_course(job)
    sub = prepare_submission(job, course)
    phases = {"preflight": round(time.time() - t0, 2)}
    events_path = Path(job.work) / "events.jsonl"
    api, nbgrader_error = None, ""
    if any(n not in sub.fatal for n in job.notebooks):
        api, nbgrader_error = autograde(job, course, events_path)
    phases["autograde"] = round(time.time() - t0 - sum(phases.values()), 2)
    reasons = sub.reasons + read_events(events_path)
    if nbgrader_error:
        reasons.append(f"nbgrader could not grade it: {nbgrader_error}")
    notebooks = collect_grades(course, job, sub, nbgrader_error)
    autograded = course / "autograded" / job.student / job.assignment
    reasons += sanitise_autograded(job, autograded)
    feedback = write_feedback(api, job, course, reasons, nbgrader_error) if job.feedback else None
    autograded.mkdir(parents=True, exist_ok=True)
    phases["feedback"] = round(time.time() - t0 - sum(phases.values()), 2)
    result = Result(job.student, "graded", job.assignment, job.hash, job.source_hash, notebooks, sub.timestamp,
                    dedupe(reasons), dedupe(sub.suspicious), autograded=str(autograded),
                    feedback=str(feedback) if feedback else None, seconds=round(time.time() - t0, 2), phases=phases)
    result.score, result.max_score = result.totals()
    return result
