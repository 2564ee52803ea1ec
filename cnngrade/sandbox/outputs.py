"""The output budget of a sandboxed notebook: what the grader keeps of a kernel's output messages.

Everything a kernel sends back is counted, whatever its kind: stream text, the data of
every mime type, output metadata, error names, values and tracebacks, and the number of
messages itself (a million tiny messages cost the worker time and memory even when each
is empty). Each cell has a budget of bytes and messages, and so does the notebook as a
whole (shared by the kernels that run it after a restart). Past a budget, outputs are
dropped and the cell ends with a line saying so; two things survive: the test cell's
nonce line (it proves the cell ran to its end) and one short error per cell (so a cell
that failed is still seen to fail).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from cnngrade.sandbox.limits import Limits

MESSAGE_OVERHEAD = 100      # bytes charged per output message, however small
ERROR_NAME_CHARS = 200      # the short error kept past the budget
ERROR_VALUE_CHARS = 1000
TRUNCATED_NOTE = "[output truncated by the grader: {why}]"


@dataclass
class OutputBudget:
    """Output bytes and messages kept so far for one notebook."""

    bytes: int = 0
    messages: int = 0


@dataclass
class CellOutputs:
    """The outputs of one cell as they arrive, within the cell's and the notebook's budgets."""

    limits: Limits
    notebook: OutputBudget
    keep: str = ""                       # the test cell's nonce: kept past the budget
    outputs: list = field(default_factory=list)
    bytes: int = 0
    messages: int = 0
    cut: set[str] = field(default_factory=set)  # why outputs were dropped: "bytes", "messages"

    def room(self) -> int:
        return min(self.limits.cell_output_bytes - self.bytes, self.limits.total_output_bytes - self.notebook.bytes)

    def over_count(self) -> bool:
        return (self.messages > self.limits.cell_output_messages
                or self.notebook.messages > self.limits.total_output_messages)

    def add(self, mtype: str, content: dict) -> None:
        """One iopub output message (stream, display_data, execute_result or error)."""
        self.messages += 1
        self.notebook.messages += 1
        out = to_output(mtype, content)
        size = output_size(out) + MESSAGE_OVERHEAD
        if self.over_count():
            self.cut.add("messages")
            self._keep_essentials(out)
        elif size > self.room():
            self.cut.add("bytes")
            self._keep_partial(out)
        else:
            self._charge(size)
            self._append(out)

    def _charge(self, size: int) -> None:
        self.bytes += size
        self.notebook.bytes += size

    def _append(self, out: dict) -> None:
        last = self.outputs[-1] if self.outputs else None
        if (out["output_type"] == "stream" and last is not None and last.get("output_type") == "stream"
                and last.get("name") == out["name"]):
            last["text"] += out["text"]
        else:
            self.outputs.append(out)

    def _keep_partial(self, out: dict) -> None:
        """Past the byte budget: the part of a stream that fits, else only the essentials."""
        room = self.room() - MESSAGE_OVERHEAD
        if out["output_type"] == "stream" and room > 0:
            self._charge(room + MESSAGE_OVERHEAD)
            rest = out["text"][room:]
            out["text"] = out["text"][:room] + (f"{self.keep}\n" if self.keep and self.keep in rest else "")
            self._append(out)
            return
        self._keep_essentials(out)

    def _keep_essentials(self, out: dict) -> None:
        """A dropped output leaves only the nonce line and the cell's first error (shortened)."""
        kind = out["output_type"]
        if kind == "stream" and self.keep and self.keep in out["text"]:
            self._append({"output_type": "stream", "name": out["name"], "text": f"{self.keep}\n"})
        elif kind == "error" and not any(o.get("output_type") == "error" for o in self.outputs):
            self.outputs.append(short_error(out["ename"], out["evalue"]))

    def note(self) -> str:
        """The line that ends a cut cell ("" when nothing was cut)."""
        if not self.cut:
            return ""
        parts = []
        if "bytes" in self.cut:
            parts.append(f"more than {self.limits.cell_output_bytes} bytes in this cell or "
                         f"{self.limits.total_output_bytes} in the notebook")
        if "messages" in self.cut:
            parts.append(f"more than {self.limits.cell_output_messages} output messages in this cell or "
                         f"{self.limits.total_output_messages} in the notebook")
        return TRUNCATED_NOTE.format(why="; ".join(parts))


def to_output(mtype: str, content: dict) -> dict:
    """A notebook output from an iopub message's content (only the keys a notebook holds)."""
    if mtype == "stream":
        return {"output_type": "stream", "name": "stderr" if content.get("name") == "stderr" else "stdout",
                "text": str(content.get("text", ""))}
    if mtype == "error":
        tb = content.get("traceback")
        return {"output_type": "error", "ename": str(content.get("ename", "")),
                "evalue": str(content.get("evalue", "")),
                "traceback": [str(line) for line in tb] if isinstance(tb, list) else []}
    data = content.get("data")
    meta = content.get("metadata")
    out = {"output_type": mtype, "data": data if isinstance(data, dict) else {},
           "metadata": meta if isinstance(meta, dict) else {}}
    if mtype == "execute_result":
        count = content.get("execution_count")
        out["execution_count"] = count if isinstance(count, int) else None
    return out


def output_size(out: dict) -> int:
    """Bytes an output costs: its text, every mime type's data, its metadata, its traceback."""
    kind = out["output_type"]
    if kind == "stream":
        return len(out["text"])
    if kind == "error":
        return len(out["ename"]) + len(out["evalue"]) + sum(len(line) for line in out["traceback"])
    return json_size(out["data"]) + json_size(out["metadata"])


def json_size(value: object) -> int:
    """Length of ``value`` as JSON; unmeasurable values (too deep, not JSON) count as unbounded."""
    if isinstance(value, str):
        return len(value)
    try:
        return len(json.dumps(value))
    except (TypeError, ValueError, RecursionError, MemoryError):
        return 1 << 62


def short_error(ename: object, evalue: object) -> dict:
    """An error output bounded in size (no traceback)."""
    ename, evalue = str(ename)[:ERROR_NAME_CHARS], str(evalue)[:ERROR_VALUE_CHARS]
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}
