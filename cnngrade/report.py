"""The run's report: one line per student on the terminal and in ``autograded/autograde-<id>.txt``.

Student names and reasons carry text from submissions (a grade id, a file name, an error
message): every such string is shown through :func:`visible`, which turns control
characters, newlines, ANSI escapes and invisible format characters into visible escapes
and bounds the length, so no submission can start a new line or forge another student's.
"""

from __future__ import annotations

import time
from pathlib import Path

from cnngrade.records import Outcome

STUDENT_CHARS = 64
REASON_CHARS = 400


def visible(text: object, limit: int = REASON_CHARS) -> str:
    """``text`` on one line of printable characters (others as ``\\n``, ``\\x1b``, ``\\u202e``), at most ``limit``."""
    raw = str(text)[: limit + 1]
    out = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in raw)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def row(o: Outcome, width: int = 0) -> str:
    """``student  score / max  reason`` with the reasons cut to one terminal line."""
    score = f"{fmt(o.score)} / {fmt(o.max_score)}"
    reason = visible("; ".join(visible(r) for r in o.reasons), 140)
    return f"{visible(o.student, STUDENT_CHARS):<{width}}  {score:>9}  {reason}".rstrip()


def table(outcomes: dict[str, Outcome]) -> str:
    rows = sorted(outcomes.values(), key=lambda o: o.student)
    width = max([len(visible(o.student, STUDENT_CHARS)) for o in rows] + [7])
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
        lines.append(f"{visible(o.student, STUDENT_CHARS)}\t{fmt(o.score)} / {fmt(o.max_score)}\t{o.status}")
        lines += [f"\t- {visible(r)}" for r in o.reasons]
    path.write_text("\n".join(lines) + "\n")
