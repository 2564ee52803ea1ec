"""Sphinx configuration of the course book (`make book`): lectures, home page, interview index, exercises.

Built with Sphinx and MyST-NB: pure Python from PyPI (no Node toolchain, no theme or
script fetched at build time), executed outputs cached by jupyter-cache so a rebuild
only re-runs notebooks that changed, Sphinx's own offline search, and MathJax served
from the build itself. The source folder is the course root; ``cnncourse.book`` says
which files are left out.
"""

from __future__ import annotations

import os

from cnncourse.book import BOOK_EXCLUDE, execution_excludes, mathjax_dir, rewrite_links

project = "CNN course"
author = "the CNN course authors"
root_doc = "book/index"  # the table of contents; the site itself opens on the home notebook
extensions = ["myst_nb"]
exclude_patterns = BOOK_EXCLUDE
html_theme = "furo"
html_title = "Convolutional neural networks: the course"
html_static_path = [str(mathjax_dir())]  # copied into _static/ of the build
html_extra_path = ["extra"]  # index.html: the site opens on the home page
mathjax_path = "MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {"tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                               "processEscapes": True}, "showMathMenu": False}
html_copy_source = False
html_show_sourcelink = False

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 6
myst_heading_slug_func = "cnncourse.book.jupyterlab_slug"

# Executed outputs: run each lecture once, keep the results in a cache keyed by content.
nb_execution_mode = os.environ.get("CNN_BOOK_EXECUTE", "cache")
nb_execution_cache_path = os.environ.get("CNN_BOOK_CACHE") or os.path.join(os.path.dirname(__file__), "..", "_build",
                                                                          ".jupyter_cache")
nb_execution_timeout = 600
nb_execution_excludepatterns = execution_excludes(os.environ.get("CNN_BOOK_ONLY", ""))
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
# Widgets (the lectures' explorers) need a live kernel: the book shows their static fallback and loads no
# widget JavaScript from a CDN.
nb_ipywidgets_js = {}
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]


def _source_read(app, docname, source) -> None:
    source[0] = rewrite_links(source[0])


def setup(app) -> None:
    app.connect("source-read", _source_read)

