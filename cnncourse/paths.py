"""Where the course is: found from the working directory or ``CNN_COURSE_ROOT``, never from ``__file__``.

The tooling must work from an installed (non-editable) package, so it cannot locate the
course relative to its own source files. A course root is a folder that holds
``nbgrader_config.py`` and ``source/``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV_VAR = "CNN_COURSE_ROOT"


class CourseNotFound(FileNotFoundError):
    """Neither the environment variable nor the working directory leads to a course."""


def is_course_root(path: Path) -> bool:
    return (path / "nbgrader_config.py").is_file() and (path / "source").is_dir()


def course_root(start: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The course root: ``$CNN_COURSE_ROOT`` if set, else the nearest course folder at or above ``start``.

    ``start`` defaults to the working directory, ``environ`` to ``os.environ``. Raises
    :class:`CourseNotFound` with a one-line explanation when there is none.
    """
    env = (os.environ if environ is None else environ).get(ENV_VAR)
    if env:
        root = Path(env).expanduser().resolve()
        if not is_course_root(root):
            raise CourseNotFound(f"{ENV_VAR}={env} is not a course folder (no nbgrader_config.py and source/)")
        return root
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if is_course_root(folder):
            return folder
    raise CourseNotFound(f"no course folder (nbgrader_config.py and source/) at or above {here}; "
                         f"run from inside the course or set {ENV_VAR}")


def lectures(root: Path) -> list[Path]:
    """The topic lectures, in order: ``notebooks/NN_topic.ipynb`` with NN from 01 up (00 is the home page)."""
    return [p for p in sorted((Path(root) / "notebooks").glob("[0-9][0-9]_*.ipynb")) if not p.name.startswith("00_")]
