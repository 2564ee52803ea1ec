"""Grading on a Dask cluster: each student's job travels as bytes, runs on a worker, comes back as bytes.

``python -m cnngrade ID --scheduler tcp://host:8786`` builds the template on the
instructor's machine (the client), ships it once to every worker (``scatter`` with
``broadcast``; a worker unpacks it once, keyed by its content hash), then submits one
task per student carrying the job record and the submitted folder as a
:class:`~cnngrade.pack.Tree`. On the worker the task runs the same sandboxed worker
process as a local run, in a scratch folder of its own, and returns the result record
with the autograded and feedback folders as trees. Workers share no filesystem with
the client; only the client writes the gradebook, ``autograded/`` and ``feedback/``.

Faults: a task whose worker dies is re-run elsewhere by the scheduler (its
``allowed-failures``, 3 by default, bounds how often); a grader that fails on a
submission returns an ``internal`` result, reported for that student and never
retried in the same run. Each future is merged once, keyed by student. Tasks are
submitted a few per worker slot at a time, so the client never holds the whole class
in memory, and workers that join later get work at once.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cnngrade import report
from cnngrade.errors import InstructorError
from cnngrade.files import hash_dir
from cnngrade.pack import Budget, Tree, pack_tree, unpack_tree
from cnngrade.records import Job, Outcome, Result
from cnngrade.sandbox.client import kill_group
from cnngrade.workers import Workers, grade_in_worker, worker_env

CONNECT_TIMEOUT = 60  # seconds to reach the scheduler and see a first worker


@dataclass
class RemoteJob:
    """A job as it travels: the record (its paths are filled in on the worker) and the submission's bytes."""

    job: str             # Job.to_json()
    submission: Tree
    timeout: float       # the student's wall-clock limit, seconds


@dataclass
class RemoteResult:
    """What comes back: the result record and the job's autograded / feedback folders."""

    result: str          # Result.to_json()
    autograded: Tree | None = None
    feedback: Tree | None = None
    worker: str = ""


# ---- worker side -----------------------------------------------------------------------
_WORKERS: Workers | None = None
_LOCK = threading.Lock()


def _workers() -> Workers:
    """One fork server per worker process, started by its first job.

    A Dask nanny starts its worker as a daemonic ``multiprocessing`` process, and such a
    process may not start others; the flag only asks Python to kill children at exit,
    which the grading processes already get (their parent's death signal, and their
    process group killed at the end of each job), so it is cleared here.
    """
    global _WORKERS
    with _LOCK:
        if _WORKERS is None:
            multiprocessing.current_process().daemon = False
            _WORKERS = Workers()
            _WORKERS.start_server()
        return _WORKERS


def _scratch() -> Path:
    """The Dask worker's local directory (removed with the worker), else the system's temporary folder."""
    try:
        from distributed import get_worker

        return Path(get_worker().local_directory)
    except (ImportError, ValueError):
        return Path(tempfile.gettempdir())


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return ""


def template_on_worker(template: Tree, key: str) -> Path:
    """The template unpacked once per worker, under its content hash."""
    folder = _scratch() / "cnngrade-templates" / key
    if folder.is_dir():
        return folder
    tmp = folder.with_name(f".{key}-{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    unpack_tree(template, tmp)
    try:
        tmp.rename(folder)
    except OSError:  # another job of this worker was first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


class CancelWatch:
    """Stops a job's grading process once the client has cancelled its task (an interrupted run),
    instead of letting it occupy the worker until the student's time limit."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.stop = threading.Event()
        try:
            from distributed import get_worker

            self.worker = get_worker()
            self.key = self.worker.get_current_task()
        except (ImportError, ValueError):
            self.worker = None

    def started(self, pid: int) -> None:
        self.pid = pid

    def cancelled(self) -> bool:
        task = self.worker.state.tasks.get(self.key)
        return task is None or task.state == "cancelled"

    def __enter__(self) -> CancelWatch:
        if self.worker is not None:
            threading.Thread(target=self._watch, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()

    def _watch(self) -> None:
        while not self.stop.wait(0.5):
            if self.pid is not None and self.cancelled():
                kill_group(self.pid)  # the job's session: its kernels too
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)  # in case it had no session of its own yet
                return


def grade_remote(remote: RemoteJob, template: Tree, template_key: str) -> RemoteResult:
    """The Dask task: unpack, grade in a sandboxed worker process as a local run does, pack the outcome."""
    job = Job.from_json(remote.job)
    base = Path(tempfile.mkdtemp(prefix="cnngrade-job-", dir=_scratch()))
    try:
        job.template = str(template_on_worker(template, template_key))
        job.submission = str(unpack_tree(remote.submission, base / "submission"))
        job.work = str(base / "work")
        with CancelWatch() as watch:
            result = grade_in_worker(_workers(), job, remote.timeout, watch.started)
        autograded = pack_tree(Path(result.autograded), Budget.unlimited()) if result.autograded else None
        feedback = pack_tree(Path(result.feedback), Budget.unlimited()) if result.feedback else None
        return RemoteResult(result.to_json(), autograded, feedback, _worker_name())
    except Exception as exc:  # noqa: BLE001 - reported for this student, never retried by Dask
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        error = Result(job.student, "internal", error=f"on worker {_worker_name()}: {type(exc).__name__}: {first}")
        return RemoteResult(error.to_json(), worker=_worker_name())
    finally:
        shutil.rmtree(base, ignore_errors=True)


def echo_remote(remote: RemoteJob, template: Tree, template_key: str) -> RemoteResult:
    """A task that grades nothing: unpacks like :func:`grade_remote` and sends the submission back as the
    autograded folder (the benchmark's measure of the distribution layer alone)."""
    job = Job.from_json(remote.job)
    base = Path(tempfile.mkdtemp(prefix="cnngrade-echo-", dir=_scratch()))
    try:
        template_on_worker(template, template_key)
        folder = unpack_tree(remote.submission, base / "submission")
        result = Result(job.student, "graded", job.assignment, job.hash, job.source_hash)
        return RemoteResult(result.to_json(), pack_tree(folder), None, _worker_name())
    finally:
        shutil.rmtree(base, ignore_errors=True)


def worker_problem(required: list[str]) -> str:
    """Empty when this worker can grade (bubblewrap works, the sandbox imports ``required``); else why not.

    The worker's fork server starts first, so its imports overlap with the checks instead
    of delaying the worker's first student.
    """
    from cnngrade.sandbox import bwrap_path, import_check, smoke_test

    if not bwrap_path():
        return "bubblewrap (bwrap) is not installed (apt-get install bubblewrap)"
    _workers()
    return smoke_test() or import_check(required)


# ---- client side -----------------------------------------------------------------------
@dataclass
class Layers:
    """Seconds the client spent per layer, summed over students (for the benchmark)."""

    students: int = 0
    pack: float = 0.0      # reading and packing submissions
    unpack: float = 0.0    # unpacking results into the run's folder
    merge: float = 0.0     # gradebook merge and install (the same work as a local run)


@dataclass
class Progress:
    done: int = 0
    failed: int = 0
    running: int = 0
    queued: int = 0

    def __str__(self) -> str:
        return f"done {self.done}, running {self.running}, failed {self.failed}, queued {self.queued}"


@dataclass
class ClusterPool:
    """A run's connection to a Dask scheduler."""

    address: str
    say: Callable[[str], None] = print
    client: object = None
    layers: Layers = field(default_factory=Layers)
    worker_of: dict[str, str] = field(default_factory=dict)   # student -> worker that graded them
    task: Callable = grade_remote                              # the worker's function (the benchmark swaps it)

    def connect(self) -> None:
        from distributed import Client

        try:
            self.client = Client(self.address, timeout=CONNECT_TIMEOUT, set_as_default=False)
            self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            self.close()
            raise InstructorError(f"no Dask cluster with a worker at {self.address} "
                                  f"({type(exc).__name__}: {str(exc)[:120]})") from None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def check_workers(self, required: list[str]) -> None:
        """Every connected worker can run the sandbox and import what the notebooks need."""
        problems = {w: p for w, p in self.client.run(worker_problem, required).items() if p}
        if problems:
            worker, problem = sorted(problems.items())[0]
            raise InstructorError(f"Dask worker {worker} cannot grade: {problem}"
                                  + (f" (and {len(problems) - 1} more worker(s))" if len(problems) > 1 else ""))

    def slots(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def progress(self, live: dict, done: int, failed: int, waiting: int) -> Progress:
        keys = {f.key for f in live}
        processing = self.client.processing()  # tasks assigned to a worker, maybe queued behind its thread
        threads = self.client.nthreads()
        running = sum(min(threads.get(w, 1), sum(k in keys for k in tasks))
                      for w, tasks in processing.items())
        return Progress(done, failed, running, waiting + len(live) - running)

    def _submit(self, job: Job, template, key: str, timeout: float):
        t0 = time.perf_counter()
        remote = RemoteJob(job.to_json(), pack_tree(Path(job.submission)), timeout)
        self.layers.pack += time.perf_counter() - t0
        return self.client.submit(self.task, remote, template, key, key=f"cnngrade-{os.urandom(6).hex()}-{job.student}",
                                  pure=False, retries=0)

    def _collect(self, future, job: Job, into: Path) -> Result:
        """The future's result with its folders unpacked under ``into``; an ``internal`` result if it has none."""
        try:
            remote: RemoteResult = future.result()
        except Exception as exc:  # noqa: BLE001 - KilledWorker, a cancelled task, a lost scheduler
            return Result(job.student, "internal", error=_lost(exc))
        t0 = time.perf_counter()
        try:
            result = Result.from_json(remote.result)
            folder = into / job.student
            shutil.rmtree(folder, ignore_errors=True)
            result.autograded = str(unpack_tree(remote.autograded, folder / "autograded")) if remote.autograded else None
            result.feedback = str(unpack_tree(remote.feedback, folder / "feedback")) if remote.feedback else None
        except (OSError, ValueError, TypeError) as exc:  # a record of another version, an unsafe tree
            return Result(job.student, "internal", error=f"unreadable result from {remote.worker}: {exc}"[:200])
        self.worker_of[job.student] = remote.worker
        self.layers.unpack += time.perf_counter() - t0
        return result

    def grade(self, jobs: list[Job], template: Path, timeout: float, into: Path,
              accept: Callable[[Result], Outcome], outcomes: dict[str, Outcome]) -> None:
        """Grade every job on the cluster; ``accept`` merges each result once, as it arrives."""
        from distributed import as_completed

        key = hash_dir(template)
        shipped = self.client.scatter(pack_tree(template, Budget.unlimited()), broadcast=True, hash=False)
        todo, live, failed = deque(jobs), {}, 0
        stream = as_completed(loop=self.client.loop)

        def refill() -> None:
            window = 2 * self.slots() + 1
            while todo and len(live) < window:
                job = todo.popleft()
                future = self._submit(job, shipped, key, timeout)
                live[future] = job
                stream.add(future)

        try:
            refill()
            for k, future in enumerate(stream, 1):
                job = live.pop(future)
                result = self._collect(future, job, into)
                refill()
                if job.student in outcomes:  # merged once per student, whatever happens
                    continue
                t0 = time.perf_counter()
                outcome = outcomes[job.student] = accept(result)
                self.layers.merge += time.perf_counter() - t0
                self.layers.students += 1
                failed += outcome.status == "internal"
                state = self.progress(live, k, failed, len(todo))
                self.say(f"[{k}/{len(jobs)}] {report.row(outcome)}   ({state})")
        except BaseException:
            self.client.cancel(list(live), force=True)
            raise


def _lost(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        return ("every Dask worker that tried this student died (the scheduler's allowed-failures); "
                "re-run to retry")
    return f"the cluster returned no result ({name}: {str(exc)[:160]}); re-run to retry"


# ---- a cluster on this machine (tests, benchmark) --------------------------------------
@dataclass
class LocalCluster:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, each in its own process group."""

    folder: Path
    scheduler: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)
    address: str = ""

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen:
        env = dict(os.environ)
        worker_env(env)
        env["DASK_TEMPORARY_DIRECTORY"] = str(self.folder)  # scratch space goes away with the folder
        out = open(self.folder / log, "ab")  # noqa: SIM115 - the child keeps it
        try:
            return subprocess.Popen([str(Path(sys.executable).parent / "dask"), *args], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True, cwd=self.folder)
        finally:
            out.close()

    def start(self, n_workers: int, timeout: float = 120) -> LocalCluster:
        import json

        self.folder.mkdir(parents=True, exist_ok=True)
        info = self.folder / "scheduler.json"
        self.scheduler = self._spawn(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                      "--scheduler-file", str(info)], "scheduler.log")
        deadline = time.monotonic() + timeout
        while not info.exists():
            if self.scheduler.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dask scheduler did not start: {(self.folder / 'scheduler.log').read_text()[-500:]}")
            time.sleep(0.1)
        self.address = json.loads(info.read_text())["address"]
        for n in range(n_workers):
            self.add_worker(f"w{n}")
        self.wait_for_workers(n_workers, timeout)
        return self

    def add_worker(self, name: str) -> subprocess.Popen:
        proc = self._spawn(["worker", self.address, "--name", name, "--nthreads", "1", "--nworkers", "1",
                            "--host", "127.0.0.1", "--no-dashboard", "--local-directory",
                            str(self.folder / name)], f"{name}.log")
        self.workers.append(proc)
        return proc

    def wait_for_workers(self, n: int, timeout: float = 120) -> None:
        from distributed import Client

        with Client(self.address, timeout=timeout, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=timeout)

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL a process group (a worker: its nanny, its process and everything they started)."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(30)

    def stop(self) -> None:
        for proc in [*self.workers, *([self.scheduler] if self.scheduler else [])]:
            self.kill(proc)
