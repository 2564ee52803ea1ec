"""``make bench-autograde``: grading throughput of this grader, and plain ``nbgrader autograde`` beside it.

A generated class of N honest students (every one submits the source notebook) is
graded four ways on the same machine: plain nbgrader (serial, no sandbox, no
feedback), this grader with JOBS=1 and JOBS=2 without feedback (the same work as
plain nbgrader, plus the sandbox and the guard), and JOBS=2 with feedback. The table
prints seconds, students per minute, the speedup of JOBS=2 over JOBS=1, the overhead
per student over plain nbgrader and the machine's load (other work included). Then
:mod:`cnngrade.bench_dask` grades the class on a 2-worker Dask cluster on this machine.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from cnncourse.grading import generate, nbgrader_api, topics
from cnncourse.paths import course_root
from cnngrade.errors import InstructorError
from cnngrade.sandbox import Limits

FIXTURE_COURSE = Path("tests") / "fixtures" / "autograde" / "course"


@dataclass
class BenchRow:
    grader: str
    jobs: int
    students: int
    seconds: float
    full_marks: int
    load: float
    setup: float = 0.0  # once-per-run set-up included in seconds

    @property
    def per_minute(self) -> float:
        return self.students / self.seconds * 60


def _locate(aid: str | None, root: Path | None) -> tuple[Path, str]:
    """The course and assignment to benchmark (the fixture course's ``ag_tiny`` when asked by name)."""
    root = Path(root).resolve() if root else course_root()
    if aid is None:
        known = topics(root) if (root / "source").is_dir() else []
        aid = known[0] if known else "ag_tiny"
    if not (root / "source" / aid).is_dir() and (root / FIXTURE_COURSE / "source" / aid).is_dir():
        root = root / FIXTURE_COURSE
    if not (root / "source" / aid).is_dir():
        raise InstructorError(f"unknown assignment {aid!r} for the benchmark")
    return root, aid


def make_class(src: Path, aid: str, students: int, dest: Path) -> Path:
    """A course at ``dest`` whose N students all submitted the source notebook."""
    course = dest / "course"
    shutil.copytree(src, course / "source" / aid)
    for nbfile in src.glob("*.ipynb"):
        for i in range(students):
            d = course / "submitted" / f"student{i:03d}" / aid
            d.mkdir(parents=True, exist_ok=True)
            shutil.copy(nbfile, d / nbfile.name)
    return course


def time_plain_nbgrader(course: Path, aid: str, students: int) -> BenchRow:
    """``nbgrader autograde`` (its API), one student after another, as nbgrader runs it."""
    from nbgrader.api import Gradebook

    db = course / "gradebook.db"
    generate(course, [aid], db)
    api = nbgrader_api(course, db, timeout=300)
    load0 = os.getloadavg()[0]
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nbgrader's own SQLAlchemy autoflush warnings
        for i in range(students):
            api.autograde(aid, f"student{i:03d}", force=True, create=True)
    wall = time.time() - t0
    with Gradebook(f"sqlite:///{db}", course_id=api.coursedir.course_id) as gb:
        full = sum(s.score == s.max_score and s.max_score > 0 for s in gb.find_assignment(aid).submissions)
    return BenchRow("plain nbgrader", 1, students, wall, full, (load0 + os.getloadavg()[0]) / 2)


def time_this_grader(course: Path, aid: str, students: int, jobs: int, feedback: bool,
                     cell_timeout: float, scheduler: str | None = None, layers: list | None = None) -> BenchRow:
    """One run of this grader (on the Dask cluster at ``scheduler`` if given; its layer timings into ``layers``)."""
    from cnngrade.run import Run

    run = Run(aid, course, jobs=jobs, timeout=1800, cell_timeout=cell_timeout, limits=Limits(),
              feedback=feedback, out=open(os.devnull, "w"), scheduler=scheduler)  # noqa: SIM115
    load0 = os.getloadavg()[0]
    t0 = time.time()
    run.execute()
    wall = time.time() - t0
    full = sum(o.score == o.max_score and (o.max_score or 0) > 0 for o in run.outcomes.values())
    name = ("cnngrade on Dask" if scheduler else "cnngrade") + ("" if feedback else " (no feedback)")
    if scheduler and layers is not None:
        layers.append(run.cluster.layers)
    return BenchRow(name, jobs, students, wall, full, (load0 + os.getloadavg()[0]) / 2, run.setup_seconds)


def format_rows(rows: list[BenchRow]) -> str:
    plain = next((r for r in rows if r.grader == "plain nbgrader"), None)
    one = next((r for r in rows if r.jobs == 1 and r.grader.startswith("cnngrade")), None)
    lines = [f"{'grader':<24}  {'JOBS':>4}  {'students':>8}  {'wall s':>7}  {'set-up s':>8}  {'students/min':>12}  "
             f"{'speedup':>7}  {'s/student over plain':>20}  {'load':>5}  full marks"]
    for r in rows:
        speed = f"{r.per_minute / one.per_minute:.2f}x" if one and r.grader == one.grader else ""
        over = ""
        if plain and r.jobs == 1 and r is not plain:  # per student, the once-per-run set-up left out
            over = f"{(r.seconds - r.setup - plain.seconds) / r.students:+.2f}"
        lines.append(f"{r.grader:<24}  {r.jobs:>4}  {r.students:>8}  {r.seconds:>7.1f}  {r.setup:>8.1f}  "
                     f"{r.per_minute:>12.2f}  {speed:>7}  {over:>20}  {r.load:>5.1f}  {r.full_marks}/{r.students}")
    return "\n".join(lines)


def bench(aid: str | None, students: int, root: Path | None, out=sys.stdout, jobs_list=(1, 2),
          cell_timeout: float = 300, dask_workers: int = 2) -> list[BenchRow]:
    """Grade a generated class of honest students every way; print the table."""
    root, aid = _locate(aid, root)
    src = root / "source" / aid
    print(f"benchmark: {students} honest submissions of {aid} (the source notebook), on {os.cpu_count()} cores",
          file=out, flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-") as tmp:
        rows.append(time_plain_nbgrader(make_class(src, aid, students, Path(tmp) / "plain"), aid, students))
    for jobs, feedback in [(j, False) for j in jobs_list] + [(max(jobs_list), True)]:
        with tempfile.TemporaryDirectory(prefix="cnnlab-bench-") as tmp:
            course = make_class(src, aid, students, Path(tmp))
            rows.append(time_this_grader(course, aid, students, jobs, feedback, cell_timeout))
        print(format_rows(rows).splitlines()[-1], file=out, flush=True)
    print(format_rows(rows), file=out)
    print("(load: the machine's 1-minute load average during the run, other work included; wall time "
          "includes the once-per-run set-up: template, sandbox import check, fork server)", file=out)
    if dask_workers:
        from cnngrade.bench_dask import bench_dask

        bench_dask(src, aid, students, rows, dask_workers, cell_timeout, out)
    return rows
