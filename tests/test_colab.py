"""The Colab set-up cell: runs its install only on Colab, never touches torch, and is written idempotently."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
import torch

from cnncourse.colab import (
    CELL_ID,
    ensure_setup_cell,
    is_setup_source,
    main,
    on_colab,
    setup_source,
    update_notebook,
)

REPO = Path(__file__).resolve().parents[1]
URL = "https://github.com/example/cnn-course"


def test_on_colab_detection():
    assert on_colab({"google.colab": object()}, {})
    assert on_colab({}, {"COLAB_RELEASE_TAG": "release-colab_20260101"})
    assert not on_colab({"google": object()}, {"COLAB": "1"})


class _Shell:
    """Stands in for Colab's IPython: records the %pip lines the cell runs."""

    def __init__(self) -> None:
        self.magics: list[tuple[str, str]] = []

    def run_line_magic(self, name: str, line: str) -> None:
        self.magics.append((name, line))


def _run_cell(monkeypatch, capsys, repository: str = URL) -> list[list[str]]:
    import IPython

    shell = _Shell()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    exec(compile(setup_source(repository), "<colab-setup>", "exec"), {})
    assert capsys.readouterr().out == ""
    assert all(name == "pip" for name, _ in shell.magics)
    return [[sys.executable, "-m", "pip", *shlex.split(line)] for _, line in shell.magics]


def test_the_cell_does_nothing_off_colab(monkeypatch, capsys):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert _run_cell(monkeypatch, capsys) == []


@pytest.mark.skipif(sys.platform == "win32", reason="Colab is Linux; the cell writes to /tmp")
@pytest.mark.parametrize("how", ["module", "environment"])
def test_on_colab_the_cell_installs_the_course_and_pins_colabs_torch(monkeypatch, capsys, how):
    if how == "module":
        monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20260101")
    (cmd,) = _run_cell(monkeypatch, capsys)
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"]
    constraint = Path(cmd[cmd.index("-c") + 1]).read_text().splitlines()
    assert f"torch=={torch.__version__}" in constraint
    assert any(line.startswith("torchvision==") for line in constraint)
    assert f"cnnlab @ git+{URL}@main" in cmd and "captum==0.9.0" in cmd
    assert not any(arg.startswith(("torch", "--upgrade", "-U", "--force")) for arg in cmd[4:])


def test_on_colab_without_a_repository_the_cell_asks_for_it(monkeypatch, capsys):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20260101")
    with pytest.raises(ValueError, match="paste the course repository's https:// URL into COURSE_REPOSITORY"):
        _run_cell(monkeypatch, capsys, repository="")


def test_every_notebook_with_code_carries_the_same_cell_first():
    expected = None
    paths = sorted([*REPO.glob("notebooks/*.ipynb"), *REPO.glob("source/*/*.ipynb"), *REPO.glob("release/*/*.ipynb")])
    assert len(paths) >= 3 * 13
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        if not code:
            continue
        first = code[0]
        assert first.get("id") == CELL_ID, f"{path.relative_to(REPO)}: the first code cell is not the Colab set-up cell"
        assert sum(c.get("id") == CELL_ID for c in code) == 1, f"{path.relative_to(REPO)}: more than one set-up cell"
        expected = expected or first.source
        assert first.source == expected, f"{path.relative_to(REPO)}: a different set-up cell (run python -m cnncourse.colab)"
        assert "remove-cell" in first.metadata.get("tags", []), "the book leaves the set-up cell out"


def test_the_cell_is_lint_clean(tmp_path):
    path = tmp_path / "cell.py"
    path.write_text(setup_source(URL) + "\n")
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or "ruff"
    result = subprocess.run([ruff, "check", "--isolated", "--select", "E,F,W,I,B,UP", "--line-length", "120",
                             str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("bad", [("http://x/y", "main"), (URL, "main; rm"), (URL + "@v1", "main")])
def test_setup_source_refuses_odd_locations(bad):
    with pytest.raises(ValueError):
        setup_source(*bad)


def test_the_set_up_cell_is_recognised_whatever_repository_it_names():
    assert is_setup_source(setup_source()) and is_setup_source(setup_source(URL))
    assert not is_setup_source(setup_source(URL) + "\nimport ctypes")
    assert not is_setup_source(setup_source().replace("import torch\n", "import torch\nimport sys as s\n"))


def test_insertion_is_idempotent_and_keeps_the_title_first():
    nb = {"cells": [{"cell_type": "markdown", "id": "md-000", "metadata": {}, "source": ["# Title"]},
                    {"cell_type": "code", "id": "code-001", "metadata": {}, "outputs": [],
                     "execution_count": None, "source": ["import torch"]}]}
    assert ensure_setup_cell(nb, setup_source(URL))
    assert [c["id"] for c in nb["cells"]] == ["md-000", CELL_ID, "code-001"]
    assert not ensure_setup_cell(nb, setup_source(URL))
    assert ensure_setup_cell(nb, setup_source(URL, "v1.0"))
    assert [c["id"] for c in nb["cells"]] == ["md-000", CELL_ID, "code-001"]
    assert "@v1.0" in "".join(nb["cells"][1]["source"])


def test_a_real_notebook_stays_valid(tmp_path, capsys):
    path = tmp_path / "01_convolution.ipynb"
    shutil.copy(REPO / "notebooks" / "01_convolution.ipynb", path)
    assert main(["--repository", URL, str(path)]) == 0
    assert "Colab set-up cell written" in capsys.readouterr().out
    nbformat.validate(nbformat.read(path, as_version=4))
    before = path.read_text()
    assert not update_notebook(path, setup_source(URL))
    assert path.read_text() == before
