"""Grading on a real Dask cluster on 127.0.0.1: the local run's scores, a killed worker, a resumed run."""

from __future__ import annotations

import io
import os
import threading
import time

import pytest
from autograde_course import (
    CELL_TIMEOUT,
    LIMITS,
    build_course,
    gradebook_scores,
    needs_bwrap,
    run_grader,
)
from fixtures.autograde import catalogue

from cnngrade.cluster import LocalCluster, RemoteJob, grade_remote
from cnngrade.pack import Budget, Entry, PackError, Tree, pack_tree, unpack_tree
from cnngrade.records import Job, Result
from cnngrade.run import Run

CLASS = ["honest_alt", "blank", "symlink", "custom_exc"]
WAIT = 300  # seconds before a test gives up waiting on a state (a hung cluster fails, never hangs)


def _cases(names: list[str]) -> list[catalogue.Case]:
    by_name = {c.student: c for c in catalogue.TINY}
    return [by_name[n] for n in names]


def _honest(n: int) -> list[catalogue.Case]:
    return [catalogue.Case(f"s{i}", catalogue.b_honest, 8) for i in range(n)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two single-threaded workers, killed (process groups) at the end, even on failure."""
    local = LocalCluster(tmp_path_factory.mktemp("dask"))
    try:
        yield local.start(2)
    finally:
        local.stop()


def _view(run) -> dict:
    return {s: (o.score, o.max_score, o.status, list(o.reasons)) for s, o in run.outcomes.items()}


def _graded_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith("[")]


# ---- the pieces ------------------------------------------------------------------------
def test_pack_round_trip_keeps_links_and_sizes_and_stays_inside(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.ipynb").write_text("{}")
    (src / "sub" / "data.bin").write_bytes(os.urandom(3000))
    (src / "link.ipynb").symlink_to("/etc/passwd")
    (src / "dirlink").symlink_to(src / "sub")
    os.mkfifo(src / "pipe")
    tree = pack_tree(src, Budget(others=2100))
    kinds = {e.path: e.kind for e in tree.entries}
    assert kinds == {"a.ipynb": "file", "sub/data.bin": "file", "link.ipynb": "link", "dirlink": "link",
                     "pipe": "other"}
    too_big = {e.path: e for e in pack_tree(src, Budget(notebook_limit=1)).entries}["a.ipynb"]
    assert (too_big.data, too_big.size) == (b"", 2)  # over preflight's limit: only the size travels
    out = unpack_tree(tree, tmp_path / "out")
    assert (out / "a.ipynb").read_text() == "{}"
    assert os.readlink(out / "link.ipynb") == "/etc/passwd" and (out / "dirlink").is_symlink()
    assert (out / "sub" / "data.bin").stat().st_size == 3000  # past the budget: size kept, contents not
    assert not (out / "pipe").is_file() and (out / "pipe").exists()
    link_folder = tmp_path / "linked"
    link_folder.symlink_to(src)
    assert unpack_tree(pack_tree(link_folder), tmp_path / "out2").is_symlink()
    for bad in ("../evil", "/abs", "dirlink/x"):
        with pytest.raises(PackError):
            unpack_tree(Tree([Entry("dirlink", "link", target="/tmp"), Entry(bad, "file", b"x", 1)]),
                         tmp_path / f"bad{len(bad)}")
    assert not (tmp_path / "evil").exists()


# ---- on the cluster --------------------------------------------------------------------
@needs_bwrap
def test_cluster_gives_the_local_scores(cluster, tmp_path):
    """Honest, blank, broken and hostile submissions: the same outcomes, gradebook rows and files as locally."""
    cases = _cases(CLASS)
    local_root = build_course(tmp_path / "local", "ag_tiny", cases)
    dask_root = build_course(tmp_path / "dask", "ag_tiny", cases)
    local, code1, _ = run_grader(local_root, "ag_tiny", jobs=2)
    remote, code2, out = run_grader(dask_root, "ag_tiny", jobs=1, scheduler=cluster.address)
    assert code1 == code2 == 0, out
    assert _view(remote) == _view(local), out
    assert gradebook_scores(dask_root, "ag_tiny") == gradebook_scores(local_root, "ag_tiny")
    for case in cases:
        assert remote.outcomes[case.student].score == case.score, (case.student, out)
        assert (dask_root / "autograded" / case.student / "ag_tiny" / ".cnnlab-autograde.json").is_file()
        assert list((dask_root / "feedback" / case.student / "ag_tiny").glob("*.html")), case.student
    assert "done 4, running 0, failed 0, queued 0" in out, out
    assert set(remote.cluster.worker_of.values()) <= set(_worker_addresses(cluster)), remote.cluster.worker_of


@needs_bwrap
def test_a_crashing_grader_is_reported_once_not_retried(cluster, tmp_path):
    """A job the grader cannot run (no template on the worker) comes back as an internal result for that student."""
    from distributed import Client

    job = Job("zed", "ag_tiny", "", "", "", ["ag_tiny"], {}, "h", "sh", 5, 30)
    with Client(cluster.address, set_as_default=False) as client:
        future = client.submit(grade_remote, RemoteJob(job.to_json(), Tree(), 30), Tree(), "no-template", pure=False)
        result = Result.from_json(future.result(timeout=WAIT).result)
        assert future.status == "finished"
    assert result.student == "zed" and result.status == "internal" and result.error, result


class _CtrlCAfterFirst(io.StringIO):
    """The run's output; Ctrl-C (KeyboardInterrupt) right after the first student is reported."""

    def write(self, text: str) -> int:
        n = super().write(text)
        if text.startswith("[1/"):
            raise KeyboardInterrupt
        return n


@needs_bwrap
def test_an_interrupted_cluster_run_resumes_with_the_rest(cluster, tmp_path):
    """Ctrl-C after the first student, then the same run again: only the others are graded, nobody twice."""
    cases = _honest(3)
    root = build_course(tmp_path, "ag_tiny", cases)
    out = _CtrlCAfterFirst()
    with pytest.raises(KeyboardInterrupt):
        Run("ag_tiny", root, 1, 300, CELL_TIMEOUT, LIMITS, out=out, scheduler=cluster.address).execute()
    first = [c.student for c in cases
             if (root / "autograded" / c.student / "ag_tiny" / ".cnnlab-autograde.json").exists()]
    assert len(first) == 1, out.getvalue()
    again, code, text = run_grader(root, "ag_tiny", jobs=1, scheduler=cluster.address)
    assert code == 0, text
    assert "graded 2, unchanged 1" in text, text
    assert sorted(s for s, o in again.outcomes.items() if o.status == "graded") == \
        sorted({c.student for c in cases} - set(first)), text
    assert len(_graded_lines(text)) == 2, text
    scores = gradebook_scores(root, "ag_tiny")
    assert {s: sum(v.values()) for s, v in scores.items()} == {c.student: 8 for c in cases}


def _worker_addresses(cluster: LocalCluster) -> dict[str, str]:
    """address -> name of the connected workers."""
    from distributed import Client

    with Client(cluster.address, set_as_default=False) as client:
        return {addr: w["name"] for addr, w in client.scheduler_info()["workers"].items()}


def _wait_for_a_job_on(cluster: LocalCluster, name: str, grading: threading.Thread) -> str:
    """The student whose task the scheduler reports processing on worker ``name``."""
    from distributed import Client

    with Client(cluster.address, set_as_default=False) as client:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and grading.is_alive():
            names = {addr: w["name"] for addr, w in client.scheduler_info()["workers"].items()}
            for addr, keys in client.processing().items():
                ours = [k for k in keys if str(k).startswith("cnngrade-")]
                if names.get(addr) == name and ours:
                    return str(ours[0]).split("-", 2)[2]
            time.sleep(0.05)  # polling the scheduler's state, not waiting for time to pass
    raise AssertionError(f"no job was ever processing on worker {name}")


@needs_bwrap
def test_a_killed_worker_loses_nobody_and_records_nobody_twice(cluster, tmp_path):
    """SIGKILL a worker (its whole process group) while it grades: its student is graded on the other worker."""
    cases = _honest(3)
    root = build_course(tmp_path, "ag_tiny", cases)
    box: dict = {}

    def grade() -> None:
        box["run"], box["code"], box["out"] = run_grader(root, "ag_tiny", jobs=1, scheduler=cluster.address)

    grading = threading.Thread(target=grade)
    grading.start()
    victim_name = "w0"
    student = _wait_for_a_job_on(cluster, victim_name, grading)
    victim_addr = next(a for a, n in _worker_addresses(cluster).items() if n == victim_name)
    cluster.kill(cluster.workers[0])
    grading.join(WAIT)
    assert not grading.is_alive(), "grading did not finish after a worker was killed"
    run, out = box["run"], box["out"]
    assert box["code"] == 0, out
    assert {s: o.score for s, o in run.outcomes.items()} == {c.student: 8 for c in cases}, out
    lines = _graded_lines(out)
    assert len(lines) == 3 and all(sum(f" {c.student} " in f" {ln} " for ln in lines) == 1 for c in cases), out
    assert run.cluster.worker_of[student] != victim_addr, (student, run.cluster.worker_of)
    scores = gradebook_scores(root, "ag_tiny")
    assert {s: sum(v.values()) for s, v in scores.items()} == {c.student: 8 for c in cases}


def test_an_unreachable_scheduler_is_one_instructor_error_line(tmp_path, capsys, monkeypatch):
    """No cluster at the address: exit 2 with one line, nobody graded, the gradebook untouched."""
    import socket

    from cnngrade import cluster as cluster_module
    from cnngrade.cli import main

    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT", 2)
    root = build_course(tmp_path, "ag_tiny", _honest(1))
    before = (root / "gradebook.db").read_bytes()
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["ag_tiny", "--root", str(root), "--scheduler", f"tcp://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"no Dask cluster with a worker at tcp://127.0.0.1:{port}" in err[0], err
    assert (root / "gradebook.db").read_bytes() == before
    assert not (root / "autograded" / "s0").exists()
