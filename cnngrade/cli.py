"""Command line of the grading service.

    python -m cnngrade 01_convolution [--jobs N | --scheduler tcp://HOST:8786] [--root DIR] [--timeout S]
                       [--cell-timeout S] [--memory GiB] [--gpu] [--force] [--student ID] [--no-feedback]
    python -m cnngrade --bench [ID] [--students N]       # throughput, and plain nbgrader side by side
    make autograde ASSIGNMENT=01_convolution [JOBS=n | SCHEDULER=tcp://HOST:8786]

Grades every ``submitted/<student>/<id>/`` of the course (``--root``, else the course
found from the working directory or ``CNN_COURSE_ROOT``) and ends with a table:
student, automatic score / max, and a one-line reason for anything that went wrong.
Exit status 0 when the run finished (whatever the students did); 2 for an instructor
error (unknown assignment, no bubblewrap, an environment the sandbox cannot import
from, ...), with one line; 1 if the grader itself failed on a student.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cnncourse.grading import ensure_env_on_path
from cnncourse.paths import CourseNotFound, course_root
from cnngrade.errors import InstructorError
from cnngrade.sandbox import GiB, Limits, bwrap

LINUX_ONLY = ("the sandboxed grader needs Linux (bubblewrap, namespaces, cgroups); on this system use "
              "`make grade` to self-grade a notebook, or grade the class on a Linux machine")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cnngrade",
                                description="Grade every submitted/*/<id>/ in a sandbox, in parallel.")
    p.add_argument("assignment", nargs="?", help="assignment id (a folder of source/)")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, help="parallel workers (default: all cores)")
    p.add_argument("--root", type=Path, default=None,
                   help="course root (default: the course around the working directory, or $CNN_COURSE_ROOT)")
    p.add_argument("--timeout", type=float, default=900, help="wall-clock limit per student, seconds (default 900)")
    p.add_argument("--cell-timeout", type=float, default=120, help="limit per cell, seconds (default 120)")
    p.add_argument("--memory", type=float, default=6, help="memory limit of a kernel, GiB (default 6)")
    p.add_argument("--gpu", action="store_true",
                   help="let kernels use this machine's NVIDIA GPUs (no address-space limit; memory capped by cgroup)")
    p.add_argument("--force", action="store_true", help="regrade students already graded for the same files")
    p.add_argument("--student", action="append", help="grade only this student (repeatable)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:8786",
                   help="grade on this Dask cluster instead of local workers (--jobs is then ignored)")
    p.add_argument("--no-feedback", action="store_true", help="skip the feedback HTML")
    p.add_argument("--bench", action="store_true",
                   help="print grading throughput for JOBS=1 and JOBS=2, and plain nbgrader's time")
    p.add_argument("--students", type=int, default=8, help="class size for --bench (default 8)")
    return p


def _root(args: argparse.Namespace) -> Path:
    if args.root is not None:
        return args.root
    try:
        return course_root()
    except CourseNotFound as exc:
        raise InstructorError(str(exc)) from None


def _grade(args: argparse.Namespace) -> int:
    from cnngrade.run import Run

    if not args.assignment:
        raise InstructorError("name the assignment: python -m cnngrade <id> [--jobs N]")
    if args.jobs < 1 or args.timeout <= 0 or args.cell_timeout <= 0 or args.memory <= 0:
        raise InstructorError("--jobs, --timeout, --cell-timeout and --memory must be positive")
    if args.gpu and not args.scheduler and not bwrap.gpu_args():  # on a cluster, the workers have the GPUs
        raise InstructorError("--gpu: this machine has no NVIDIA device (/dev/nvidia*); grade without --gpu")
    limits = Limits(memory_bytes=int(args.memory * GiB), cpu_seconds=int(max(args.timeout, args.cell_timeout)),
                    gpu=args.gpu)
    run = Run(args.assignment, _root(args), args.jobs, args.timeout, args.cell_timeout, limits,
              force=args.force, students=args.student, feedback=not args.no_feedback,
              scheduler=args.scheduler)
    return run.execute()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    ensure_env_on_path()
    try:
        if not sys.platform.startswith("linux"):
            raise InstructorError(LINUX_ONLY)
        if args.bench:
            from cnngrade.bench import bench

            bench(args.assignment, args.students, args.root)
            return 0
        return _grade(args)
    except InstructorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: re-run the same command to grade the rest", file=sys.stderr)
        return 130
