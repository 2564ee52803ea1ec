"""``make book``: the course as a static, searchable HTML site, built offline with Sphinx + MyST-NB.

What goes in: the home notebook, the interview index, every lecture (executed, outputs
and figures included) and every student exercise notebook from ``release/`` (no
solutions, no hidden tests). Links are written for JupyterLab in the notebooks
(``other.ipynb#heading=Section``, ``../mywork/...``); :func:`rewrite_links` turns them into
the book's links as each page is read, and :func:`jupyterlab_slug` gives every heading
the same anchor JupyterLab does, so one link form serves both.

    python -m cnncourse.book                  # the whole course -> _build/book/
    python -m cnncourse.book --only 01_convolution --out /tmp/b   # every page, only topic 01 executed
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from cnncourse.paths import course_root

HEADING_FRAGMENT = re.compile(r"(\.ipynb)#heading=")
MYWORK = re.compile(r"\.\./mywork/")


def jupyterlab_slug(text: str) -> str:
    """A heading's anchor as JupyterLab makes it: the rendered text, spaces turned into hyphens."""
    return text.strip().replace(" ", "-")


def rewrite_links(text: str) -> str:
    """Turn JupyterLab-only link forms into links the book resolves."""
    return MYWORK.sub("../release/", HEADING_FRAGMENT.sub(r"\1#", text))


def mathjax_dir() -> Path:
    """MathJax as shipped by the jupyter-server-mathjax package: served from the book, never a CDN."""
    import jupyter_server_mathjax

    return Path(jupyter_server_mathjax.__file__).parent / "static"


BOOK_EXCLUDE = ["**/.ipynb_checkpoints", "_build", ".venv", "*.md", "autograded/*.md", "docs", "release/*.md", "source", "submitted", "autograded",
                "feedback", "mywork", "tests", ".grading", "book/extra", "book/*.py", "curriculum", "cnnlab", "cnncourse", "cnngrade",
                "tools", ".exchange", "*.egg-info"]
NEVER_EXECUTED = ["release/*/*.ipynb", "notebooks/00_start_here.ipynb", "notebooks/interview_index.ipynb"]


def execution_excludes(only: str = "") -> list[str]:
    """Notebooks shown with their stored (empty) outputs; with ``only``, every lecture but that topic's."""
    if not only:
        return NEVER_EXECUTED
    others = [p.name for p in course_root().joinpath("notebooks").glob("[0-9][0-9]_*.ipynb") if p.stem != only]
    return NEVER_EXECUTED + [f"notebooks/{name}" for name in others]


def build(out: Path, only: str = "", execute: str = "cache") -> int:
    """Run sphinx-build on the course root into ``out``; returns its exit code."""
    root = course_root()
    env = {**os.environ, "CNN_BOOK_ONLY": only, "CNN_BOOK_EXECUTE": execute, "CNN_COURSE_ROOT": str(root),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(root / "book"), str(root), str(out)]
    return subprocess.call(cmd, cwd=root, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnncourse.book", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: _build/book)")
    parser.add_argument("--only", default=os.environ.get("CNN_BOOK_ONLY", ""), help="one topic slug only")
    parser.add_argument("--execute", default="cache", choices=["cache", "off", "force"])
    args = parser.parse_args(argv)
    out = args.out or course_root() / "_build" / "book"
    code = build(out, args.only, args.execute)
    if code == 0:
        print(f"book written to {out}/index.html" if (out / "index.html").exists() else f"book written to {out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
