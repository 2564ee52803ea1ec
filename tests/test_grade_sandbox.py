"""The sandbox's host side (binds, command line, import check) and its in-kernel side (boot, guard)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnngrade.sandbox import bwrap
from cnngrade.sandbox.bwrap import Bind, bind_args, python_binds

needs_bwrap = pytest.mark.skipif(bwrap.bwrap_path() is None, reason="bubblewrap (bwrap) is not installed")


def test_binds_of_a_plain_venv_drop_nested_folders_and_usr(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to("/usr/bin/python3")
    pkg = venv / "lib" / "site-packages" / "cnnlab"
    pkg.mkdir(parents=True)
    binds = python_binds(str(venv), "/usr", str(venv / "bin" / "python"), [str(pkg)])
    assert binds == [Bind(str(venv), str(venv))]


def test_binds_of_a_venv_reached_through_a_link(tmp_path):
    """``course/.venv`` as a link: the real folder is shown at both paths, so ``course/.venv/bin/python`` runs."""
    real = tmp_path / "elsewhere" / "venv"
    (real / "bin").mkdir(parents=True)
    (real / "bin" / "python").symlink_to("/usr/bin/python3")
    course = tmp_path / "course"
    course.mkdir()
    (course / ".venv").symlink_to(real)
    binds = python_binds(str(course / ".venv"), "/usr", str(course / ".venv" / "bin" / "python"), [])
    assert set(binds) == {Bind(str(real), str(real)), Bind(str(real), str(course / ".venv"))}
    args = bind_args(binds)
    assert ["--perms", "0755", "--dir", str(course)] == args[args.index(str(course)) - 3:args.index(str(course)) + 1]


def test_binds_of_a_conda_like_prefix_outside_the_course(tmp_path):
    """An environment whose prefix is its own base installation, with the course's package elsewhere."""
    env = tmp_path / "opt" / "conda" / "envs" / "cnn"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python3.11").write_text("")
    (env / "bin" / "python").symlink_to("python3.11")
    pkg = tmp_path / "src" / "cnnlab"
    pkg.mkdir(parents=True)
    binds = python_binds(str(env), str(env), str(env / "bin" / "python"), [str(pkg)])
    assert sorted(binds, key=lambda b: b.dest) == [Bind(str(env), str(env)), Bind(str(pkg), str(pkg))]


@needs_bwrap
@pytest.mark.parametrize("layout", ["linked venv in the course", "environment outside the course",
                                    "interpreter started by a path with .."])
def test_sandbox_imports_the_course_packages_in_both_layouts(tmp_path, layout):
    """The import check runs the interpreter inside bwrap exactly as a kernel is started."""
    venv = Path(sys.prefix)
    if layout == "linked venv in the course":
        (tmp_path / "course").mkdir()
        (tmp_path / "course" / ".venv").symlink_to(venv)
        python = tmp_path / "course" / ".venv" / "bin" / "python"
    elif layout == "environment outside the course":
        python = venv / "bin" / "python"
    else:
        python = venv / "bin" / ".." / "bin" / "python"
    probe = ("import sys; from cnngrade.sandbox import import_check; "
             "print(repr(import_check(['math', 'cnnlab.checks']))); print(repr(import_check(['no_such_module_x'])))")
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert out.returncode == 0, out.stderr
    ok, missing = out.stdout.strip().splitlines()
    assert ok == "''", f"{layout}: {ok}"
    assert "cannot import no_such_module_x (ModuleNotFoundError" in missing


def _run_script(tmp_path: Path, body: str) -> str:
    script = tmp_path / "script.py"
    script.write_text(body)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": ""})
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_guard_restores_patched_functions_and_reports_them(tmp_path):
    """The in-kernel guard, loaded as the boot module loads it, on a protected module (no kernel needed)."""
    out = _run_script(tmp_path, f'''
import sys, types
sys.path.insert(0, {str(bwrap.INKERNEL_DIR)!r})
import boot
g = boot.load_guard_module()
checks = types.ModuleType("cnnlab.fake_checks")
def assert_close(a, b):
    assert a == b
checks.assert_close = assert_close
sys.modules["cnnlab.fake_checks"] = checks
guard = g.Guard()
guard.snapshot()
print(repr(guard.begin()))
checks.assert_close = lambda a, b: None
print(guard.begin())
print(checks.assert_close is assert_close)
checks.assert_close = lambda a, b: None
print(guard.finish())
print(guard.finish())
print(g.__builtins__ is not __builtins__ and g.__builtins__["len"] is len)
''')
    lines = out.splitlines()
    assert lines[0] == "('', [])"
    assert lines[1] == "('cnnlab.fake_checks.assert_close was replaced', [])"
    assert lines[2] == "True"
    assert lines[3] == "['cnnlab.fake_checks.assert_close was replaced']", "finish reports and restores"
    assert lines[4] == "[]"
    assert lines[5] == "True", "the guard has its own copy of the builtins"


def test_boot_module_copies_the_submission_and_skips_links(tmp_path):
    sub = tmp_path / "sub"
    (sub / "data").mkdir(parents=True)
    (sub / "data" / "x.csv").write_text("1,2")
    (sub / "link").symlink_to("/etc/passwd")
    out = _run_script(tmp_path, f'''
import sys
from pathlib import Path
sys.path.insert(0, {str(bwrap.INKERNEL_DIR)!r})
import boot
boot.copy_submission(Path({str(tmp_path / "work")!r}), Path({str(sub)!r}))
print(sorted(str(p.relative_to({str(tmp_path / "work")!r})) for p in Path({str(tmp_path / "work")!r}).rglob("*")))
''')
    assert out.strip() == "['data', 'data/x.csv']"


def test_in_kernel_modules_use_the_standard_library_only():
    import ast

    allowed_late = {"ipykernel"}  # imported by boot only once limits, privileges and guard are in place
    for path in sorted(bwrap.INKERNEL_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in allowed_late or top == "__future__", (path.name, name)
