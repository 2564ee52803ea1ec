"""The run's own checks: an environment the sandbox cannot import from stops the run before anyone is graded."""

from __future__ import annotations

import json
import shutil

from autograde_course import needs_bwrap
from fixtures.autograde import catalogue

from cnngrade.cli import main


@needs_bwrap
def test_a_missing_module_is_an_instructor_error_not_zero_points(tmp_path, capsys):
    root = tmp_path / "course"
    shutil.copytree(catalogue.COURSE / "source" / "ag_tiny", root / "source" / "ag_tiny")
    path = root / "source" / "ag_tiny" / "ag_tiny.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"].insert(1, {"cell_type": "code", "execution_count": None, "id": "dep", "metadata": {},
                           "outputs": [], "source": "import no_such_module_for_grading"})
    path.write_text(json.dumps(nb))
    (root / "submitted" / "ann" / "ag_tiny").mkdir(parents=True)
    shutil.copy(path, root / "submitted" / "ann" / "ag_tiny" / "ag_tiny.ipynb")
    assert main(["ag_tiny", "--root", str(root), "--jobs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot import no_such_module_for_grading" in err[0] and "nobody was graded" in err[0]
    assert not (root / "gradebook.db").exists() and not (root / "autograded" / "ann").exists()
