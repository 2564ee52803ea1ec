"""The execute step of nbgrader's autograde pipeline, with the kernel in the sandbox.

:class:`SandboxExecute` replaces nbgrader's ``Execute`` preprocessor: each code cell
runs in a bubblewrap-sandboxed kernel (:mod:`cnngrade.sandbox`); before every test
cell the in-kernel guard restores pristine references (through a kernel request that
IPython's input transformers never see); a line appended to the test cell re-checks
them and prints a per-cell nonce, so a test cell whose nonce does not come back scores
0. A cell that times out or kills the kernel costs that cell: the kernel is restarted,
the earlier cells replayed, and the rest of the notebook graded. What happened is
written as one-line events (JSON lines) for the job's reasons.
"""

from __future__ import annotations

import ast
import json
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from cnncourse.cells import is_test_cell, nbg
from cnngrade.files import copy_regular_files
from cnngrade.inkernel.guard import MODULE_NAME as GUARD_MODULE
from cnngrade.sandbox import GiB, KernelStartError, SandboxKernel, SandboxSettings
from cnngrade.sandbox.outputs import OutputBudget, short_error


def wrap_test(source: str, nonce: str) -> str:
    """Append the guard's end-of-test check, before a final expression (kept for partial credit)."""
    line = f"__import__({GUARD_MODULE!r}).finish({nonce!r})"
    lines = source.rstrip("\n").split("\n")
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        tree = None
    if tree is not None and tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body[-1]
        prev_end = tree.body[-2].end_lineno if len(tree.body) > 1 else 0
        if last.col_offset == 0 and prev_end < last.lineno:
            at = last.lineno - 1
            return "\n".join(lines[:at] + [line] + lines[at:]) + "\n"
    return "\n".join(lines) + "\n" + line + "\n"


def strip_nonce(outputs: list, nonce: str) -> bool:
    """Remove the nonce line from stdout; whether it was there."""
    found = False
    for out in list(outputs):
        if out.get("output_type") == "stream" and out.get("name") == "stdout" and nonce in out.get("text", ""):
            found = True
            out["text"] = out["text"].replace(nonce + "\n", "").replace(nonce, "")
            if not out["text"]:
                outputs.remove(out)
    return found


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

    def event(self, kind: str, text: str) -> None:
        self.events.append({"kind": kind, "text": text})

    def start(self) -> None:
        self.kernel = SandboxKernel(self.settings, self.workdir / f"kernel{self.restarts}", self.files)
        self.kernel.budget = self.budget
        self.kernel.start()

    def stop(self) -> None:
        if self.kernel is not None:
            self.kernel.kill()
            self.kernel = None

    def remaining(self) -> float:
        return self.deadline - time.time() if self.deadline else float("inf")

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
        if test:
            self._guard_begin(label, budget)
        res = self.kernel.execute(wrap_test(source, nonce) if test else source, timeout=budget, keep=nonce)
        if test and res.status in ("ok", "error"):
            self.kernel.execute("", timeout=30, silent=True,
                                user_expressions={"guard": f"__import__({GUARD_MODULE!r}).end()"})
        if res.status == "timeout":
            self._lost(res.outputs, "CellTimeoutError", self._timeout_reason(budget), label,
                       ("timeout", f"cell {label} timed out after {budget:g} s"))
        elif res.status == "dead":
            why = self.kernel.death_reason()
            self._lost(res.outputs, "DeadKernelError", why, label, ("dead", f"{why} in cell {label}"))
        else:
            self._check_outputs(res, test, nonce, label)
            self.replay.append(source)
        return res.outputs, res.execution_count

    def _guard_begin(self, label: str, budget: float) -> None:
        """Empty code + a user expression: IPython's input transformers never see the guard's call."""
        pre = self.kernel.execute("", timeout=min(60, budget), silent=True,
                                  user_expressions={"guard": f"__import__({GUARD_MODULE!r}).begin()"})
        status, text = pre.expressions.get("guard", ("missing", ""))
        changed = literal_text(text) if status == "ok" else ""
        if changed:
            self.event("restored", f"changed before test cell {label} (restored): {changed[:300]}")
        elif status != "ok" and pre.status in ("ok", "error"):
            self.event("tamper", f"the guard could not run before test cell {label} ({status}: {text[:120]})")

    def _timeout_reason(self, budget: float) -> str:
        if budget < self.cell_timeout and self.remaining() < 1:
            return "the grading time limit was used up during this cell"
        return f"the cell ran longer than {budget:g} s; the kernel was stopped"

    def _lost(self, outputs: list, ename: str, why: str, label: str, event: tuple[str, str]) -> None:
        outputs.append(error_output(ename, why))
        self.event(*event)
        self._recover(label)

    def _check_outputs(self, res, test: bool, nonce: str, label: str) -> None:
        outputs = res.outputs
        if test and not strip_nonce(outputs, nonce) and not any(o.get("output_type") == "error" for o in outputs):
            outputs.append(error_output("GradingError", "the test cell did not run to its end (its output or the "
                                                        "kernel was tampered with): no points"))
            self.event("tamper", f"test cell {label} did not run to its end")
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
