"""Preflight step 1: read a submitted file as untrusted data, with a one-line reason when it cannot be used."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from cnncourse.cells import cell_source

MAX_NOTEBOOK_BYTES = 50 * 2**20
PARSE_MEMORY_BYTES = 768 * 2**20  # address space of the interpreter that test-parses a submission
PARSE_SECONDS = 60
# Parsed JSON takes at most about 40 times its text (e.g. "[[]]," is five bytes and two lists): a file up
# to this size (at most ~160 MiB parsed) is parsed directly, a larger one in the child first.
TRIAL_PARSE_BYTES = 4 * 2**20
# Test-parse in a fresh interpreter with a memory limit: a file that needs more memory, nests too deeply or
# holds a number Python refuses to convert fails there, and the worker only parses what parsed there.
_PARSE_CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
try:
    json.loads(open(sys.argv[1], "rb").read().decode("utf-8-sig"))
except MemoryError:
    print("memory")
except RecursionError:
    print("nested")
except json.JSONDecodeError as exc:
    print("json")
except ValueError as exc:
    print("value " + str(exc).split(";")[0][:120])
else:
    print("ok")
"""
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
    return parse_json(path, text)


def parse_json(path: Path, text: str) -> tuple[object | None, str]:
    """Parse the text of ``path`` (a large file only after it parsed in a memory-limited child); never raises."""
    reason = trial_parse(path) if len(text) > TRIAL_PARSE_BYTES else ""
    if reason:
        return None, reason
    try:
        parsed = json.loads(text)
        if re.search(r"\\u[dD][89a-fA-F]", text):  # surrogate escapes: a lone one cannot be written back
            json.dumps(parsed, ensure_ascii=False).encode("utf-8")
        return parsed, ""
    except UnicodeEncodeError:
        return None, "corrupted notebook: invalid Unicode (a lone surrogate escape such as \\ud800)"
    except json.JSONDecodeError as exc:
        return None, f"corrupted notebook: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"
    except RecursionError:
        return None, "corrupted notebook: JSON nested too deeply"
    except MemoryError:
        return None, "notebook too large to read: the parser ran out of memory"
    except ValueError as exc:
        return None, f"corrupted notebook: {str(exc).split(';')[0][:120]}"


def trial_parse(path: Path) -> str:
    """Parse ``path`` in a separate, memory-limited interpreter; the reason it cannot be used ("" when fine)."""
    code = _PARSE_CHILD.format(limit=PARSE_MEMORY_BYTES)
    try:
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(path)], capture_output=True,
                              text=True, timeout=PARSE_SECONDS, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"notebook could not be read: parsing took longer than {PARSE_SECONDS} s"
    verdict = proc.stdout.strip()
    if verdict in ("ok", "json", "nested"):
        return ""  # the worker's own parse gives the detailed reason
    if verdict.startswith("value "):
        return f"corrupted notebook: {verdict[6:]}"
    return (f"notebook too large to read: parsing it needs more than {PARSE_MEMORY_BYTES // 2**20} MiB"
            if verdict == "memory" or not verdict else "notebook could not be read")


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
