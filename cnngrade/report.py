"""The run's report: one line per student on the terminal and in ``autograded/autograde-<id>.txt``."""

from __future__ import annotations

import time
from pathlib import Path

from cnngrade.records import Outcome


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def row(o: Outcome, width: int = 0) -> str:
    """``student  score / max  reason`` with the reasons cut to one terminal line."""
    score = f"{fmt(o.score)} / {fmt(o.max_score)}"
    reason = "; ".join(o.reasons)
    if len(reason) > 140:
        reason = reason[:137] + "..."
    return f"{o.student:<{width}}  {score:>9}  {reason}".rstrip()


def table(outcomes: dict[str, Outcome]) -> str:
    rows = sorted(outcomes.values(), key=lambda o: o.student)
    width = max([len(o.student) for o in rows] + [7])
    lines = [f"{'student':<{width}}  {'score':>9}  reason", f"{'-' * width}  {'-' * 9}  {'-' * 6}"]
    lines += [row(o, width) for o in rows]
    return "\n".join(lines)


def summary(outcomes: dict[str, Outcome], seconds: float, backup: Path | None) -> str:
    """``graded N, unchanged M in S s; gradebook backup: ...``."""
    done = sum(o.status == "graded" for o in outcomes.values())
    skipped = sum(o.status == "skipped" for o in outcomes.values())
    internal = sum(o.status == "internal" for o in outcomes.values())
    tail = f"graded {done}, unchanged {skipped}"
    if internal:
        tail += f", NOT graded (grader error, re-run to retry) {internal}"
    return f"{tail} in {seconds:.1f} s" + (f"; gradebook backup: {backup}" if backup else "")


def write_report(path: Path, aid: str, outcomes: dict[str, Outcome]) -> None:
    """Every reason in full, one student after another."""
    if not outcomes:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"autograde {aid} at {time.strftime('%Y-%m-%d %H:%M:%S')}", ""]
    for o in sorted(outcomes.values(), key=lambda o: o.student):
        lines.append(f"{o.student}\t{fmt(o.score)} / {fmt(o.max_score)}\t{o.status}")
        lines += [f"\t- {r}" for r in o.reasons]
    path.write_text("\n".join(lines) + "\n")
