"""``make release`` (``python -m cnncourse.release [ID...]``): regenerate the student notebooks in release/ from source/.

Runs nbgrader generate_assignment for every topic (or the ones named) in the course
root, which also records the assignments in the instructor's gradebook.db so that
``nbgrader autograde`` knows their graded cells.
"""

from __future__ import annotations

import sys

from cnncourse.grading import generate, load_course_config, topics
from cnncourse.paths import CourseNotFound, course_root


def main(argv: list[str] | None = None) -> int:
    try:
        root = course_root()
    except CourseNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    names = (sys.argv[1:] if argv is None else argv) or topics(root)
    unknown = sorted(set(names) - set(topics(root)))
    if unknown:
        print(f"error: no such assignment(s) in source/: {', '.join(unknown)}", file=sys.stderr)
        return 2
    generate(root, names, base=load_course_config(root))
    for name in names:
        print(f"release/{name}/ regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
