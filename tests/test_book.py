"""`make book`: the site builds offline, every page loads in Chromium, links and images resolve, math is typeset.

The build here executes one lecture (the others are rendered without outputs) so the
test stays fast; `make book` executes them all with the same configuration.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from browser import chrome, wait_for

ROOT = Path(__file__).resolve().parents[1]
TOPIC = "01_convolution"


class _Refs(HTMLParser):
    """Collects link targets, image sources and element ids of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag in ("img", "script") and a.get("src"):
            self.images.append(a["src"])
        if tag == "link" and a.get("href"):
            self.links.append(a["href"])


def _parse(path: Path) -> _Refs:
    refs = _Refs()
    refs.feed(path.read_text(errors="replace"))
    return refs


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    env = {**os.environ, "CNN_BOOK_CACHE": str(out.parent / "book-cache"), "CNN_COURSE_ROOT": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "cnncourse.book", "--only", TOPIC, "--out", str(out / "html")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / "html"


def pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts)


def test_site_has_every_page(site):
    names = {p.relative_to(site).as_posix() for p in pages(site)}
    expected = {"index.html", "search.html", "notebooks/00_start_here.html", "notebooks/interview_index.html"}
    expected |= {f"notebooks/{p.stem}.html" for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    expected |= {f"release/{p.parent.name}/{p.stem}.html" for p in (ROOT / "release").glob("*/*.ipynb")}
    assert expected <= names, f"missing pages: {sorted(expected - names)}"


def test_no_solution_or_hidden_test_reaches_the_site(site):
    leaked = [p.name for p in pages(site) if re.search(r"BEGIN SOLUTION|BEGIN HIDDEN TESTS", p.read_text())]
    assert not leaked, f"pages with solutions or hidden tests: {leaked}"


def test_every_local_link_and_image_resolves(site):
    broken = []
    id_cache: dict[Path, set[str]] = {}
    for page in pages(site):
        refs = _parse(page)
        for target in refs.links + refs.images:
            parts = urlsplit(target)
            if parts.scheme in ("http", "https", "mailto", "data", "javascript") or target.startswith("//"):
                if parts.scheme in ("http", "https") and "mathjax" in target.lower():
                    broken.append(f"{page.name}: MathJax from the network {target}")
                continue
            file = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not file.exists():
                broken.append(f"{page.relative_to(site)}: {target}")
                continue
            if parts.fragment and file.suffix == ".html":
                ids = id_cache.setdefault(file, _parse(file).ids)
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)}: {target} (no such anchor)")
    assert not broken, f"{len(broken)} broken, e.g.:\n" + "\n".join(broken[:20])


@pytest.fixture(scope="module")
def browser():
    driver = chrome()
    yield driver
    driver.quit()


MATH_DONE = """
const hub = window.MathJax && window.MathJax.Hub;
if (!hub) return 'no MathJax';
const pending = hub.queue && (hub.queue.pending || hub.queue.running);
return pending ? null : 'done';"""


@pytest.mark.parametrize("page", ["notebooks/00_start_here.html", f"notebooks/{TOPIC}.html",
                                  "notebooks/interview_index.html", f"release/{TOPIC}/{TOPIC}.html"])
def test_page_loads_clean_with_figures_and_typeset_math(site, browser, page):
    browser.get((site / page).as_uri())
    wait_for(lambda: browser.execute_script("return document.readyState") == "complete", 60, f"{page} to load")
    has_math = browser.execute_script("return document.querySelectorAll('.math').length") > 0
    if has_math:
        state = wait_for(lambda: browser.execute_script(MATH_DONE), 60, "MathJax to finish")
        assert state == "done", f"{page}: MathJax did not load from the site"
        raw = browser.execute_script(
            "return Array.from(document.querySelectorAll('.math')).filter(m => !m.querySelector('.MathJax, .MathJax_Display, .MathJax_Preview') && /\\\\\\(|\\\\\\[|\\$/.test(m.textContent)).length")
        assert raw == 0, f"{page}: {raw} formulas left as raw TeX"
    broken_images = browser.execute_script(
        "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
    assert not broken_images, f"{page}: images that did not load: {broken_images[:5]}"
    if page == f"notebooks/{TOPIC}.html":
        assert browser.execute_script("return document.querySelectorAll('.cell_output img').length") >= 3, \
            "the executed lecture shows no figures"
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"{page}: console errors {errors[:5]}"


def test_search_finds_a_lecture(site, browser):
    browser.get((site / "search.html").as_uri() + "?q=receptive")
    hits = wait_for(lambda: browser.execute_script(
        "const l = document.querySelectorAll('#search-results li, ul.search li'); return l.length ? l.length : null;"),
        60, "search results")
    assert hits >= 1
