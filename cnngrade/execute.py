"""The execute step of nbgrader's autograde pipeline, with the kernel in the sandbox.

:class:`SandboxExecute` replaces nbgrader's ``Execute`` preprocessor: each code cell
runs in a bubblewrap-sandboxed kernel (:mod:`cnngrade.sandbox`). The in-kernel guard
(:mod:`cnngrade.inkernel.guard`) is reached only through marker strings its audit hook
recognises, never through a name the notebook could rebind, and answers with an HMAC
under a key sent before any student code ran. Per test cell: ``begin`` restores pristine
references; the test cell runs inside a function (its names out of the notebook's
namespace) ending with a ``finish`` marker; a ``verdict`` says whether it ran once, to
its end, untouched. Whatever the guard cannot confirm costs that test cell its points,
decided here, on the host. A cell that times out or kills the kernel costs that cell: the
kernel is restarted, the earlier cells replayed, and the rest of the notebook graded.
What happened is written as one-line events (JSON lines) for the job's reasons.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from cnncourse.cells import is_test_cell, nbg
from cnngrade.files import copy_regular_files
from cnngrade.inkernel.guard import MARK
from cnngrade.sandbox import GiB, KernelStartError, SandboxKernel, SandboxSettings
from cnngrade.sandbox.outputs import OutputBudget, short_error


def marker(kind: str, payload: str) -> str:
    """An expression whose evaluation the guard's audit hook answers (no name in it to rebind)."""
    return f"(lambda: {MARK + kind + ':' + payload!r}).__code__"


def _cell_scope(tree: ast.AST):
    """The nodes a cell evaluates as it runs: nested function and lambda bodies run later and are left out."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            args = node.args
            stack += [*args.defaults, *[d for d in args.kw_defaults if d is not None]]
            stack += getattr(node, "decorator_list", [])
            if getattr(node, "returns", None) is not None:
                stack.append(node.returns)
            continue
        stack += list(ast.iter_child_nodes(node))


def _loads_before_stores(tree: ast.Module) -> bool:
    """Whether the cell reads a name before its first assignment to it (inside a function it would be unbound)."""
    first_store: dict[str, tuple[int, int]] = {}
    loads: list[tuple[str, tuple[int, int]]] = []
    nodes = list(_cell_scope(tree))
    in_comprehension = {id(n) for c in nodes if isinstance(c, ast.comprehension) for n in ast.walk(c.target)}
    stored_at: dict[int, tuple[int, int]] = {}  # an assignment binds its targets once its value is computed
    for node in nodes:
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for name in ast.walk(target):
                    stored_at[id(name)] = (node.end_lineno, node.end_col_offset)
                    if isinstance(node, ast.AugAssign) and isinstance(name, ast.Name):
                        loads.append((name.id, (name.lineno, name.col_offset)))
    for node in nodes:
        if isinstance(node, ast.Name) and id(node) in in_comprehension:
            continue  # a comprehension's own variable
        if isinstance(node, ast.Name):
            pos = (node.lineno, node.col_offset)
            if isinstance(node.ctx, ast.Load):
                loads.append((node.id, pos))
            else:
                pos = stored_at.get(id(node), pos)
                first_store[node.id] = min(first_store.get(node.id, pos), pos)
        elif isinstance(node, ast.alias):
            name = (node.asname or node.name).split(".")[0]
            pos = (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))
            first_store[name] = min(first_store.get(name, pos), pos)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            pos = (node.lineno, node.col_offset)
            first_store[node.name] = min(first_store.get(node.name, pos), pos)
    return any(name in first_store and pos < first_store[name] for name, pos in loads)


def _wrappable(tree: ast.Module) -> bool:
    banned = (ast.Global, ast.Nonlocal, ast.Return, ast.Yield, ast.YieldFrom, ast.Await)
    for node in _cell_scope(tree):
        if isinstance(node, banned) or isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            return False
    return bool(tree.body) and not _loads_before_stores(tree)


def wrap_test(source: str, nonce: str) -> str:
    """The test cell as it is run: inside a function, ending with the guard's ``finish`` marker.

    The test's names are the function's locals, out of reach of the notebook's namespace
    (they are copied there when the function ends, as a module-level cell would leave them).
    A final expression is returned (kept for partial credit). A cell that cannot become a
    function (IPython magics, ``global``, a name read before the cell assigns it) runs as
    it is, with the marker appended.
    """
    finish = marker("finish", nonce)
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        tree = None
    if tree is None or not _wrappable(tree):
        return source.rstrip("\n") + "\n" + finish + "\n"
    body = tree.body
    last = body[-1] if isinstance(body[-1], ast.Expr) else None
    lines = [ast.unparse(node) for node in (body[:-1] if last is not None else body)]
    lines.append(finish)
    if last is not None:
        lines.append(f"return ({ast.unparse(last.value)})")
    inner = "\n".join("        " + ln for text in lines for ln in text.splitlines())
    return (f"def __cnnlab_test():\n    try:\n{inner}\n    finally:\n        {marker('leave', nonce)}\n"
            f"        globals().update(locals())\n__cnnlab_test()\n")


class GuardLink:
    """The grader's side of the channel to the in-kernel guard: the key and the check of each answer."""

    def __init__(self) -> None:
        self.key = secrets.token_hex(16)

    def mac(self, text: str) -> str:
        return hmac.new(self.key.encode(), text.encode(), hashlib.sha256).hexdigest()[:32]

    def answer(self, kind: str, payload: str, status: str, text: str) -> tuple[str, str]:
        """(status, text) of a genuine answer; ("invalid", why) for anything the guard did not say."""
        if status != "error":
            return "invalid", f"no answer from the guard ({status or 'missing'})"
        mac, _, rest = text.partition("|")
        got, _, body = rest.partition("|")
        if not hmac.compare_digest(mac.encode(), self.mac(f"{kind}|{payload}|{got}|{body}").encode()):
            return "invalid", "the guard's answer did not come from the guard"
        return got, body


def memory_error(outputs: list) -> bool:
    for out in outputs:
        if out.get("output_type") == "error":
            text = f"{out.get('ename', '')} {out.get('evalue', '')}"
            if "MemoryError" in text or "can't allocate memory" in text or "DefaultCPUAllocator" in text:
                return True
    return False


def literal_text(text: str) -> str:
    """The str value of a repr() sent back by the kernel (never evaluated as code)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    return value if isinstance(value, str) else str(value)


def error_output(ename: str, evalue: str) -> dict:
    return short_error(ename, evalue)


def cell_label(cell, index: int) -> str:
    gid = nbg(cell).get("grade_id")
    return repr(gid) if gid else f"#{index + 1}"


class CellRunner:
    """Runs the cells of one notebook in sandboxed kernels (restarting after a lost kernel)."""

    def __init__(self, settings: SandboxSettings, workdir: Path, files: Path, cell_timeout: float,
                 deadline: float, max_restarts: int = 2) -> None:
        self.settings, self.workdir, self.files = settings, workdir, files
        self.cell_timeout, self.deadline, self.max_restarts = cell_timeout, deadline, max_restarts
        self.events: list[dict] = []
        self.replay: list[str] = []
        self.restarts = 0
        self.gave_up = ""
        self.kernel: SandboxKernel | None = None
        self.budget = OutputBudget()  # the notebook's outputs, whichever kernel produced them
        self.link = GuardLink()

    def event(self, kind: str, text: str) -> None:
        self.events.append({"kind": kind, "text": text})

    def start(self) -> None:
        """A new kernel, and the guard's key sent before any cell of the notebook runs in it."""
        self.kernel = SandboxKernel(self.settings, self.workdir / f"kernel{self.restarts}", self.files)
        self.kernel.budget = self.budget
        self.kernel.start()
        self.link = GuardLink()
        status, text = self.guard("key", self.link.key, 60)
        if status != "ok":
            self.stop()
            raise KernelStartError(f"the in-kernel guard did not answer ({status}: {text[:200]})")

    def stop(self) -> None:
        if self.kernel is not None:
            self.kernel.kill()
            self.kernel = None

    def remaining(self) -> float:
        return self.deadline - time.time() if self.deadline else float("inf")

    def guard(self, kind: str, payload: str, timeout: float) -> tuple[str, str]:
        """Ask the guard (empty code + a user expression: IPython's input transformers never see it)."""
        res = self.kernel.execute("", timeout=timeout, silent=True, user_expressions={"g": marker(kind, payload)})
        if res.status in ("timeout", "dead"):
            return "invalid", f"the kernel did not answer ({res.status})"
        status, text = res.expressions.get("g", ("missing", ""))
        return self.link.answer(kind, payload, status or "", text)

    def run(self, source: str, test: bool, label: str) -> tuple[list[dict], int | None]:
        """Run one cell; its outputs (with an error output for whatever went wrong) and execution count."""
        if self.gave_up:
            return [error_output("GradingError", f"not run: {self.gave_up}")], None
        budget = min(self.cell_timeout, self.remaining())
        if budget < 1:
            self.gave_up = "the grading time limit was used up"
            self.event("deadline", f"grading time limit used up before cell {label}: later cells not run")
            return [error_output("GradingError", f"not run: {self.gave_up}")], None
        nonce = secrets.token_hex(16) if test else ""
        penalty = self._begin(label, nonce, budget) if test else ""
        res = self.kernel.execute(wrap_test(source, nonce) if test else source, timeout=budget)
        if test and res.status in ("ok", "error"):
            verdict = self._verdict(label, nonce, res.outputs)  # always asked: it also ends the test in the kernel
            penalty = penalty or verdict
        if res.status == "timeout":
            self._lost(res.outputs, "CellTimeoutError", self._timeout_reason(budget), label,
                       ("timeout", f"cell {label} timed out after {budget:g} s"))
        elif res.status == "dead":
            why = self.kernel.death_reason()
            self._lost(res.outputs, "DeadKernelError", why, label, ("dead", f"{why} in cell {label}"))
        else:
            self._check_outputs(res, label, penalty)
            self.replay.append(source)
        return res.outputs, res.execution_count

    def _begin(self, label: str, nonce: str, budget: float) -> str:
        """Restore before the test; the reason this test scores nothing ("" if none)."""
        status, text = self.guard("begin", nonce, min(60, budget))
        if status == "restored":
            self.event("restored", f"changed before test cell {label} (restored): {text}")
        elif status == "tamper":
            self.event("tamper", f"tampering detected before test cell {label}: {text}")
            return f"tampering detected before this test: {text}. No points for this test."
        elif status != "ok":
            self.event("tamper", f"the guard could not run before test cell {label} ({text[:160]})")
            return "the grader's guard could not run before this test: no points"
        return ""

    def _verdict(self, label: str, nonce: str, outputs: list) -> str:
        """After the test: did it run once, to its end, untouched? The reason it scores nothing ("" if it may score)."""
        status, text = self.guard("verdict", nonce, 60)
        failed = any(o.get("output_type") == "error" for o in outputs)
        if status == "finished" or status == "unfinished" and failed:
            return ""
        if status == "tamper":
            self.event("tamper", f"tampering detected in test cell {label}: {text}")
            return f"tampering detected in this test: {text}. No points for this test."
        if status == "unfinished":
            self.event("tamper", f"test cell {label} did not run to its end")
            return "the test cell did not run to its end (its output or the kernel was tampered with): no points"
        self.event("tamper", f"the guard could not confirm test cell {label} ({text[:160]})")
        return "the grader's guard could not confirm this test: no points"

    def _timeout_reason(self, budget: float) -> str:
        if budget < self.cell_timeout and self.remaining() < 1:
            return "the grading time limit was used up during this cell"
        return f"the cell ran longer than {budget:g} s; the kernel was stopped"

    def _lost(self, outputs: list, ename: str, why: str, label: str, event: tuple[str, str]) -> None:
        outputs.append(error_output(ename, why))
        self.event(*event)
        self._recover(label)

    def _check_outputs(self, res, label: str, penalty: str) -> None:
        outputs = res.outputs
        if penalty:
            outputs.append(error_output("GradingError", penalty))
        for out in outputs:
            if out.get("output_type") == "error" and out.get("ename") == "TamperingError":
                self.event("tamper", f"tampering detected in test cell {label}: {str(out.get('evalue', ''))[:160]}")
        if memory_error(outputs):
            self.event("memory", f"memory limit ({self.settings.limits.memory_bytes / GiB:g} GiB) hit in cell {label}")
        if res.truncated:
            self.event("output", f"output of cell {label} truncated")
        if res.lost:
            self.event("output", f"an oversized output of cell {label} was dropped")

    def _recover(self, label: str) -> None:
        """A new kernel with the earlier cells replayed, or give up on the rest of the notebook."""
        self.stop()
        self.restarts += 1
        if self.restarts > self.max_restarts:
            self.gave_up = f"the kernel was lost {self.restarts} times"
            self.event("gave-up", f"kernel lost {self.restarts} times: cells after {label} not run")
            return
        try:
            self.start()
        except KernelStartError as exc:
            self.gave_up = f"the kernel could not be restarted ({exc})"
            return
        for code in self.replay:
            res = self.kernel.execute(code, timeout=max(min(self.cell_timeout, self.remaining()), 1), silent=True)
            if res.status in ("timeout", "dead"):
                self.stop()
                self.gave_up = "replaying the earlier cells after a kernel restart failed"
                self.event("gave-up", f"replay after the loss in cell {label} failed: later cells not run")
                return


def sandbox_settings(settings: dict, nb) -> SandboxSettings:
    """The worker's settings; run by plain nbgrader (no settings), defaults with the notebook's imports preloaded."""
    result = SandboxSettings.from_dict(settings)
    if not settings:
        from cnngrade.template import imports

        result.preload = imports(nb)[0]
    return result


def report_events(events: list[dict], events_path: str, log) -> None:
    """Events go to the job's file; without one (plain nbgrader), to nbgrader's log."""
    if events_path:
        with open(events_path, "a") as fh:
            fh.writelines(json.dumps(ev) + "\n" for ev in events)
    else:
        for ev in events:
            log.warning("sandbox: %s", ev["text"])


def make_execute_class():
    """SandboxExecute is built lazily so that importing this module does not import nbgrader."""
    from nbformat import from_dict
    from nbgrader.preprocessors import NbGraderPreprocessor
    from traitlets import Dict, Float, Int, Unicode

    class SandboxExecute(NbGraderPreprocessor):
        """nbgrader's Execute, with the kernel in a bubblewrap sandbox and a guard around test cells."""

        settings = Dict({}).tag(config=True)
        cell_timeout = Float(120).tag(config=True)
        deadline = Float(0).tag(config=True)  # time.time() after which no new cell starts
        events_path = Unicode("").tag(config=True)
        workdir = Unicode("").tag(config=True)
        max_restarts = Int(2).tag(config=True)

        def preprocess(self, nb, resources):
            work = Path(self.workdir) if self.workdir else Path(tempfile.mkdtemp(prefix="cnngrade-execute-"))
            files = work / "files"
            shutil.rmtree(files, ignore_errors=True)
            files.mkdir(parents=True)
            copy_regular_files(Path(resources.get("metadata", {}).get("path") or "."), files, skip_notebooks=True)
            runner = CellRunner(sandbox_settings(self.settings, nb), work, files, self.cell_timeout, self.deadline,
                                self.max_restarts)
            try:
                try:
                    runner.start()
                except KernelStartError as exc:
                    runner.event("infra", str(exc))
                    raise
                nb.metadata["language_info"] = runner.kernel.kernel_info.get("language_info", {})
                for index, cell in enumerate(nb.cells):
                    if cell.cell_type == "code" and cell.source.strip():
                        outputs, count = runner.run(cell.source, is_test_cell(cell), cell_label(cell, index))
                        cell.outputs = [from_dict(o) for o in outputs]
                        cell.execution_count = count
                if runner.kernel is not None:  # files the notebook wrote stay beside it, as in nbgrader
                    for note in runner.kernel.keep_files(Path(resources.get("metadata", {}).get("path") or work)):
                        runner.event("files", note)
            finally:
                runner.stop()
                report_events(runner.events, self.events_path, self.log)
                if not self.workdir:
                    shutil.rmtree(work, ignore_errors=True)
            return nb, resources

    return SandboxExecute
