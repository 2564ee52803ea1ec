"""The package layout: learners' library, course tooling and grading service stay apart; the course root."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cnncourse.paths import ENV_VAR, CourseNotFound, course_root

PACKAGES = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_learner_library_imports_neither_nbgrader_nor_the_tooling():
    for path in sorted((PACKAGES / "cnnlab").glob("*.py")):
        bad = _imports(path) & {"nbgrader", "cnngrade", "cnncourse", "nbclient", "jupyter_client"}
        assert not bad, f"{path.name} imports {sorted(bad)}: cnnlab is only what learners import"


def test_grading_service_imports_no_torch_and_no_learner_library_on_the_host():
    for path in sorted((PACKAGES / "cnngrade").rglob("*.py")):
        bad = _imports(path) & {"torch", "numpy", "cnnlab"}
        assert not bad, f"{path.relative_to(PACKAGES)} imports {sorted(bad)}"


def _uses_file(path: Path) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "__file__" for n in ast.walk(ast.parse(path.read_text())))


def test_no_tooling_module_finds_the_course_from_its_own_file():
    """``__file__`` may only locate the grader's own in-kernel files, never the course."""
    users = sorted(str(p.relative_to(PACKAGES)) for pkg in ("cnncourse", "cnngrade")
                   for p in (PACKAGES / pkg).rglob("*.py") if _uses_file(p))
    allowed = {
        "cnncourse/devices.py": "recognises its own frames in tracebacks",
        "cnngrade/inkernel/boot.py": "loads the guard module beside it",
        "cnngrade/sandbox/bwrap.py": "locates the in-kernel folder to mount",
    }
    assert users == sorted(allowed), f"review the new use of __file__: {sorted(set(users) - set(allowed))}"
    bwrap_src = (PACKAGES / "cnngrade" / "sandbox" / "bwrap.py").read_text()
    assert 'Path(__file__).resolve().parent.parent / "inkernel"' in bwrap_src


def _course(path: Path) -> Path:
    (path / "source").mkdir(parents=True)
    (path / "nbgrader_config.py").write_text("c = get_config()\n")
    return path


def test_course_root_walks_up_from_the_working_directory(tmp_path):
    root = _course(tmp_path / "course")
    deep = root / "mywork" / "01_x"
    deep.mkdir(parents=True)
    assert course_root(deep, environ={}) == root.resolve()
    assert course_root(root, environ={}) == root.resolve()


def test_course_root_from_the_environment_wins(tmp_path):
    one, two = _course(tmp_path / "one"), _course(tmp_path / "two")
    assert course_root(one, environ={ENV_VAR: str(two)}) == two.resolve()
    with pytest.raises(CourseNotFound, match="is not a course folder"):
        course_root(one, environ={ENV_VAR: str(tmp_path)})


def test_course_root_missing_is_one_clear_error(tmp_path):
    (tmp_path / "source").mkdir()  # no nbgrader_config.py: not a course
    with pytest.raises(CourseNotFound, match=f"set {ENV_VAR}"):
        course_root(tmp_path, environ={})
