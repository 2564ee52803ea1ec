"""Sanitise the untrusted HTML of an autograded notebook before anyone opens it.

The feedback page (nbgrader's ``generate_feedback``) and the formgrader both render the
autograded notebook with nbconvert, which passes a markdown cell's raw HTML, an
output's ``text/html`` and the links markdown makes (``[x](javascript:...)``) straight
into the page. A submission controls all of these: its own markdown cells and every
output of its code. So the job rewrites the autograded notebook once, in place, before
the feedback is generated and the notebook is installed for the formgrader:

- a student's markdown cell (not a locked cell, nor one that holds the course's own
  text unchanged) is
  rendered as nbconvert renders it and checked with bleach: when the allowlist removes
  anything (a script, an event-handler attribute, a ``javascript:`` link, a frame, an
  object, a meta refresh, a style), the cell is shown as its source text instead;
  ordinary markdown, images (``data:`` URIs and attachments) and math stay as written;
- ``text/html`` outputs are cleaned by bleach with the same allowlist, ``text/markdown``
  outputs that would render anything outside it are dropped, mime types that carry
  code or inline documents (JavaScript, SVG, widgets, anything unknown) are removed, and
  output metadata is reduced to what sizes or shades an image (``isolated`` would put
  the HTML in a frame, ``filenames`` would point an image elsewhere);
- raw cells are cleaned by bleach (nbconvert's HTML export shows them verbatim).

The decision is bleach's: a fragment is unsafe exactly when cleaning it with the
allowlist gives something else than parsing and serialising it with the same parser and
serialiser and no filter at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import bleach
from bleach import html5lib_shim
from bleach.sanitizer import BleachSanitizerFilter
from nbconvert.filters.markdown_mistune import InvalidNotebook, IPythonRenderer, MarkdownWithMath

ALLOWED_TAGS = frozenset(bleach.ALLOWED_TAGS) | {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "div", "span", "pre", "img", "table", "thead", "tbody",
    "tfoot", "tr", "th", "td", "caption", "sub", "sup", "del", "s", "u", "kbd", "samp", "var", "dl", "dt", "dd",
    "details", "summary", "small", "mark", "q", "cite", "figure", "figcaption", "ins",
}
URL_PROTOCOLS = frozenset({"http", "https", "mailto", "data", "attachment"})
IMAGE_DATA = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*$")
ATTRIBUTES = {
    "*": {"title", "class", "align"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "ol": {"start"},
    **{f"h{n}": {"id"} for n in range(1, 7)},  # nbconvert's heading anchors
}
SAFE_MIME = frozenset({"text/plain", "text/latex", "image/png", "image/jpeg"})
ATTACHMENT_MIME = frozenset({"image/png", "image/jpeg", "image/gif"})
NOTICE = ("**[shown as text by the grader: this markdown held active content (a script, an event handler, "
          "a frame or a link to a script)]**\n\n")


def allow_attribute(tag: str, name: str, value: str) -> bool:
    """The allowlist of attributes; ``data:`` and ``attachment:`` URLs only as an image's source."""
    if name not in ATTRIBUTES.get(tag, set()) | ATTRIBUTES["*"]:
        return False
    if name in ("href", "src"):
        url = value.strip().lower()
        if url.startswith("data:"):
            return tag == "img" and bool(IMAGE_DATA.match(value.strip()))
        if url.startswith("attachment:"):
            return tag == "img"
    return True


STRICT = bleach.Cleaner(tags=ALLOWED_TAGS, attributes=allow_attribute, protocols=URL_PROTOCOLS, strip=False,
                        strip_comments=True)


class _KeepEverything(BleachSanitizerFilter):
    """Bleach's filter with nothing removed: only its handling of text and entities."""

    def sanitize_token(self, token: dict):
        return self.sanitize_characters(token) if token["type"] == "Characters" else token


def _serialise_unfiltered(fragment: str) -> str:
    """``fragment`` parsed and serialised exactly as bleach does, with nothing removed."""
    parser = html5lib_shim.BleachHTMLParser(tags=None, strip=False, consume_entities=False,
                                            namespaceHTMLElements=False)
    tokens = _KeepEverything(source=STRICT.walker(parser.parseFragment(fragment)))
    return STRICT.serializer.render(tokens)


def unsafe(fragment: str) -> bool:
    """Whether the allowlist removes or escapes anything in ``fragment`` (see the module's docstring)."""
    return bool(fragment) and STRICT.clean(fragment) != _serialise_unfiltered(fragment)


def render_markdown(text: str, attachments: dict | None = None) -> str:
    """Markdown as nbconvert's HTML export renders it (the feedback page, the formgrader)."""
    try:
        return MarkdownWithMath(renderer=IPythonRenderer(escape=False, attachments=attachments or {})).render(text)
    except InvalidNotebook:  # a missing attachment: the export fails on it too; judged without attachments
        return MarkdownWithMath(renderer=IPythonRenderer(escape=False)).render(text.replace("attachment:", "#"))


def as_text(source: str) -> str:
    """A markdown cell that shows ``source`` as an indented code block (escaped, inert) under a notice."""
    body = "\n".join("    " + line for line in source.split("\n"))
    return NOTICE + body


@dataclass
class Sanitised:
    """What was changed in one notebook."""

    cells: int = 0      # markdown / raw cells shown as text or cleaned
    outputs: int = 0    # outputs cleaned or with mime types removed


def sanitise_markdown(cell) -> bool:
    """Show an unsafe markdown cell as text; whether it was unsafe."""
    if not unsafe(render_markdown(cell.source, cell.get("attachments"))):
        return False
    text = as_text(cell.source)
    cell.source = text if not unsafe(render_markdown(text)) else NOTICE
    return True


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    return None


def clean_data(data: dict) -> tuple[dict, bool]:
    """The mime bundle with unsafe types removed and HTML cleaned; whether anything changed."""
    out, changed = {}, False
    for mime, value in data.items():
        text = _text(value)
        if text is None:
            changed = True
        elif mime in SAFE_MIME:
            out[mime] = text
        elif mime == "text/html":
            out[mime] = STRICT.clean(text) if unsafe(text) else text
            changed = changed or out[mime] != text
        elif mime == "text/markdown" and not unsafe(render_markdown(text)):
            out[mime] = text
        else:
            changed = True
    return out, changed


def _harmless(entry: dict) -> dict:
    """The keys of output metadata that only size or shade an image."""
    out = {}
    for key, value in entry.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if (key in ("width", "height") and number) or (key == "unconfined" and isinstance(value, bool)) or \
                (key == "needs_background" and value in ("light", "dark")):
            out[key] = value
    return out


def clean_metadata(meta: dict) -> dict:
    """Only what sizes or shades an image (the rest can steer the template: ``isolated``, ``filenames``)."""
    if not isinstance(meta, dict):
        return {}
    out = _harmless(meta)
    for mime in ("image/png", "image/jpeg"):
        entry = _harmless(meta[mime]) if isinstance(meta.get(mime), dict) else {}
        if entry:
            out[mime] = entry
    return out


def sanitise_outputs(cell) -> int:
    """Clean the outputs of a code cell; how many changed."""
    changed = 0
    for output in cell.get("outputs", []):
        if output.get("output_type") not in ("display_data", "execute_result"):
            continue
        data, dirty = clean_data(dict(output.get("data") or {}))
        meta = clean_metadata(output.get("metadata") or {})
        changed += dirty or meta != (output.get("metadata") or {})
        output["data"], output["metadata"] = data, meta
    return changed


def sanitise_notebook(nb, trusted: frozenset[str] = frozenset()) -> Sanitised:
    """Sanitise a notebook node in place; markdown and raw cells whose text is in ``trusted`` are the course's."""
    done = Sanitised()
    for cell in nb.cells:
        locked = bool(cell.get("metadata", {}).get("nbgrader", {}).get("locked")) or cell.source in trusted
        if cell.cell_type == "code":
            done.outputs += sanitise_outputs(cell)
        elif cell.cell_type == "markdown" and not locked:
            attachments = cell.get("attachments")
            if isinstance(attachments, dict):
                cell["attachments"] = {name: {m: v for m, v in bundle.items() if m in ATTACHMENT_MIME}
                                       for name, bundle in attachments.items() if isinstance(bundle, dict)}
            done.cells += sanitise_markdown(cell)
        elif cell.cell_type == "raw" and not locked:
            cleaned = STRICT.clean(cell.source)
            done.cells += cleaned != cell.source
            cell.source = cleaned
    return done


def sanitise_folder(folder: Path, trusted: frozenset[str] = frozenset()) -> list[str]:
    """Sanitise every notebook of an autograded folder in place; one line per notebook that changed."""
    import nbformat

    notes = []
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        done = sanitise_notebook(nb, trusted)
        if done.cells or done.outputs:
            nbformat.write(nb, path)
            notes.append(f"{path.name}: active HTML removed from {done.cells} cell(s) and {done.outputs} "
                         "output(s) (scripts, event handlers, frames, javascript: links): shown as text")
    return notes
