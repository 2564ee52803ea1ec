"""The Google Colab set-up cell that every course notebook carries, and the tool that writes it.

On Colab the cell installs the course package (``cnnlab`` and ``cnncourse``, with the
pretrained weights it ships) from the repository, plus the one library Colab lacks
(captum), with a pip constraint that pins Colab's own torch and torchvision so pip can
never replace them. Everywhere else it does nothing and prints nothing. The course
needs no other data: the digits, photos and shapes come from scikit-learn, scikit-image
and ``cnnlab.data``, which are all installed by then.

Colab is recognised by ``google.colab`` among the imported modules (a Colab kernel
imports it at start) or by the ``COLAB_RELEASE_TAG`` environment variable Colab sets.

Insert or update the cell in notebooks (idempotent; the cell goes right before the first
code cell, so the title stays on top)::

    python -m cnncourse.colab [--repository https://github.com/ORG/REPO] notebooks/*.ipynb source/*/*.ipynb

then ``make release``. Without ``--repository`` the form field starts empty and a learner on
Colab pastes the address they opened the notebook from (the cell says so in one line).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

CELL_ID = "colab-setup"
MARKER = "# Google Colab only: install the course package"
CAPTUM = "captum==0.9.0"
# Colab shows the cell as a form; the book leaves it out (it installs nothing worth reading).
METADATA = {"cellView": "form", "tags": ["remove-cell"]}

TEMPLATE = '''{marker} (keeps Colab's torch); does nothing elsewhere.
import os
import sys

COURSE_REPOSITORY = "{repository}"  # @param {{type:"string"}}

if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ:
    import torch
    import torchvision
    from IPython import get_ipython

    if not COURSE_REPOSITORY.startswith("https://") or any(c in COURSE_REPOSITORY for c in " \\"'@"):
        raise ValueError("Colab set-up: paste the course repository's https:// URL into COURSE_REPOSITORY "
                         "above (the address you opened this notebook from), then run this cell again")
    with open("/tmp/colab-keep-torch.txt", "w") as keep:
        keep.write(f"torch=={{torch.__version__}}\\ntorchvision=={{torchvision.__version__}}\\n")
    get_ipython().run_line_magic("pip", f"install --quiet -c /tmp/colab-keep-torch.txt {captum} "
                                        f"'cnnlab @ git+{{COURSE_REPOSITORY.rstrip('/')}}@{ref}'")'''


def on_colab(modules: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether this Python runs on Google Colab (the same test as the set-up cell's)."""
    modules = sys.modules if modules is None else modules
    environ = os.environ if environ is None else environ
    return "google.colab" in modules or "COLAB_RELEASE_TAG" in environ


def setup_source(repository: str = "", ref: str = "main") -> str:
    """The source of the set-up cell for the course repository ``repository`` at ``ref``.

    ``repository`` is the form field's default; empty until the course has a public home,
    in which case a Colab learner pastes the address they opened the notebook from.
    """
    if (repository and not repository.startswith("https://")) or any(c in repository + ref for c in " \"'@\n"):
        raise ValueError(f"repository must be an https:// URL and ref a plain name, got {repository!r}, {ref!r}")
    return TEMPLATE.format(marker=MARKER, captum=CAPTUM, repository=repository.rstrip("/"), ref=ref)


_REPOSITORY_LINE = re.compile(r'^COURSE_REPOSITORY = "[^"\n]*"', re.M)


def is_setup_source(source: str) -> bool:
    """Whether ``source`` is the course's set-up cell as written (whatever repository its form field holds)."""
    return _REPOSITORY_LINE.sub('COURSE_REPOSITORY = ""', source) == setup_source()


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def ensure_setup_cell(nb: dict, source: str) -> bool:
    """Put the set-up cell into notebook ``nb`` (in place); return whether anything changed.

    An existing set-up cell (by id, or by its first line) is updated where it stands;
    otherwise a new one goes right before the first code cell.
    """
    cells = nb["cells"]
    for cell in cells:
        if cell.get("id") == CELL_ID or _source(cell).startswith(MARKER):
            if _source(cell) == source and cell.get("id") == CELL_ID and cell.get("metadata") == METADATA:
                return False
            cell.update(cell_type="code", id=CELL_ID, source=_lines(source))
            cell["metadata"] = dict(METADATA)
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
            return True
    new = {"cell_type": "code", "execution_count": None, "id": CELL_ID, "metadata": dict(METADATA),
           "outputs": [], "source": _lines(source)}
    first_code = next((i for i, c in enumerate(cells) if c["cell_type"] == "code"), len(cells))
    cells.insert(first_code, new)
    return True


def update_notebook(path: Path, source: str) -> bool:
    """Insert or update the set-up cell in the notebook file ``path``; return whether it changed."""
    nb = json.loads(Path(path).read_text())
    if not ensure_setup_cell(nb, source):
        return False
    Path(path).write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Insert or update the Google Colab set-up cell.")
    parser.add_argument("--repository", default="",
                        help="https URL of the course repository (the form field's default; empty: learners paste it)")
    parser.add_argument("--ref", default="main", help="branch or tag to install from (default: main)")
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    source = setup_source(args.repository, args.ref)
    for path in args.notebooks:
        if update_notebook(path, source):
            print(f"{path}: Colab set-up cell written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
