"""Convert between course notebooks and a plain-text "percent" form, for authoring in an editor.

The notebook stays the one home of a topic; this tool is a round-trip editor aid:

    python -m cnncourse.nbsrc to-py source/01_convolution/01_convolution.ipynb > /tmp/01.py
    ... edit /tmp/01.py ...
    python -m cnncourse.nbsrc to-ipynb /tmp/01.py source/01_convolution/01_convolution.ipynb

Cell markers (one per cell, on its own line):

    # %% [markdown]                     a markdown cell; its lines start with "# "
    # %%                                an ordinary code cell
    # %% [solution NAME]                an nbgrader solution cell, grade_id NAME
    # %% [tests NAME points=P]          an nbgrader autograder-test cell (locked), grade_id NAME

Cell ids are derived from the grade_id (graded cells) or the position (others), so
the conversion is deterministic and ``make release`` is reproducible.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

MARKER = re.compile(r"^# %%(?: \[(?P<kind>markdown|solution|tests)(?: (?P<name>[A-Za-z0-9_-]+))?(?: points=(?P<points>\d+(?:\.\d+)?))?\])?\s*$")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# What the kernel reports on start; stored in full so that opening a notebook does not mark it modified.
LANGUAGE_INFO = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                 "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                 "pygments_lexer": "ipython3", "version": "3.11.7"}


def _nbgrader_meta(kind: str, name: str, points: str | None) -> dict:
    meta = {"grade": kind == "tests", "grade_id": name, "locked": kind == "tests", "schema_version": 3,
            "solution": kind == "solution", "task": False}
    if kind == "tests":
        meta["points"] = float(points) if points and "." in points else int(points or 1)
    return meta


def py_to_notebook(text: str) -> dict:
    """Parse percent-format text into a notebook dict (nbformat 4.5, no outputs)."""
    cells: list[dict] = []
    current: dict | None = None
    lines: list[str] = []

    def flush() -> None:
        if current is None:
            return
        while lines and not lines[-1].strip():
            lines.pop()
        body = lines[:]
        if current["cell_type"] == "markdown":
            body = [ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in body]
        src = "\n".join(body)
        current["source"] = [ln + "\n" for ln in src.split("\n")[:-1]] + [src.split("\n")[-1]] if src else []
        cells.append(current)

    for raw in text.splitlines():
        m = MARKER.match(raw)
        if not m:
            if current is None:
                if raw.strip():
                    raise ValueError(f"text before the first '# %%' marker: {raw!r}")
                continue
            lines.append(raw)
            continue
        flush()
        lines = []
        kind, name, points = m.group("kind"), m.group("name"), m.group("points")
        index = len(cells)
        if kind == "markdown":
            current = {"cell_type": "markdown", "id": f"md-{index:03d}", "metadata": {}, "source": []}
        else:
            current = {"cell_type": "code", "execution_count": None, "id": f"code-{index:03d}", "metadata": {},
                       "outputs": [], "source": []}
            if kind in ("solution", "tests"):
                if not name:
                    raise ValueError(f"a {kind} cell needs a name: {raw!r}")
                current["id"] = name
                current["metadata"]["nbgrader"] = _nbgrader_meta(kind, name, points)
    flush()
    ids = [c["id"] for c in cells]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ValueError(f"duplicate cell names: {sorted(dup)}")
    return {"cells": cells, "metadata": {"kernelspec": KERNELSPEC, "language_info": LANGUAGE_INFO},
            "nbformat": 4, "nbformat_minor": 5}


def notebook_to_py(nb: dict) -> str:
    """Render a notebook dict as percent-format text (the inverse of :func:`py_to_notebook`)."""
    out: list[str] = []
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        meta = cell.get("metadata", {}).get("nbgrader")
        if cell["cell_type"] == "markdown":
            out.append("# %% [markdown]")
            out.extend(("# " + ln) if ln else "#" for ln in src.split("\n"))
        else:
            if meta and meta.get("grade") and not meta.get("solution"):
                out.append(f"# %% [tests {meta['grade_id']} points={meta.get('points', 1)}]")
            elif meta and meta.get("solution"):
                out.append(f"# %% [solution {meta['grade_id']}]")
            else:
                out.append("# %%")
            out.append(src)
        out.append("")
    return "\n".join(out)


def write_notebook(nb: dict, path: Path) -> None:
    """Write a notebook the way the repository stores it (sorted keys, 1-space indent)."""
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("to-py", "to-ipynb"):
        print(__doc__)
        return 2
    if argv[0] == "to-py":
        sys.stdout.write(notebook_to_py(json.loads(Path(argv[1]).read_text())))
        return 0
    if len(argv) != 3:
        print("usage: python -m cnncourse.nbsrc to-ipynb IN.py OUT.ipynb", file=sys.stderr)
        return 2
    out = Path(argv[2])
    out.parent.mkdir(parents=True, exist_ok=True)
    write_notebook(py_to_notebook(Path(argv[1]).read_text()), out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
