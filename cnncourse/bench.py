"""``make bench``: execute every reference notebook, print seconds and reached metrics.

A benchmark, not a test: it never fails on time. It runs the notebooks one after
another (so timings are not distorted by each other), each in a fresh kernel, and
collects the ``[metric] name = value`` lines that :func:`cnnlab.report_metric`
prints. Kernel start-up is included in the seconds, as a learner would feel it.

    python -m cnncourse.bench                   # all notebooks
    python -m cnncourse.bench 04 notebooks/07   # only paths containing these strings
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cnncourse.paths import CourseNotFound, course_root
from cnnlab.core import METRIC_PREFIX

BUDGET_SECONDS = 60.0
_METRIC = re.compile(rf"^{re.escape(METRIC_PREFIX)} (?P<name>[^=]+?) = (?P<value>\S+)\s*$", re.M)


@dataclass
class BenchRow:
    notebook: str
    seconds: float
    metrics: dict[str, str] = field(default_factory=dict)
    error: str = ""


def reference_notebooks(root: Path) -> list[Path]:
    """The lecture notebooks and the exercise sources, in topic order."""
    return sorted((root / "notebooks").glob("*.ipynb")) + sorted((root / "source").glob("*/*.ipynb"))


def metrics_from_outputs(nb) -> dict[str, str]:
    """Collect ``[metric]`` lines from the stream outputs of an executed notebook."""
    found: dict[str, str] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                for m in _METRIC.finditer(out.get("text", "")):
                    found[m.group("name").strip()] = m.group("value")
    return found


def run_notebook(path: Path, root: Path, timeout: int = 600) -> BenchRow:
    """Execute one notebook in its own folder and time it."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    error = ""
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    except CellExecutionError as exc:
        error = str(exc).strip().splitlines()[-1][:120]
    except Exception as exc:  # a dead kernel or a timeout: report it, keep benchmarking the rest
        error = f"{type(exc).__name__}: {exc}"[:120]
    seconds = time.perf_counter() - start
    return BenchRow(str(path.relative_to(root)), seconds, metrics_from_outputs(nb), error)


def format_table(rows: list[BenchRow]) -> str:
    """The benchmark table: notebook, seconds, budget verdict, metrics (or the error)."""
    width = max([len(r.notebook) for r in rows] + [8])
    lines = [f"{'notebook':<{width}}  {'seconds':>7}  {'<60s':<4}  metrics", "-" * (width + 40)]
    for r in rows:
        verdict = "ok" if r.seconds < BUDGET_SECONDS and not r.error else ("FAIL" if r.error else "SLOW")
        detail = r.error or ", ".join(f"{k} = {v}" for k, v in r.metrics.items())
        lines.append(f"{r.notebook:<{width}}  {r.seconds:7.1f}  {verdict:<4}  {detail}")
    lines.append(f"{'total':<{width}}  {sum(r.seconds for r in rows):7.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    filters = sys.argv[1:] if argv is None else argv
    try:
        root = course_root()
    except CourseNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = [p for p in reference_notebooks(root) if not filters or any(f in str(p) for f in filters)]
    if not paths:
        print("no notebooks match", filters, file=sys.stderr)
        return 2
    rows = []
    import torch

    from cnnlab.core import get_device

    print(f"device: {get_device()} (torch {torch.__version__})", flush=True)
    for path in paths:
        print(f"running {path.relative_to(root)} ...", file=sys.stderr, flush=True)
        rows.append(run_notebook(path, root))
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
