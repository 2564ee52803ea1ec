"""Where the course is: found from the working directory or ``CNN_COURSE_ROOT``.

The course tooling never locates the course from its own file location, so it works
the same from an editable install, a regular ``pip install .`` or a copy of the
package elsewhere: run the commands from inside the course (any sub-folder will do),
or point ``CNN_COURSE_ROOT`` at it.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "CNN_COURSE_ROOT"


class CourseNotFound(RuntimeError):
    """Neither the environment variable nor the working directory leads to a course."""


def is_course(path: Path) -> bool:
    """A course folder holds ``nbgrader_config.py`` and a ``source/`` folder."""
    return (path / "nbgrader_config.py").is_file() and (path / "source").is_dir()


def course_root(start: Path | None = None, environ: dict[str, str] | None = None) -> Path:
    """The course root: ``$CNN_COURSE_ROOT`` if set, else the nearest course folder above ``start``.

    ``start`` defaults to the working directory. Raises :class:`CourseNotFound` with a
    one-line explanation when there is none.
    """
    env = os.environ if environ is None else environ
    if env.get(ENV_VAR):
        root = Path(env[ENV_VAR]).expanduser().resolve()
        if not is_course(root):
            raise CourseNotFound(f"{ENV_VAR}={env[ENV_VAR]} is not a course folder "
                                 "(it needs nbgrader_config.py and source/)")
        return root
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if is_course(folder):
            return folder
    raise CourseNotFound(f"no course folder (with nbgrader_config.py and source/) at or above {here}; "
                         f"run the command inside the course or set {ENV_VAR}")
