"""The nbgrader pipeline: release is in sync and leak-free, notebooks are stored clean, self-grading works."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from cnncourse import grading
from cnncourse.bench import BenchRow, format_table, metrics_from_outputs
from cnncourse.grading import generate, topics
from cnncourse.paths import course_root
from cnncourse.workspace import sync_workspace

REPO = course_root()
TOPICS = topics(REPO)
SOLUTION_BLOCK = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
HIDDEN_BLOCK = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def test_every_topic_has_lecture_exercise_release_and_tests():
    assert TOPICS, "no topics in source/"
    for topic in TOPICS:
        assert (REPO / "notebooks" / f"{topic}.ipynb").is_file(), f"missing lecture notebooks/{topic}.ipynb"
        files = sorted(p.name for p in (REPO / "source" / topic).iterdir())
        assert files == [f"{topic}.ipynb"], f"source/{topic}/ must hold only its notebook (nbgrader copies the rest): {files}"
        assert (REPO / "release" / topic / f"{topic}.ipynb").is_file(), f"run `make release` for {topic}"
        assert (REPO / "tests" / f"test_topic_{topic}.py").is_file(), f"missing tests/test_topic_{topic}.py"


def test_release_is_regenerated_without_drift(tmp_path):
    """Regenerate every assignment from source/ in a scratch course and compare byte for byte."""
    shutil.copytree(REPO / "source", tmp_path / "source")
    generate(tmp_path, TOPICS, tmp_path / "gradebook.db")
    committed = sorted(p.relative_to(REPO / "release") for p in (REPO / "release").rglob("*") if p.is_file())
    fresh = sorted(p.relative_to(tmp_path / "release") for p in (tmp_path / "release").rglob("*") if p.is_file())
    assert committed == fresh, "release/ has different files than a fresh `make release`"
    drift = [str(p) for p in fresh if (tmp_path / "release" / p).read_bytes() != (REPO / "release" / p).read_bytes()]
    assert not drift, f"release/ is out of date, run `make release`: {drift}"


@pytest.mark.parametrize("topic", TOPICS)
def test_release_leaks_no_solution_or_hidden_test(topic):
    release_text = (REPO / "release" / topic / f"{topic}.ipynb").read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in release_text, f"release/{topic} contains {marker!r}"
    released_lines = {ln.strip() for c in _cells(REPO / "release" / topic / f"{topic}.ipynb")
                      for ln in "".join(c["source"]).splitlines()}
    secret_lines, public_lines = set(), set()
    for cell in _cells(REPO / "source" / topic / f"{topic}.ipynb"):
        src = "".join(cell["source"])
        for block in SOLUTION_BLOCK.findall(src) + HIDDEN_BLOCK.findall(src):
            secret_lines |= {ln.strip() for ln in block.splitlines() if len(ln.strip()) >= 20}
        public = HIDDEN_BLOCK.sub("", SOLUTION_BLOCK.sub("", src))
        public_lines |= {ln.strip().lstrip("#").strip() for ln in public.splitlines()}
    # a line the author also shows on purpose (given code, a hint, a visible test) is not a secret
    secret_lines -= public_lines
    leaked = sorted(secret_lines & released_lines)
    assert not leaked, f"release/{topic} contains solution or hidden-test lines: {leaked[:5]}"


def _all_notebooks() -> list[Path]:
    return sorted((REPO / "notebooks").glob("*.ipynb")) + sorted((REPO / "source").glob("*/*.ipynb")) + sorted(
        (REPO / "release").glob("*/*.ipynb"))


@pytest.mark.parametrize("path", _all_notebooks(), ids=lambda p: str(p.relative_to(REPO)))
def test_notebooks_are_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell["outputs"] and cell["execution_count"] is None, f"{path.name}: strip outputs"


def test_workspace_copies_release_and_never_overwrites(tmp_path):
    (tmp_path / "release" / "01_x").mkdir(parents=True)
    (tmp_path / "release" / "01_x" / "01_x.ipynb").write_text("{}")
    created = sync_workspace(tmp_path)
    assert created == [tmp_path / "mywork" / "01_x" / "01_x.ipynb"]
    created[0].write_text("my work")
    assert sync_workspace(tmp_path) == []
    assert created[0].read_text() == "my work"


def test_self_grading_prints_points_and_feedback(tmp_path, capsys):
    """`make grade`: a filled-in notebook is graded against the hidden tests, with HTML feedback."""
    topic = "01_convolution"
    learner = tmp_path / "mywork" / topic / f"{topic}.ipynb"
    learner.parent.mkdir(parents=True)
    shutil.copy(REPO / "source" / topic / f"{topic}.ipynb", learner)
    assert grading.main([topic, str(learner)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"conv2d_naive_tests\s+4 / 4", out), out
    assert re.search(r"total\s+16 / 16", out), out
    feedback = learner.parent / f"{topic}_feedback.html"
    assert f"feedback: {feedback}" in out and feedback.stat().st_size > 1000


def test_self_grading_explains_lost_points_in_notebook_order(tmp_path, capsys):
    """A wrong answer costs its points and the table says why, in the learner's order, without noise."""
    topic = "01_convolution"
    nb = json.loads((REPO / "source" / topic / f"{topic}.ipynb").read_text())
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "conv_output_size":
            cell["source"] = [src.replace("2 * padding", "padding")]
    learner = tmp_path / f"{topic}.ipynb"
    learner.write_text(json.dumps(nb))
    assert grading.main([topic, str(learner)]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if re.match(r"^\w+_tests\s", line)]
    assert lines[0].startswith("conv_output_size_tests") and "0 / 2" in lines[0], captured.out
    assert "padding" in lines[0], f"the failing test's message is missing: {lines[0]}"
    in_notebook = [c["metadata"]["nbgrader"]["grade_id"] for c in nb["cells"]
                   if c.get("metadata", {}).get("nbgrader", {}).get("grade") and c["cell_type"] == "code"]
    assert [line.split()[0] for line in lines] == in_notebook, "exercises are not listed in notebook order"
    assert "Warning" not in captured.out + captured.err, captured.err[-2000:]


def test_self_grading_rejects_bad_input(capsys):
    assert grading.main(["99_nope"]) == 2
    assert "unknown topic" in capsys.readouterr().err
    assert grading.main(["01_convolution", "/nonexistent.ipynb"]) == 2
    assert "not found" in capsys.readouterr().err


def test_bench_reads_metric_lines_and_formats_a_table():
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x\n[metric] held-out accuracy = 0.9812\n")]
    nb.cells.append(cell)
    assert metrics_from_outputs(nb) == {"held-out accuracy": "0.9812"}
    table = format_table([BenchRow("notebooks/a.ipynb", 12.0, {"acc": "0.98"}), BenchRow("b", 75.0), BenchRow("c", 1.0, error="boom")])
    assert "ok    acc = 0.98" in table and "SLOW" in table and "FAIL  boom" in table
