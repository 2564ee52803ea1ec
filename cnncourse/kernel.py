"""Run notebook cells one at a time in a live Jupyter kernel.

The mutation tests use this to execute an exercise notebook once, then swap a
solution cell for a plausible wrong version and re-run only that cell and its test
cells, all in the same kernel (a kernel start costs ~4 s and ``import torch`` ~4.5 s,
so a fresh kernel per mutant would not scale).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.manager import start_new_kernel

from cnncourse.cells import cell_key

__all__ = ["CellResult", "KernelSession", "cell_key", "load_cells"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class CellResult:
    """Outcome of one execution: ``ok`` and, when not, the exception's name and message."""

    ok: bool
    ename: str = ""
    evalue: str = ""

    def __str__(self) -> str:
        return "ok" if self.ok else f"{self.ename}: {_ANSI.sub('', self.evalue)}"


def load_cells(path: Path) -> list[dict]:
    """The cells of a notebook file (no nbformat validation: the tests check that separately)."""
    return json.loads(Path(path).read_text())["cells"]


class KernelSession:
    """One kernel, started in ``cwd``; use as a context manager so it is always shut down."""

    def __init__(self, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None) -> None:
        self.timeout = timeout
        kernel_env = {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline", **(env or {})}
        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(cwd), env=kernel_env)

    def run(self, code: str) -> CellResult:
        """Execute ``code``; outputs are discarded, the error (if any) is returned."""
        reply = self.kc.execute_interactive(code, timeout=self.timeout, store_history=False,
                                            output_hook=lambda msg: None, allow_stdin=False)
        content = reply["content"]
        if content["status"] == "ok":
            return CellResult(True)
        return CellResult(False, content.get("ename", "Error"), content.get("evalue", ""))

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def __enter__(self) -> KernelSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
