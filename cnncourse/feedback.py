"""The feedback page nbgrader writes, made fit to hand to a learner: offline math, no hidden tests.

nbgrader renders feedback with nbconvert's HTML exporter, whose template loads MathJax 2
from a CDN: opened without network (a laptop on a train, a locked-down lab, the
``/files/`` view of JupyterLab) every formula stays raw ``$...$``. The page is handed
out as one file (``nbgrader release_feedback`` copies it into the exchange), so the fix
cannot point at a folder beside it: :class:`OfflineFeedbackExporter` replaces the CDN
block by MathJax 3's self-contained SVG build, inlined, and only on pages that contain
math (a page without formulas stays small).

nbgrader also copies the whole test cell into the feedback, hidden tests included (its
issue #917): a class that receives feedback learns the hidden tests.
:class:`HideHiddenTests` replaces each ``### BEGIN HIDDEN TESTS`` block of a locked test
cell by one comment line and cuts tracebacks in those cells down to their last line, the
message the course wrote for the learner. It is on by default in the course's
``nbgrader_config.py`` (``c.HideHiddenTests.enabled = False`` turns it off).

Both are wired in by :func:`configure`, which the course's ``nbgrader_config.py`` and
``make grade`` call, so ``nbgrader generate_feedback``, the formgrader, ``make autograde``
and ``make grade`` all write the same kind of page.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from nbconvert.exporters import HTMLExporter
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
HIDDEN_NOTE = "# (hidden tests: not shown in feedback)"
_CDN_BLOCK = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
# $...$, $$...$$, \(...\) or \[...\] in the page's text (MathJax's own delimiters)
_MATH = re.compile(r"\$\$.+?\$\$|(?<![\\$])\$[^$\s][^$]*?\$|\\\(.+?\\\)|\\\[.+?\\\]", re.S)
_CONFIG = """<script>
window.MathJax = {tex: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
  processEscapes: true, processEnvironments: true}, svg: {fontCache: "global"},
  options: {enableMenu: false}};  // the menu's speech tools would fetch data from a CDN
</script>"""


@lru_cache(maxsize=1)
def mathjax_script() -> str:
    """MathJax 3's TeX-to-SVG build (fonts included) from the django-static-mathjax package."""
    import mathjax

    path = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-svg.js"
    text = path.read_text(encoding="utf-8")
    return text.replace("</script", "<\\/script")  # cannot close the inline <script> early


def has_math(html: str) -> bool:
    """Whether the page's text holds TeX that MathJax would typeset."""
    body = html.split("<body", 1)[-1]
    body = re.sub(r"<(script|style)\b.*?</\1>", "", body, flags=re.S)
    return bool(_MATH.search(body))


def offline_mathjax(html: str) -> str:
    """The page with its CDN MathJax replaced by an inline MathJax 3, or removed when there is no math."""
    local = f"{_CONFIG}\n<script>{mathjax_script()}</script>" if has_math(html) else ""
    page, n = _CDN_BLOCK.subn(lambda _: local, html, count=1)
    if n == 0 and "mathjax" in html.lower():
        raise ValueError("the feedback template's MathJax block was not found: the page would load it from a CDN")
    return page


class OfflineFeedbackExporter(HTMLExporter):
    """nbconvert's HTML exporter whose pages typeset math without network."""

    def from_notebook_node(self, nb, resources=None, **kw):
        html, resources = super().from_notebook_node(nb, resources=resources, **kw)
        return offline_mathjax(html), resources


def strip_hidden(source: str) -> tuple[str, int]:
    """``source`` without its hidden-test blocks (one note line each), and how many blocks there were."""
    out: list[str] = []
    hidden, blocks = False, 0
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN_HIDDEN and not hidden:
            hidden, blocks = True, blocks + 1
            out.append(line[: len(line) - len(line.lstrip())] + HIDDEN_NOTE)
        elif stripped == END_HIDDEN and hidden:
            hidden = False
        elif not hidden:
            out.append(line)
    return "\n".join(out), blocks


class HideHiddenTests(Preprocessor):
    """Take the hidden tests' source out of the feedback (nbgrader issue #917)."""

    enabled = Bool(True, help="hide the hidden tests' source and tracebacks in feedback").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or BEGIN_HIDDEN not in cell.source:
            return cell, resources
        cell.source, _ = strip_hidden(cell.source)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                # the traceback quotes the failing lines; the last line is the course's message
                output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources

    def preprocess(self, nb, resources):
        if not self.enabled:
            return nb, resources
        return super().preprocess(nb, resources)


FEEDBACK_PREPROCESSORS = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "cnncourse.feedback.HideHiddenTests",
]
# nbgrader's default ignore list, plus the grader's private marker (never copied to feedback/)
IGNORE = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".cnnlab-autograde.json"]


def configure(c, hide_hidden_tests: bool = True) -> None:
    """Point nbgrader's feedback step at the course's exporter and preprocessors (in place).

    Settings already present in ``c`` (an instructor's choice) are kept.
    """
    if "exporter_class" not in c.GenerateFeedback:
        c.GenerateFeedback.exporter_class = "cnncourse.feedback.OfflineFeedbackExporter"
    if "preprocessors" not in c.GenerateFeedback:
        c.GenerateFeedback.preprocessors = list(FEEDBACK_PREPROCESSORS)
    if "enabled" not in c.HideHiddenTests:
        c.HideHiddenTests.enabled = hide_hidden_tests
    if "ignore" not in c.CourseDirectory:
        c.CourseDirectory.ignore = list(IGNORE)
