"""Create ``mywork/``: a learner's own copies of the student notebooks.

release/ is generated and committed, so a learner never edits it in place (the next
``make release`` would overwrite their work). ``make lab`` copies every release
notebook that is not yet in mywork/ and never overwrites an existing copy.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from cnncourse.paths import CourseNotFound, course_root


def sync_workspace(root: Path) -> list[Path]:
    """Copy missing release files into ``root/mywork``; return the files created."""
    created = []
    for src in sorted((root / "release").rglob("*")):
        if not src.is_file() or ".ipynb_checkpoints" in src.parts:
            continue
        dest = root / "mywork" / src.relative_to(root / "release")
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
            created.append(dest)
    return created


def ensure_exchange(root: Path) -> Path:
    """Create the course-local nbgrader exchange that ``nbgrader_config.py`` points to by default.

    With it, JupyterLab's Assignment List and Course List open without "exchange directory
    does not exist" errors on a single-user machine.
    """
    exchange = root / ".exchange"
    exchange.mkdir(exist_ok=True)
    return exchange


def main() -> int:
    try:
        root = course_root()
    except CourseNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ensure_exchange(root)
    created = sync_workspace(root)
    print(f"mywork/: {len(created)} new notebook(s) copied from release/ (existing work is never overwritten)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
