"""Preflight step 4: list suspicious code for the instructor (notes only: scores are not changed)."""

from __future__ import annotations

import re

from cnncourse.cells import nbg
from cnncourse.colab import is_setup_source

SUSPICIOUS = [
    (re.compile(r"\b(?:torch|np|numpy|F|nn|checks|cnnlab|math|builtins|testing)\s*(?:\.\s*\w+)+\s*=(?!=)"),
     "assigns to a library attribute (monkeypatching)"),
    (re.compile(r"\bsetattr\s*\("), "calls setattr"),
    (re.compile(r"__(?:eq|ne|bool|lt|gt|le|ge|torch_function|torch_dispatch)__\s*="), "overrides a comparison / torch hook"),
    (re.compile(r"set_custom_exc|ast_transformers|input_transformers|excepthook|settrace|setprofile|addaudithook|"
                r"showtraceback|run_cell|shell_handlers|get_ipython\(\)\.kernel"), "tampers with IPython / the kernel"),
    (re.compile(r"sys\.modules"), "edits sys.modules"),
    (re.compile(r"\bctypes\b"), "uses ctypes"),
    (re.compile(r"gradebook|nbgrader_config|\bsource/|submitted/|autograded/|\brelease/"), "reads course files"),
    (re.compile(r"\bsqlite3\b|DELETE\s+FROM|DROP\s+TABLE", re.I), "touches a database"),
    (re.compile(r"os\._exit|os\.kill|signal\.signal|\bSIGINT\b"), "kills or signals the kernel"),
    (re.compile(r"\bsocket\b|urllib|\brequests\b|http\.client"), "network access"),
    (re.compile(r"os\.fork|\bsubprocess\b|os\.system|os\.popen"), "starts processes"),
]


def cell_label(cell: dict, index: int) -> str:
    gid = nbg(cell).get("grade_id")
    return f"cell {gid!r}" if gid else f"cell #{index + 1}"


def scan(cells: list[dict], kinds: dict[int, str]) -> list[str]:
    """One note per kind of suspicious code, naming the first cell it is in (test cells are the course's)."""
    found: dict[str, str] = {}
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code" or kinds.get(i) in ("test", "locked") or is_setup_source(cell["source"]):
            continue  # the course's own cells (the Colab set-up cell reads sys.modules to detect Colab)
        src = cell["source"]
        for pattern, label in SUSPICIOUS:
            if label not in found and pattern.search(src):
                found[label] = f"{label} ({cell_label(cell, i)})"
    return list(found.values())
