"""The Dask part of ``make bench-autograde``: 1 local worker beside a 2-worker Dask cluster, the cost of
the distribution layer per student, and what it means for a large class on many machines.

A real ``dask scheduler`` and N ``dask worker --nthreads 1`` processes are started on
127.0.0.1 and the same generated class is graded on them (no feedback, like the local
JOBS=1 / JOBS=2 rows). The distribution layer (pack the submission, ship it through the
scheduler to a worker, unpack it there, pack the result, ship it back, unpack it on the
client) is timed alone by running a larger class through the same path with a task that
grades nothing; the gradebook merge per student is taken from the real Dask run.

Projection, conservative (the client's serial work is not overlapped with grading):

    T(N) = S + N * g / (M * w) + N * d

S: the run's set-up (connect, check the workers, build and ship the template);
g: grading seconds per student on one worker slot (the JOBS=1 row, set-up left out);
M machines with w worker slots each; d: the distribution layer plus the merge, per
student, on the client. The client is the bottleneck once d > g / (M * w).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cnngrade.bench import BenchRow, make_class, time_this_grader
from cnngrade.cluster import ClusterPool, LocalCluster, echo_remote
from cnngrade.files import hash_dir
from cnngrade.records import Job, Outcome
from cnngrade.template import build_template

MACHINES = 50
CLASSES = (1_000, 10_000)
TYPICAL_NOTEBOOK_SECONDS = 30.0  # a course notebook that trains small models


@dataclass
class LayerCost:
    """Milliseconds per student of each part of the distribution layer."""

    students: int
    pack_ms: float
    unpack_ms: float
    round_trip_ms: float   # everything of the no-op run, pack and unpack included, per student
    merge_ms: float

    @property
    def total_ms(self) -> float:
        return self.round_trip_ms + self.merge_ms


def projected_seconds(n: int, setup: float, g: float, machines: int, slots: int, d: float) -> float:
    """T(N) = S + N g / (M w) + N d."""
    return setup + n * g / (machines * slots) + n * d


def echo_cost(address: str, src: Path, aid: str, students: int) -> tuple[float, float, float]:
    """Seconds per student (round trip, pack, unpack) of ``students`` jobs through the Dask path, grading nothing."""
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-echo-") as tmp:
        course = make_class(src, aid, students, Path(tmp))
        template = build_template(course, aid, Path(tmp) / "run")
        jobs = [Job(path.parent.name, aid, str(path), str(template.folder), "", template.notebooks, {},
                    hash_dir(path), "", 60, 60) for path in sorted((course / "submitted").glob(f"*/{aid}"))]
        pool = ClusterPool(address, say=lambda _text: None, task=echo_remote)
        pool.connect()
        try:
            t0 = time.perf_counter()
            pool.grade(jobs, template.folder, 60, Path(tmp) / "results",
                       lambda result: Outcome(result.student), {})
            wall = time.perf_counter() - t0
        finally:
            pool.close()
    return wall / students, pool.layers.pack / students, pool.layers.unpack / students


def format_dask(rows: list[BenchRow], cost: LayerCost, setup: float, g: float, slots: int) -> str:
    one = rows[0]

    def after_setup(r: BenchRow) -> float:
        return r.students / max(r.seconds - r.setup, 1e-9) * 60

    lines = [f"{'grader':<30}  {'workers':>7}  {'students':>8}  {'wall s':>7}  {'set-up s':>8}  "
             f"{'students/min':>12}  {'speedup':>7}  {'/min after set-up':>17}  {'load':>5}  full marks"]
    for r in rows:
        lines.append(f"{r.grader:<30}  {r.jobs:>7}  {r.students:>8}  {r.seconds:>7.1f}  {r.setup:>8.1f}  "
                     f"{r.per_minute:>12.2f}  {r.per_minute / one.per_minute:>6.2f}x  {after_setup(r):>17.2f}  "
                     f"{r.load:>5.1f}  {r.full_marks}/{r.students}")
    lines += ["",
              f"distribution layer per student ({cost.students} students through the Dask path with a no-op "
              f"grader): {cost.round_trip_ms:.1f} ms (client pack {cost.pack_ms:.1f} ms, client unpack "
              f"{cost.unpack_ms:.1f} ms, the rest scheduler, transfer and worker-side unpack/pack); "
              f"gradebook merge and install {cost.merge_ms:.1f} ms; d = {cost.total_ms:.1f} ms",
              "",
              f"projection T(N) = S + N*g/(M*w) + N*d, S = {setup:.1f} s, M = {MACHINES} machines, "
              f"w = {slots} worker slots each, d = {cost.total_ms:.1f} ms:",
              f"{'students':>9}  {f'g = {g:.1f} s (measured)':>24}  {f'g = {TYPICAL_NOTEBOOK_SECONDS:g} s':>12}"]
    for n in CLASSES:
        cells = [projected_seconds(n, setup, gg, MACHINES, slots, cost.total_ms / 1000) / 60
                 for gg in (g, TYPICAL_NOTEBOOK_SECONDS)]
        lines.append(f"{n:>9,}  {cells[0]:>20.1f} min  {cells[1]:>8.1f} min")
    limit = cost.total_ms / 1000 * MACHINES * slots
    lines.append(f"(the client becomes the bottleneck when g < d*M*w = {limit:.1f} s per student)")
    return "\n".join(lines)


def bench_dask(src: Path, aid: str, students: int, rows: list[BenchRow], workers: int, cell_timeout: float,
               out) -> None:
    """Grade the class on a local Dask cluster of ``workers`` single-threaded workers; print the comparison."""
    local = [r for r in rows if r.grader == "cnngrade (no feedback)"]
    one = next(r for r in local if r.jobs == 1)
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-dask-") as tmp:
        cluster = LocalCluster(Path(tmp) / "cluster")
        try:
            cluster.start(workers)
            layers: list = []
            course = make_class(src, aid, students, Path(tmp))
            dask_row = time_this_grader(course, aid, students, workers, False, cell_timeout,
                                        scheduler=cluster.address, layers=layers)
            n_echo = max(20, 4 * students)
            per, pack, unpack = echo_cost(cluster.address, src, aid, n_echo)
        finally:
            cluster.stop()
    merge = layers[0].merge / max(1, layers[0].students)
    cost = LayerCost(n_echo, pack * 1000, unpack * 1000, per * 1000, merge * 1000)
    g = (one.seconds - one.setup) / one.students
    print(f"\nDask: {workers} workers (dask worker --nthreads 1) on this machine's {os.cpu_count()} cores, "
          f"the same {students} students, no feedback (workers: local worker processes or Dask workers)",
          file=out)
    print(format_dask([*local, dask_row], cost, dask_row.setup, g, workers), file=out, flush=True)
