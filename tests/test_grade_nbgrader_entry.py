"""Plain ``nbgrader autograde`` (and so the formgrader's button) runs student code in the sandbox too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from autograde_course import gradebook_scores, needs_bwrap
from fixtures.autograde import catalogue

from cnncourse.grading import generate
from cnncourse.paths import course_root


def _course_config() -> object:
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(course_root())).load_config()


def test_course_config_replaces_nbgraders_execute_step():
    from traitlets.utils.importstring import import_item

    from cnngrade.plugin import AUTOGRADE_PREPROCESSORS, SandboxExecute

    names = list(_course_config().Autograde.autograde_preprocessors)
    assert names == AUTOGRADE_PREPROCESSORS
    assert import_item(names[0]) is SandboxExecute
    assert all(import_item(n) for n in names)


@needs_bwrap
def test_plain_nbgrader_autograde_runs_in_the_sandbox(tmp_path):
    root = tmp_path / "course"
    shutil.copytree(catalogue.COURSE / "source" / "ag_tiny", root / "source" / "ag_tiny")
    shutil.copy(course_root() / "nbgrader_config.py", root / "nbgrader_config.py")
    generate(root, ["ag_tiny"], root / "gradebook.db")
    nb = json.loads((root / "source" / "ag_tiny" / "ag_tiny.ipynb").read_text())
    nb["cells"].insert(1, {"cell_type": "code", "execution_count": None, "id": "where", "metadata": {},
                           "outputs": [], "source": "import os\nprint('cwd', os.getcwd(), os.path.exists('gradebook.db'))\n"
                                     "open('side_effect.txt', 'w').write('kept')\nos.symlink('/etc/hostname', 'leak')"})
    dest = root / "submitted" / "ann" / "ag_tiny"
    dest.mkdir(parents=True)
    (dest / "ag_tiny.ipynb").write_text(json.dumps(nb))
    nbgrader = Path(sys.executable).parent / "nbgrader"
    env = {**os.environ, "PATH": f"{nbgrader.parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(nbgrader), "autograde", "ag_tiny"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    graded = json.loads((root / "autograded" / "ann" / "ag_tiny" / "ag_tiny.ipynb").read_text())
    where = next(c for c in graded["cells"] if c.get("id") == "where")
    assert "".join(where["outputs"][0]["text"]).strip() == "cwd /home/student/work False"
    assert sum(gradebook_scores(root, "ag_tiny")["ann"].values()) == 8
    autograded = root / "autograded" / "ann" / "ag_tiny"
    assert (autograded / "side_effect.txt").read_text() == "kept"  # nbgrader's "side effects" kept
    assert not os.path.lexists(autograded / "leak")
    assert "_cnnlab_guard" not in json.dumps(graded)


def test_sandbox_settings_default_to_the_notebooks_imports():
    """Run by plain nbgrader (no settings from a worker), the kernel preloads the notebook's imports."""
    from cnngrade.execute import sandbox_settings

    nb = {"cells": [{"cell_type": "code", "source": "import math\nfrom os import path"}]}
    assert sandbox_settings({}, nb).preload == ["math", "os", "os.path"]
    assert sandbox_settings({"preload": ["torch"]}, nb).preload == ["torch"]


@needs_bwrap
def test_autotests_assignment_and_the_course_config_are_honoured(tmp_path):
    """nbgrader's own autotests fixture (``autotests.yml`` at the course root) grades as nbgrader grades it."""
    import sqlite3

    import nbgrader
    from autograde_course import run_grader

    files = Path(nbgrader.__file__).parent / "tests" / "apps" / "files"
    root = tmp_path / "course"
    (root / "source" / "auto").mkdir(parents=True)
    shutil.copy(files / "autotest-simple.ipynb", root / "source" / "auto" / "auto.ipynb")
    shutil.copy(files / "autotests.yml", root / "autotests.yml")
    (root / "nbgrader_config.py").write_text('c = get_config()  # noqa: F821\nc.CourseDirectory.course_id = "other-course"\n')
    source = json.loads((root / "source" / "auto" / "auto.ipynb").read_text())
    for student in ("good", "edited"):
        (root / "submitted" / student / "auto").mkdir(parents=True)
        nb = json.loads(json.dumps(source))
        if student == "edited":  # the autotest cell is not locked: nbgrader grades the edit; it is named
            next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "test_simple")[
                "source"] = "assert True"
        (root / "submitted" / student / "auto" / "auto.ipynb").write_text(json.dumps(nb))
    run, code, out = run_grader(root, "auto", jobs=2)
    assert code == 0, out
    assert (run.outcomes["good"].score, run.outcomes["good"].max_score) == (1, 1), out
    assert run.outcomes["edited"].score == 1 and "edited test cell(s) test_simple (not locked" in " ".join(
        run.outcomes["edited"].reasons), out
    with sqlite3.connect(root / "gradebook.db") as con:
        assert con.execute("SELECT id FROM course").fetchall() == [("other-course",)]
