"""Preflight step 1: read a submitted file as untrusted data, with a one-line reason when it cannot be used."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cnncourse.cells import cell_source

MAX_NOTEBOOK_BYTES = 50 * 2**20
ID_RE = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")


def read_json(path: Path | None, expected: str) -> tuple[object | None, str]:
    """Parse a file as JSON with a one-line reason when it cannot be."""
    if path is None or not path.exists():
        return None, f"no notebook {expected} in the submission"
    if not path.is_file() or path.is_symlink():
        return None, f"{path.name} is not a regular file"
    try:
        size = path.stat().st_size
        if size > MAX_NOTEBOOK_BYTES:
            return None, f"notebook file too large ({size / 2**20:.0f} MiB > {MAX_NOTEBOOK_BYTES // 2**20} MiB)"
        data = path.read_bytes()
    except OSError as exc:
        return None, f"notebook file unreadable ({exc.strerror or exc})"
    if not data.strip():
        return None, "empty notebook file"
    if b"\x00" in data[:65536]:
        return None, "not a notebook: binary data"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, f"not a notebook: not UTF-8 text (byte {exc.start})"
    try:
        return json.loads(text), ""
    except json.JSONDecodeError as exc:
        return None, f"corrupted notebook: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"
    except RecursionError:
        return None, "corrupted notebook: JSON nested too deeply"


def student_cells(nb: object) -> tuple[list[dict] | None, str, int]:
    """The usable cells of a parsed notebook (cleaned copies), or a reason; plus how many were dropped."""
    if not isinstance(nb, dict):
        return None, "not a Jupyter notebook (the JSON is not an object)", 0
    if "cells" not in nb and "worksheets" in nb:
        try:
            import nbformat

            nb = nbformat.convert(nbformat.from_dict(nb), 4)
        except Exception as exc:  # noqa: BLE001 - any failure means "cannot upgrade"
            return None, f"old notebook format that could not be upgraded ({type(exc).__name__})", 0
    cells = nb.get("cells")
    if not isinstance(cells, list):
        return None, "not a Jupyter notebook (no list of cells)", 0
    clean = [c for c in (clean_cell(cell) for cell in cells) if c is not None]
    return clean, "", len(cells) - len(clean)


def clean_cell(cell: object) -> dict | None:
    """A cell reduced to the keys the grader uses, with a string source; None when malformed."""
    if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
        return None
    src = cell.get("source", "")
    if not isinstance(src, (str, list)) or (isinstance(src, list) and not all(isinstance(s, str) for s in src)):
        return None
    meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
    out = {"cell_type": cell["cell_type"], "metadata": {}, "source": cell_source(cell)}
    if isinstance(meta.get("nbgrader"), dict):
        out["metadata"]["nbgrader"] = meta["nbgrader"]
    for key in ("tags", "jupyter", "collapsed", "scrolled"):
        if key in meta:
            out["metadata"][key] = meta[key] if key != "tags" or isinstance(meta[key], list) else []
    if isinstance(cell.get("id"), str) and ID_RE.match(cell["id"]):
        out["id"] = cell["id"]
    if cell["cell_type"] == "markdown" and isinstance(cell.get("attachments"), dict):
        out["attachments"] = cell["attachments"]
    return out
