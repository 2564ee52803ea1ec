"""Worker processes: one per student job, forked from the standard library's fork server.

The fork server (``multiprocessing``'s ``forkserver`` context) imports the grading
stack once; every job then starts as a fork of it in milliseconds, in its own session
(so the whole process group, kernels' launchers included, can be killed at once), with
a wall-clock limit. A worker reads ``job.json`` and writes ``result.json`` next to it;
it never touches the instructor's files. Threads of a ``concurrent.futures`` pool in
the parent wait for the workers, so at most ``jobs`` run at a time.

Like every use of the standard library's fork server, each worker re-imports the
caller's main module: start a run from ``python -m cnngrade``, from an importable
module, or from a script whose work is under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from cnngrade.records import Job, RecordError, Result
from cnngrade.sandbox.client import kill_group

PRELOAD = ["cnngrade.job", "cnngrade.execute", "nbconvert.exporters", "nbconvert.preprocessors",
           "nbgrader.api", "nbgrader.apps", "nbgrader.converters", "nbgrader.preprocessors", "zmq",
           "jupyter_client.blocking.client"]
GRACE_SECONDS = 120  # on top of the job's own deadline, for nbgrader's conversion and feedback


def die_with_parent() -> None:
    """Linux: get SIGKILL when the process that started us goes away (best effort)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def worker_env(environ: dict | None = None) -> None:
    """One BLAS / torch thread, a fixed hash seed, and this interpreter's bin/ first on PATH."""
    env = os.environ if environ is None else environ
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"


def run_job_file(job_path: Path) -> None:
    """Run ``job.json``; write ``result.json`` (a grader failure becomes an ``internal`` result)."""
    from cnngrade.job import run_job

    job = Job.from_json(job_path.read_text())
    try:
        result = run_job(job)
    except BaseException as exc:  # noqa: BLE001 - report, never hang the parent
        (job_path.parent / "worker-error.txt").write_text(traceback.format_exc())
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        result = Result(job.student, "internal", error=f"{type(exc).__name__}: {first}")
    tmp = job_path.parent / "result.json.tmp"
    tmp.write_text(result.to_json())
    tmp.replace(job_path.parent / "result.json")


def worker_entry(job_path: str) -> None:
    """The worker process: own session, output to ``worker.log``, then the job."""
    os.setsid()
    die_with_parent()
    log = os.open(str(Path(job_path).parent / "worker.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    worker_env()
    try:
        run_job_file(Path(job_path))
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()


class Workers:
    """Starts worker processes from the fork server and waits for them with a time limit."""

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(PRELOAD)
        self.running: dict[int, object] = {}
        self.stopping = False

    def start_server(self) -> None:
        """Start the fork server now (its imports overlap with the run's set-up)."""
        from multiprocessing import forkserver

        forkserver.ensure_running()

    def run(self, job_path: Path, limit: float, on_start: Callable[[int], None] | None = None) -> int | None:
        """Run the job's worker (``on_start`` gets its pid); its exit code, or None if it overran ``limit`` s."""
        if self.stopping:
            return None
        proc = self.ctx.Process(target=worker_entry, args=(str(job_path),), daemon=False)
        proc.start()
        self.running[proc.pid] = proc
        if on_start is not None:
            on_start(proc.pid)
        try:
            proc.join(limit)
            return proc.exitcode
        finally:
            kill_group(proc.pid)  # whatever the worker left behind (or the worker itself, on timeout)
            if proc.is_alive():
                proc.kill()  # killed before it had its own session
            proc.join(10)
            self.running.pop(proc.pid, None)

    def kill_all(self) -> None:
        """Stop every running worker now (Ctrl-C, a grader error)."""
        self.stopping = True
        for pid in list(self.running):
            kill_group(pid)


def grade_in_worker(workers: Workers, job: Job, timeout: float,
                    on_start: Callable[[int], None] | None = None) -> Result:
    """Run one job in a worker process under ``job.work`` (created here); its result, or why there is none."""
    work = Path(job.work)
    work.mkdir(parents=True)
    job.deadline = time.time() + timeout
    (work / "job.json").write_text(job.to_json())
    returncode = workers.run(work / "job.json", timeout + GRACE_SECONDS, on_start)
    if returncode is None:
        return Result(job.student, "killed", hash=job.hash, source_hash=job.source_hash,
                      error=f"grading took longer than {timeout:g} s and was stopped")
    try:
        return Result.from_json((work / "result.json").read_text())
    except (OSError, ValueError, RecordError, TypeError):
        log = work / "worker.log"
        tail = (log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []) or ["no output"]
        return Result(job.student, "internal",
                      error=f"the grading worker exited with code {returncode}: {tail[0][:160]}")
