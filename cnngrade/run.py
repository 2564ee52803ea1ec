"""One autograde run of one assignment: check, plan, build the template, grade in parallel, merge, report.

1. The trusted side builds a private template course once per run (:mod:`cnngrade.template`)
   and checks that the sandboxed interpreter can import what the notebooks need.
2. Each student is one self-contained job (:class:`~cnngrade.records.Job` in,
   :class:`~cnngrade.records.Result` out, as JSON) run by a worker process
   (:mod:`cnngrade.workers`) with a wall-clock limit, in a private temporary course.
3. The parent merges results into the gradebook (SQLite or PostgreSQL, one transaction per
   student) one at a time (:mod:`cnngrade.gradebook`),
   after backing it up once per run, and copies ``autograded/<student>/<id>/`` and
   ``feedback/<student>/<id>/`` into the course. A marker with a hash of the submitted
   files (and of the source) lets a re-run skip students already graded for the same
   submission; ``--force`` regrades.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

from cnncourse.grading import course_id, load_course_config
from cnngrade import report
from cnngrade.cluster import ClusterPool
from cnngrade.errors import InstructorError
from cnngrade.files import hash_dir, install_dir
from cnngrade.gradebook import (
    BACKENDS,
    GradebookUrl,
    backup,
    merge,
    open_gradebook,
    sync_assignment,
    unreachable,
    zero_notebooks,
)
from cnngrade.records import GRADER_VERSION, Job, Marker, Outcome, Result
from cnngrade.sandbox import GiB, Limits, SandboxSettings, bwrap_path, import_check, smoke_test
from cnngrade.template import Template, build_template, imports
from cnngrade.workers import Workers, grade_in_worker

AUTOGRADED_MODE = 0o444  # nbgrader's permissions for autograded files


def find_submissions(root: Path, aid: str, only: list[str] | None) -> list[Path]:
    """``submitted/<student>/<aid>`` folders (a student folder that is a link is ignored)."""
    subs = []
    base = root / "submitted"
    if base.is_dir():
        for student_dir in sorted(base.iterdir()):
            path = student_dir / aid
            if student_dir.is_dir() and not student_dir.is_symlink() and (path.is_dir() or path.is_symlink()):
                if not only or student_dir.name in only:
                    subs.append(path)
    return subs


def check_course(root: Path, aid: str, sandbox: bool = True) -> None:
    """The course and the assignment exist, and (``sandbox``) bubblewrap works here; InstructorError otherwise."""
    if not root.is_dir():
        raise InstructorError(f"course root {root} does not exist")
    src = root / "source" / aid
    if not src.is_dir():
        known = sorted(p.name for p in (root / "source").glob("*") if p.is_dir()) if (root / "source").is_dir() else []
        raise InstructorError(f"unknown assignment {aid!r}: no folder source/{aid} in {root}"
                              + (f" (assignments: {', '.join(known)})" if known else ""))
    if not list(src.glob("*.ipynb")):
        raise InstructorError(f"source/{aid} holds no notebook")
    if not sandbox:
        return  # grading on a cluster: the workers are checked instead
    if not bwrap_path():
        raise InstructorError("bubblewrap (bwrap) is not installed; install it with "
                              "`apt-get install bubblewrap` (the sandbox for student code)")
    problem = smoke_test()
    if problem:
        raise InstructorError(f"the bubblewrap sandbox does not work on this machine: {problem}")


def course_gradebook(root: Path, config) -> tuple[GradebookUrl, str]:
    """The instructor gradebook (SQLite or PostgreSQL) and course id, as the course's ``nbgrader_config.py`` names them."""
    url = config.CourseDirectory.db_url if "db_url" in config.CourseDirectory else "sqlite:///gradebook.db"
    try:
        db = GradebookUrl.from_config(str(url), root)
        backend = db.backend
    except Exception as exc:  # noqa: BLE001 - any malformed URL
        raise InstructorError(f"CourseDirectory.db_url is not a database URL ({exc})") from None
    if backend not in BACKENDS:
        raise InstructorError(f"gradebooks in {backend} are not supported (CourseDirectory.db_url = "
                              f"{db.shown()!r}); use sqlite:///... or postgresql://...")
    return db, course_id(config)


def read_course_config(root: Path):
    """The course's ``nbgrader_config.py``; an InstructorError when it does not load."""
    try:
        return load_course_config(root)
    except Exception as exc:  # noqa: BLE001 - any error in the instructor's file
        raise InstructorError(f"{root / 'nbgrader_config.py'} does not load: {type(exc).__name__}: {exc}") from None


def source_imports(root: Path, aid: str) -> list[str]:
    """Modules the assignment's notebooks certainly import (for the sandbox's import check)."""
    import json

    required: list[str] = []
    for path in sorted((root / "source" / aid).glob("*.ipynb")):
        try:
            required += imports(json.loads(path.read_text()))[1]
        except (OSError, ValueError):
            continue
    return list(dict.fromkeys(required))


class Run:
    """One autograde run of one assignment."""

    def __init__(self, aid: str, root: Path, jobs: int, timeout: float, cell_timeout: float, limits: Limits,
                 force: bool = False, students: list[str] | None = None, feedback: bool = True,
                 out=None, workdir: Path | None = None, scheduler: str | None = None) -> None:
        self.aid, self.root, self.jobs = aid, Path(root).resolve(), max(1, int(jobs))
        self.timeout, self.cell_timeout, self.limits = float(timeout), float(cell_timeout), limits
        self.force, self.only, self.feedback, self.out = force, students, feedback, out
        self.workdir = workdir
        self.outcomes: dict[str, Outcome] = {}
        self.notes: list[str] = []
        self.backup: Path | None = None
        self.workers = Workers()
        self.cluster = ClusterPool(scheduler, self.say) if scheduler else None  # a Dask scheduler's address
        self.gradebook, self.course_id = GradebookUrl.sqlite(self.root / "gradebook.db"), ""
        self.setup_seconds = 0.0  # template, import check, fork server: once per run

    def say(self, text: str) -> None:
        print(text, file=self.out or sys.stdout, flush=True)

    @property
    def db(self) -> GradebookUrl:
        return self.gradebook

    def check(self) -> list[Path]:
        check_course(self.root, self.aid, sandbox=self.cluster is None)
        self.gradebook, self.course_id = course_gradebook(self.root, read_course_config(self.root))
        problem = unreachable(self.gradebook)
        if problem:
            raise InstructorError(problem)
        return find_submissions(self.root, self.aid, self.only)

    # ---- run -------------------------------------------------------------------------
    def execute(self) -> int:
        """Grade; 0 when the run finished, 1 when the grader failed on a student."""
        subs = self.check()
        t0 = time.time()
        if not subs:
            self.say(f"nothing to grade: no submitted/*/{self.aid}/ folder in {self.root}")
            return 0
        run_dir = Path(tempfile.mkdtemp(prefix=f"cnnlab-autograde-{self.aid}-")) if self.workdir is None \
            else Path(self.workdir)
        try:
            where = f"Dask cluster {self.cluster.address}" if self.cluster else f"{self.jobs} worker(s)"
            self.say(f"autograde {self.aid}: {len(subs)} submission(s), {where}, "
                     f"sandbox: bwrap, memory {self.limits.memory_bytes / GiB:g} GiB, cell timeout "
                     f"{self.cell_timeout:g} s, student timeout {self.timeout:g} s")
            source_hash = hashlib.sha256((hash_dir(self.root / "source" / self.aid) + GRADER_VERSION).encode()
                                         ).hexdigest()
            todo = self._plan(subs, source_hash)
            if todo:
                self._grade(todo, run_dir, source_hash)
        finally:
            if self.workdir is None:
                shutil.rmtree(run_dir, ignore_errors=True)
        self.say("")
        self.say(report.table(self.outcomes))
        self.say(report.summary(self.outcomes, time.time() - t0, self.backup))
        for note in self.notes:
            self.say(f"note: {note}")
        report.write_report(self.root / "autograded" / f"autograde-{self.aid}.txt", self.aid, self.outcomes)
        return 1 if any(o.status == "internal" for o in self.outcomes.values()) else 0

    def _plan(self, subs: list[Path], source_hash: str) -> list[tuple[str, Path, str]]:
        """Students to grade: (student, folder, hash); the unchanged ones become "skipped" outcomes."""
        from nbgrader.api import MissingEntry

        todo = []
        gb = open_gradebook(self.db.url, self.course_id) if self.db.exists() and not self.force else None
        try:
            for path in subs:
                student = path.parent.name
                digest = hash_dir(path) if path.is_dir() and not path.is_symlink() else "not-a-folder"
                marker = Marker.read(self.root / "autograded" / student / self.aid) if gb is not None else None
                if marker and marker.hash == digest and marker.source_hash == source_hash:
                    try:
                        gb.find_submission(self.aid, student)
                        self.outcomes[student] = Outcome(student, marker.score, marker.max_score,
                                                         ["unchanged since the last run"], "skipped")
                        continue
                    except MissingEntry:
                        pass
                todo.append((student, path, digest))
        finally:
            if gb is not None:
                gb.close()
        return todo

    def _prepare(self, run_dir: Path) -> tuple[Template, dict]:
        """The template, built while the fork server imports and the sandbox's import check runs."""
        if self.cluster:
            return self._prepare_cluster(run_dir)
        self.workers.start_server()
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as side:
            probe = side.submit(import_check, source_imports(self.root, self.aid))
            template = build_template(self.root, self.aid, run_dir, self.db)
            problem = probe.result()
        if problem:
            raise InstructorError(f"the sandboxed kernel cannot import what the notebooks need: {problem} "
                                  f"(interpreter {sys.executable}); fix the environment, nobody was graded")
        sandbox = SandboxSettings(limits=self.limits, preload=template.preload)
        return template, sandbox.to_dict()

    def _prepare_cluster(self, run_dir: Path) -> tuple[Template, dict]:
        """Connected to the scheduler, every worker checked, the template built here."""
        self.cluster.connect()
        try:
            self.cluster.check_workers(source_imports(self.root, self.aid))
            template = build_template(self.root, self.aid, run_dir, self.db)
        except BaseException:
            self.cluster.close()
            raise
        return template, SandboxSettings(limits=self.limits, preload=template.preload).to_dict()

    def _grade(self, todo: list[tuple[str, Path, str]], run_dir: Path, source_hash: str) -> None:
        t0 = time.time()
        template, sandbox = self._prepare(run_dir)
        self.setup_seconds = time.time() - t0
        self.backup = backup(self.db, self.root)
        gb = open_gradebook(self.db.url, self.course_id)
        try:
            with open_gradebook(f"sqlite:///{template.folder / 'gradebook.db'}", self.course_id) as tgb:
                self.notes += sync_assignment(gb, tgb, self.aid)
            jobs = [Job(student, self.aid, str(path), str(template.folder), str(run_dir / "jobs" / f"{n:05d}"),
                        template.notebooks, sandbox, digest, source_hash, self.cell_timeout, self.timeout,
                        self.feedback) for n, (student, path, digest) in enumerate(todo)]
            if self.cluster:
                self.cluster.grade(jobs, template.folder, self.timeout, run_dir / "results",
                                   lambda result: self._accept(gb, result), self.outcomes)
            else:
                self._pool(jobs, gb)
        finally:
            self.workers.kill_all()
            if self.cluster:
                self.cluster.close()
            gb.close()

    def _pool(self, jobs: list[Job], gb) -> None:
        """Workers in parallel; results merged here, in this one thread, as they arrive."""
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.jobs)
        try:
            futures = {pool.submit(self._run_worker, job): job.student for job in jobs}
            for k, fut in enumerate(concurrent.futures.as_completed(futures), 1):
                student = futures[fut]
                try:
                    result = fut.result()
                except Exception as exc:  # noqa: BLE001
                    result = Result(student, "internal", error=f"{type(exc).__name__}: {exc}")
                outcome = self._accept(gb, result)
                self.outcomes[student] = outcome
                self.say(f"[{k}/{len(jobs)}] {report.row(outcome)}")
        except BaseException:
            self.workers.kill_all()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)

    def _run_worker(self, job: Job) -> Result:
        """One job in a worker process; its result (or why there is none)."""
        return grade_in_worker(self.workers, job, self.timeout)

    # ---- merge -----------------------------------------------------------------------
    def _merge_with_retries(self, gb, result: Result) -> str:
        """Merge into the gradebook, retrying while another program holds it locked; the error, if any."""
        for attempt in range(10):
            try:
                merge(gb, self.aid, result)
                return ""
            except Exception as exc:  # noqa: BLE001 - sqlite "database is locked" by another program
                gb.db.rollback()
                if "locked" not in str(exc) or attempt == 9:
                    return f"grader error: could not write the gradebook ({exc})"
                time.sleep(2)
        return "grader error: could not write the gradebook"

    def _install(self, result: Result) -> Path:
        """The job's autograded (read-only, as nbgrader leaves it) and feedback folders into the course."""
        ag_dest = self.root / "autograded" / result.student / self.aid
        fb_dest = self.root / "feedback" / result.student / self.aid
        if result.autograded and Path(result.autograded).is_dir():
            install_dir(Path(result.autograded), ag_dest, mode=AUTOGRADED_MODE)
        else:
            ag_dest.mkdir(parents=True, exist_ok=True)
        if result.feedback and Path(result.feedback).is_dir():
            install_dir(Path(result.feedback), fb_dest)
        return ag_dest

    def _accept(self, gb, result: Result) -> Outcome:
        """Merge one result, install its files, write its marker; the table's line."""
        student = result.student
        if result.status == "internal":
            return Outcome(student, None, None, [f"grader error: {result.error}"], "internal")
        if result.status == "killed":
            result = self._zero_result(gb, result)
        error = self._merge_with_retries(gb, result)
        if error:
            return Outcome(student, None, None, [error], "internal")
        ag_dest = self._install(result)
        reasons = list(result.reasons)
        if result.suspicious:
            reasons.append("suspicious code: " + "; ".join(result.suspicious))
        outcome = Outcome(student, result.score, result.max_score, reasons, "graded", result.seconds)
        marker_path = ag_dest / ".cnnlab-autograde.json"
        if result.status == "killed":  # no marker: the next run tries this student again
            if reasons:
                reasons[-1] += " (scored 0 for now; re-run to retry)"
            marker_path.unlink(missing_ok=True)
            return outcome
        Marker(result.hash, result.source_hash, result.score, result.max_score, reasons,
               time.strftime("%Y-%m-%d %H:%M:%S")).write(ag_dest)
        return outcome

    def _zero_result(self, gb, result: Result) -> Result:
        """A student whose worker overran: 0 everywhere, with the reason."""
        notebooks = zero_notebooks(gb.find_assignment(self.aid))
        zeroed = Result(result.student, "killed", self.aid, result.hash, result.source_hash, notebooks,
                        reasons=[result.error], error=result.error)
        zeroed.score, zeroed.max_score = zeroed.totals()
        return zeroed
