"""The run's template course: ``source/<id>`` copied, the student version and a private gradebook.

Built once per run by nbgrader's own ``generate_assignment``; every job copies it. It
also yields the modules the source notebook imports (preloaded in every kernel, so the
guard's snapshot covers them) and the ones the sandbox must be able to import.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from cnncourse.cells import cell_source
from cnncourse.grading import course_id, generate, load_course_config
from cnngrade.files import copy_regular_files
from cnngrade.gradebook import GradebookUrl, copy_duedate, memoize_alembic_version


@dataclass
class Template:
    folder: Path
    notebooks: list[str]                                  # notebook names without .ipynb
    preload: list[str] = field(default_factory=list)      # modules (and maybe-modules) imported up front
    required: list[str] = field(default_factory=list)     # modules the source certainly imports


def _code(cell: dict) -> str:
    """A code cell's source without IPython magics and shell lines (which do not parse)."""
    return "\n".join(ln for ln in cell_source(cell).splitlines() if not ln.lstrip().startswith(("%", "!")))


def imports(notebook: dict) -> tuple[list[str], list[str]]:
    """Modules the notebook imports: (everything to try, including ``from m import x`` as ``m.x``; the certain ones)."""
    names: list[str] = []
    required: list[str] = []
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        try:
            tree = ast.parse(_code(cell))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names += [a.name for a in node.names]
                required += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
                required.append(node.module)
                names += [f"{node.module}.{a.name}" for a in node.names if a.name != "*"]
    return list(dict.fromkeys(names)), list(dict.fromkeys(required))


COURSE_FILES = ("nbgrader_config.py", "autotests.yml")  # the course's own configuration, honoured


def build_template(root: Path, aid: str, run_dir: Path, gradebook: GradebookUrl | Path | None = None) -> Template:
    """Generate the template of ``aid`` under ``run_dir`` from the course at ``root``.

    The course's ``nbgrader_config.py`` is honoured, and its ``autotests.yml`` is where
    nbgrader looks for it (the working directory of ``generate_assignment``).
    """
    memoize_alembic_version()
    folder = run_dir / "template"
    copy_regular_files(root / "source" / aid, folder / "source" / aid, limit_files=10_000, limit_bytes=2**40)
    for name in COURSE_FILES:
        if (root / name).is_file():
            shutil.copy(root / name, folder / name)
    db = folder / "gradebook.db"
    config = load_course_config(folder)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        generate(folder, [aid], db, base=config)
    finally:
        os.chdir(cwd)
    notebooks = sorted(p.stem for p in (folder / "release" / aid).glob("*.ipynb"))
    template = Template(folder, notebooks)
    for nbname in notebooks:
        names, required = imports(json.loads((folder / "source" / aid / f"{nbname}.ipynb").read_text()))
        template.preload += names
        template.required += required
    template.preload = list(dict.fromkeys(template.preload))
    template.required = list(dict.fromkeys(template.required))
    copy_duedate(gradebook or root / "gradebook.db", db, aid, course_id(config))
    return template
