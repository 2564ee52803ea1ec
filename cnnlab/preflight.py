"""Preflight: read a submitted notebook as untrusted data and repair it before any execution.

Runs on the trusted side (no student code runs here). A notebook that cannot be read
at all (missing, empty, binary, not UTF-8, corrupted JSON, not a notebook, too large)
gets a one-line reason and no execution: every test of it scores zero. A readable
notebook is matched cell by cell to the student version of the assignment (the
release notebook, which carries the nbgrader metadata) and rebuilt:

- cells are matched by nbgrader ``grade_id``, then by cell id, then by the functions a
  solution cell defines, then by identical source, then by position between matched
  neighbours;
- nbgrader metadata always comes from the release notebook (stripped or edited
  metadata, changed points, a forged extra graded cell are all repaired);
- a duplicated solution cell keeps every copy in order (they all run, so the last
  definition wins, as in the student's own top-to-bottom run) and only the first is
  the graded cell; a duplicated test cell keeps one copy;
- a deleted test cell is put back (nbgrader then restores its hidden tests); a deleted
  solution cell is put back blank; a retyped graded cell gets its type back;
- locked test cells always get the source of the release version (nbgrader then puts
  back the hidden tests), so they are never scored as the student left them;
- the kernelspec / language_info come from the source, never from the submission.

It also lists suspicious code (monkeypatching, kernel tampering, course files,
databases, network, processes) for the instructor; those notes do not change scores.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

MAX_NOTEBOOK_BYTES = 50 * 2**20
_ID_RE = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")

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


@dataclass
class Preflight:
    """What preflight made of one submitted notebook."""

    notebook: dict | None = None      # the repaired notebook (None: nothing to execute)
    fatal: str = ""                   # why the notebook could not be used at all
    findings: list[str] = field(default_factory=list)    # repairs, one line each
    suspicious: list[str] = field(default_factory=list)  # notes for the instructor


def _nbg(cell: dict) -> dict:
    meta = cell.get("metadata")
    nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
    return nbg if isinstance(nbg, dict) else {}


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    if isinstance(src, list):
        return "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def _defined_names(src: str) -> frozenset[str]:
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError):
        return frozenset(re.findall(r"^(?:def|class)\s+(\w+)", src, re.M))
    return frozenset(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))


def _kind(ref: dict) -> str:
    nbg = _nbg(ref)
    if nbg.get("solution"):
        return "solution"
    if nbg.get("grade") or nbg.get("task"):
        return "test" if ref.get("cell_type") == "code" else "graded"
    if nbg.get("locked"):
        return "locked"
    return "plain"


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


def _student_cells(nb: object) -> tuple[list[dict] | None, str, int]:
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
    clean: list[dict] = []
    dropped = 0
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            dropped += 1
            continue
        src = cell.get("source", "")
        if not isinstance(src, (str, list)) or (isinstance(src, list) and not all(isinstance(s, str) for s in src)):
            dropped += 1
            continue
        meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        out = {"cell_type": cell["cell_type"], "metadata": {}, "source": _source(cell)}
        if isinstance(meta.get("nbgrader"), dict):
            out["metadata"]["nbgrader"] = meta["nbgrader"]
        for key in ("tags", "jupyter", "collapsed", "scrolled"):
            if key in meta and key != "nbgrader":
                out["metadata"][key] = meta[key] if key != "tags" or isinstance(meta[key], list) else []
        if isinstance(cell.get("id"), str) and _ID_RE.match(cell["id"]):
            out["id"] = cell["id"]
        if cell["cell_type"] == "markdown" and isinstance(cell.get("attachments"), dict):
            out["attachments"] = cell["attachments"]
        clean.append(out)
    return clean, "", dropped


def _scan(cells: list[dict], kinds: dict[int, str]) -> list[str]:
    found: dict[str, str] = {}
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code" or kinds.get(i) in ("test", "locked"):
            continue
        src = cell["source"]
        for pattern, label in SUSPICIOUS:
            if label not in found and pattern.search(src):
                found[label] = f"{label} ({_label(cell, i)})"
    return list(found.values())


def _label(cell: dict, index: int) -> str:
    gid = _nbg(cell).get("grade_id")
    return f"cell {gid!r}" if gid else f"cell #{index + 1}"


def repair(parsed: object, reference: dict, source: dict | None = None) -> Preflight:
    """Match the submission's cells to ``reference`` (the release notebook) and rebuild it.

    ``source`` (the instructor's notebook) only serves to recognise a test cell that
    holds the source's own text (e.g. the reference solution submitted as a student),
    which is not reported as edited.
    """
    src_tests = {_nbg(c).get("grade_id"): _source(c) for c in (source or {}).get("cells", []) if _nbg(c).get("grade_id")}
    result = Preflight()
    cells, reason, dropped = _student_cells(parsed)
    if cells is None:
        result.fatal = reason
        return result
    if dropped:
        result.findings.append(f"{dropped} malformed cell(s) dropped")
    refs: list[dict] = reference["cells"]
    ref_by_gid = {_nbg(c)["grade_id"]: i for i, c in enumerate(refs) if _nbg(c).get("grade_id")}
    ref_by_id = {c.get("id"): i for i, c in enumerate(refs) if c.get("id")}
    ref_kind = [_kind(c) for c in refs]
    tracked = [i for i, k in enumerate(ref_kind) if k != "plain"]

    match: dict[int, int] = {}      # student index -> reference index
    taken: dict[int, int] = {}      # reference index -> student index
    extra_copies: list[int] = []    # student indices: duplicated graded cells to demote / drop
    notes: dict[str, list[str]] = {"dup": [], "meta": [], "unknown": []}

    # 1. nbgrader grade_id, then cell id
    for si, cell in enumerate(cells):
        gid = _nbg(cell).get("grade_id")
        ri = ref_by_gid.get(gid) if isinstance(gid, str) else None
        if ri is None and isinstance(gid, str) and _nbg(cell):
            notes["unknown"].append(gid)
        if ri is None:
            continue
        if ri in taken:
            extra_copies.append(si)
            notes["dup"].append(gid)
            continue
        match[si], taken[ri] = ri, si
    for si, cell in enumerate(cells):
        if si in match or si in extra_copies:
            continue
        ri = ref_by_id.get(cell.get("id"))
        if ri is not None and ri not in taken and ref_kind[ri] != "plain":
            match[si], taken[ri] = ri, si
            notes["meta"].append(_nbg(refs[ri]).get("grade_id", refs[ri].get("id")))

    def neighbours(ri: int) -> tuple[int, int]:
        lo = max([taken[r] for r in taken if r < ri], default=-1)
        hi = min([taken[r] for r in taken if r > ri], default=len(cells))
        return lo, hi

    free = lambda si: si not in match and si not in extra_copies  # noqa: E731
    # 2. solution cells by the functions they define; tests / locked cells by identical source
    for ri in tracked:
        if ri in taken:
            continue
        lo, hi = neighbours(ri)
        ref = refs[ri]
        if ref_kind[ri] == "solution" and ref["cell_type"] == "code":
            names = _defined_names(_source(ref))
            cands = [si for si in range(lo + 1, hi) if free(si) and names and names <= _defined_names(cells[si]["source"])]
            cands = cands or [si for si in range(len(cells)) if free(si) and names
                              and names <= _defined_names(cells[si]["source"])]
        else:
            cands = [si for si in range(len(cells)) if free(si) and cells[si]["source"].strip() == _source(ref).strip()]
        if cands:
            match[cands[0]], taken[ri] = ri, cands[0]
            notes["meta"].append(_nbg(ref).get("grade_id", ref.get("id")))
    # 3. by position: a single free cell of the right kind between matched neighbours
    for ri in tracked:
        if ri in taken:
            continue
        lo, hi = neighbours(ri)
        want = refs[ri]["cell_type"]
        cands = [si for si in range(lo + 1, hi) if free(si) and not _nbg(cells[si])
                 and (cells[si]["cell_type"] == want or ref_kind[ri] == "solution")]
        if ref_kind[ri] == "solution":
            code = [si for si in cands if cells[si]["cell_type"] == "code"]
            cands = code if len(code) == 1 else [si for si in cands if cells[si]["cell_type"] != "markdown"
                                                 or _looks_like_code(cells[si]["source"])]
        if len(cands) == 1:
            match[cands[0]], taken[ri] = ri, cands[0]
            notes["meta"].append(_nbg(refs[ri]).get("grade_id", refs[ri].get("id")))

    # 4. rebuild in the student's order, inserting what is missing after its matched predecessor
    out: list[dict] = []
    used_ids: set[str] = set()
    retyped, edited, metadata_fixed = [], [], []
    placed: dict[int, int] = {}  # reference index -> position in out

    def add(cell: dict) -> None:
        cid = cell.get("id")
        if not isinstance(cid, str) or not _ID_RE.match(cid) or cid in used_ids:
            cid = uuid.uuid4().hex[:12]
            while cid in used_ids:
                cid = uuid.uuid4().hex[:12]
        cell["id"] = cid
        used_ids.add(cid)
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        else:
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
        out.append(cell)

    reserved = {refs[ri]["id"] for ri in taken if refs[ri].get("id")}
    for si, cell in enumerate(cells):
        if si in match:
            ri = match[si]
            ref = refs[ri]
            kind = ref_kind[ri]
            new = {"cell_type": ref["cell_type"], "id": ref.get("id"), "metadata": copy.deepcopy(ref.get("metadata", {})),
                   "source": cell["source"]}
            gid = _nbg(ref).get("grade_id", ref.get("id"))
            if cell["cell_type"] != ref["cell_type"]:
                retyped.append(f"{gid} ({cell['cell_type']}->{ref['cell_type']})")
            if kind in ("test", "locked", "graded") and _nbg(ref).get("locked"):
                if cell["source"] != _source(ref) and cell["source"] != src_tests.get(gid):
                    edited.append(gid)
                new["source"] = _source(ref)
            if _nbg(cell) and gid not in notes["meta"] and _strip_volatile(_nbg(cell)) != _strip_volatile(_nbg(ref)):
                metadata_fixed.append(gid)
            if "attachments" in cell and new["cell_type"] == "markdown":
                new["attachments"] = cell["attachments"]
            add(new)
            placed[ri] = len(out) - 1
            continue
        if si in extra_copies:
            ri = ref_by_gid[_nbg(cell)["grade_id"]]
            if ref_kind[ri] != "solution":
                continue  # a second copy of a locked / test cell: dropped
            cell = dict(cell, metadata={k: v for k, v in cell["metadata"].items() if k != "nbgrader"})
            cell.pop("id", None)
            if cell["cell_type"] != "code":
                cell["cell_type"] = "code"
        else:
            if _nbg(cell):
                cell = dict(cell, metadata={k: v for k, v in cell["metadata"].items() if k != "nbgrader"})
            if cell.get("id") in reserved:
                cell.pop("id", None)
        add(cell)

    missing_tests, missing_solutions = [], []
    for ri in tracked:
        if ri in placed:
            continue
        ref = refs[ri]
        before = [placed[r] for r in placed if r < ri]
        pos = max(before) + 1 if before else 0
        new = copy.deepcopy(ref)
        new["source"] = _source(ref)
        gid = _nbg(ref).get("grade_id", ref.get("id"))
        (missing_solutions if ref_kind[ri] == "solution" else missing_tests).append(gid)
        if not isinstance(new.get("id"), str) or new["id"] in used_ids:
            new["id"] = uuid.uuid4().hex[:12]
        used_ids.add(new["id"])
        out.insert(pos, new)
        if new["cell_type"] == "code":
            new["outputs"], new["execution_count"] = [], None
        for r in placed:
            if placed[r] >= pos:
                placed[r] += 1
        placed[ri] = pos

    f = result.findings
    if notes["dup"]:
        f.append("duplicated graded cell(s) " + ", ".join(sorted(set(notes["dup"])))
                 + ": every solution copy runs in order, the first is graded; extra test copies removed")
    if missing_tests:
        f.append("deleted test cell(s) " + ", ".join(missing_tests) + " restored from the source")
    if missing_solutions:
        f.append("deleted solution cell(s) " + ", ".join(missing_solutions) + " restored blank")
    if retyped:
        f.append("retyped cell(s) " + ", ".join(retyped) + " restored")
    if edited:
        f.append("edited test cell(s) " + ", ".join(edited) + " restored from the source")
    if notes["meta"]:
        f.append("stripped nbgrader metadata restored for " + ", ".join(str(x) for x in notes["meta"]))
    if metadata_fixed:
        f.append("edited nbgrader metadata restored for " + ", ".join(metadata_fixed))
    if notes["unknown"]:
        f.append("unknown graded cell(s) " + ", ".join(sorted(set(notes["unknown"])))
                 + " ignored (their nbgrader metadata removed)")

    meta = parsed.get("metadata") if isinstance(parsed, dict) else None
    ks = meta.get("kernelspec") if isinstance(meta, dict) else None
    ref_ks = reference.get("metadata", {}).get("kernelspec", {})
    if ks is not None and (not isinstance(ks, dict) or ks.get("name") != ref_ks.get("name")
                           or ks.get("language", ref_ks.get("language")) != ref_ks.get("language")):
        shown = ks.get("name") if isinstance(ks, dict) else type(ks).__name__
        f.append(f"kernelspec {str(shown)[:40]!r} replaced by {ref_ks.get('name', 'python3')!r}")
    nb = {
        "cells": out,
        "metadata": {k: copy.deepcopy(v) for k, v in reference.get("metadata", {}).items()
                     if k in ("kernelspec", "language_info")},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    kinds = {i: _kind(c) if _nbg(c) else "plain" for i, c in enumerate(out)}
    result.suspicious = _scan(out, kinds)
    try:
        import nbformat

        nbformat.validate(nbformat.from_dict(nb))
    except Exception as exc:  # noqa: BLE001
        result.fatal = f"notebook could not be repaired ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})"
        return result
    result.notebook = nb
    return result


def _strip_volatile(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k not in ("checksum", "schema_version", "cell_type")}


def _looks_like_code(src: str) -> bool:
    try:
        ast.parse(src)
    except (SyntaxError, ValueError):
        return False
    return bool(src.strip())


def preflight(path: Path | None, reference: dict, expected_name: str, source: dict | None = None) -> Preflight:
    """Read ``path`` (untrusted) and repair it against ``reference``; never raises on bad input."""
    parsed, reason = read_json(path, expected_name)
    if reason:
        return Preflight(fatal=reason)
    try:
        return repair(parsed, reference, source)
    except RecursionError:
        return Preflight(fatal="corrupted notebook: structure nested too deeply")
