"""The course in JupyterLab, driven by a real headless Chromium, as a newcomer would use it.

One Lab server (on a copy of the course, so nothing in the repo changes) serves every test
in this module. Every wait is on the application's state (kernel status, execution counts,
outputs, dialogs), never a fixed sleep.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from browser import chrome, start_lab, wait_for

from cnncourse.workspace import ensure_exchange, sync_workspace

ROOT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT = 240

APP = "const app = window.jupyterapp; const w = app.shell.currentWidget;"
KERNEL_STATUS = APP + "const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel; return k ? k.status : null;"
CURRENT_PATH = APP + "return w && w.context ? w.context.path : null;"
DIRTY = APP + "return w.context.model.dirty;"
CELLS = APP + """
return Array.from(w.content.model.cells).map(c => ({
  type: c.type, id: c.id, count: c.type === 'code' ? c.executionCount : null,
  outputs: c.type === 'code' ? c.outputs.toJSON() : [],
  source: c.sharedModel.getSource(),
}));"""


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A copy of the course with a learner's workspace, so the tests never touch the repo."""
    root = tmp_path_factory.mktemp("course")
    for name in ("notebooks", "release", "source", "curriculum"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy2(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    ensure_exchange(root)
    sync_workspace(root)
    return root


@pytest.fixture(scope="module")
def lab(course, tmp_path_factory):
    logs = tmp_path_factory.mktemp("lab")
    server = start_lab(course, logs / "runtime", logs / "lab.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(lab):
    driver = chrome()
    driver.get(lab.url("lab") + "&reset")
    wait_for(lambda: driver.execute_script("return !!(window.jupyterapp && window.jupyterapp.shell)"), 120,
             "JupyterLab to load in the browser")
    driver.set_script_timeout(120)
    driver.execute_async_script("const done = arguments[0]; window.jupyterapp.restored.then(() => done(true));")
    wait_for(lambda: driver.execute_script(
        "return ['docmanager:open', 'notebook:run-all-cells', 'nbgrader:open-assignment-list']"
        ".every(c => window.jupyterapp.commands.hasCommand(c));"), 60, "JupyterLab's commands")
    yield driver
    driver.quit()


def open_notebook(browser, path: str) -> None:
    """Open ``path`` through the application (as a click in the file browser does) and wait for its kernel."""
    browser.set_script_timeout(60)
    browser.execute_async_script(
        f"const done = arguments[0]; window.jupyterapp.commands.execute('docmanager:open', {{path: {path!r}}})"
        ".then(() => done(true), e => done(String(e)));")
    wait_for(lambda: browser.execute_script(CURRENT_PATH) == path, 60, f"{path} to open")
    wait_for(lambda: browser.execute_script(KERNEL_STATUS) == "idle", 120, f"the kernel of {path} to be idle")


def cells(browser) -> list[dict]:
    return browser.execute_script(CELLS)


def run_all(browser) -> list[dict]:
    """Run every cell and wait until each code cell has run and the kernel is idle again."""
    browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")

    def finished():
        now = cells(browser)
        done = all(c["count"] is not None for c in now if c["type"] == "code" and c["source"].strip())
        return now if done and browser.execute_script(KERNEL_STATUS) == "idle" else None

    return wait_for(finished, RUN_TIMEOUT, "every cell to run", interval=0.5)


def errors(found: list[dict]) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in found for o in c["outputs"] if o.get("output_type") == "error"]


def images(found: list[dict]) -> int:
    return sum(1 for c in found for o in c["outputs"] if "image/png" in o.get("data", {}))


def test_home_notebook_opens_clean_and_runs(browser):
    open_notebook(browser, "notebooks/00_start_here.ipynb")
    assert browser.execute_script(DIRTY) is False, "opening the home notebook marks it modified"
    found = run_all(browser)
    assert not errors(found), errors(found)
    text = "\n".join(o.get("text", "") for c in found for o in c["outputs"])
    assert "notebooks will run on:" in text


def test_lecture_runs_renders_figures_and_the_explorer_redraws(browser):
    open_notebook(browser, "notebooks/01_convolution.ipynb")
    assert browser.execute_script(DIRTY) is False, "opening a lecture marks it modified"
    found = run_all(browser)
    assert not errors(found), errors(found)
    assert images(found) >= 3, "the lecture's figures did not render"
    rendered = browser.execute_script("return document.querySelectorAll('.jp-OutputArea-output img').length")
    assert rendered >= 3, "figures are in the model but not on the page"

    widget_img = ".jupyter-widgets-output-area img, .widget-output img"
    find_handle = APP + """
        const handles = Array.from(w.node.querySelectorAll('.widget-slider .noUi-handle'))
            .filter(h => h.getBoundingClientRect().width > 0);
        if (!handles.length) return null;
        handles[0].scrollIntoView({block: 'center'});
        return handles[0];"""
    handle = wait_for(lambda: browser.execute_script(find_handle), 60, "a visible slider of the explorer")
    image_src = APP + f"const i = w.node.querySelector({widget_img!r}); return i ? i.src : null;"
    before = wait_for(lambda: browser.execute_script(image_src), 60, "the explorer's figure")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(browser).move_to_element(handle).click().send_keys(Keys.ARROW_RIGHT).perform()
    wait_for(lambda: browser.execute_script(image_src) not in (None, before), 60,
             "the explorer's figure to redraw after the slider moved")


def test_wrong_solution_shows_the_teaching_message_and_validate_reports_it(browser):
    path = "mywork/01_convolution/01_convolution.ipynb"
    open_notebook(browser, path)
    found = cells(browser)
    index = next(i for i, c in enumerate(found) if c["source"].lstrip().startswith("def conv_output_size"))
    wrong = found[index]["source"].replace(
        "raise NotImplementedError()", "return (size + padding - dilation * (kernel - 1) - 1) // stride + 1")
    assert wrong != found[index]["source"], "the student notebook lost its stub"
    browser.execute_script(APP + f"""
        w.content.model.cells.get({index}).sharedModel.setSource({wrong!r});
        w.content.activeCellIndex = {index};""")
    # run the set-up cells above, then the solution and its test cell
    for i in [*range(index), index, index + 1]:
        if found[i]["type"] != "code":
            continue
        browser.execute_script(APP + f"w.content.activeCellIndex = {i}; app.commands.execute('notebook:run-cell');")
        wait_for(lambda i=i: browser.execute_script(APP + f"return w.content.model.cells.get({i}).executionCount;")
                 is not None and browser.execute_script(KERNEL_STATUS) == "idle", 120, f"cell {i} to run")
    test_out = cells(browser)[index + 1]["outputs"]
    assert [o["output_type"] for o in test_out if o["output_type"] == "error"] == ["error"], test_out
    shown = browser.execute_script(APP + f"return w.content.widgets[{index + 1}].outputArea.node.innerText;")
    first_lines = "\n".join(line for line in shown.splitlines() if line.strip())
    first_lines = "\n".join(first_lines.splitlines()[:3])
    assert "padding" in first_lines, f"the teaching message is not the first thing shown: {shown[:800]}"
    assert "cnnlab/checks.py" not in shown, "the learner sees the helper library's frames"

    browser.execute_script(APP + "app.commands.execute('docmanager:save');")
    wait_for(lambda: browser.execute_script(DIRTY) is False, 30, "the notebook to save")
    validate = browser.execute_script(APP + """
        const label = Array.from(w.node.querySelectorAll('.jp-Toolbar *'))
            .find(e => e.children.length === 0 && e.textContent.trim() === 'Validate');
        return label ? (label.closest('button') || label) : null;""")
    assert validate is not None, "the notebook toolbar has no Validate button (nbgrader's extension)"
    validate.click()
    dialog = wait_for(lambda: browser.execute_script(
        "const d = document.querySelector('.jp-Dialog-content'); return d && !/Validating/.test(d.innerText) ? d.innerText : null;"),
        RUN_TIMEOUT, "the Validate dialog")
    assert "failed" in dialog.lower() or "error" in dialog.lower(), dialog
    assert "conv_output_size" in dialog, dialog
    browser.execute_script("document.querySelector('.jp-Dialog-content button.jp-mod-accept, .jp-Dialog-content button').click();")


def heading_in_view(browser, anchor: str) -> bool:
    """Whether the current notebook shows the heading with this anchor inside its viewport."""
    return browser.execute_script(APP + f"""
        const h = w.node.querySelector('[data-jupyter-id="{anchor}"], [id="{anchor}"]');
        if (!h) return false;
        const r = h.getBoundingClientRect(), box = w.content.node.getBoundingClientRect();
        return r.top >= box.top - 2 && r.top < box.bottom;""")


def test_exercise_link_lands_on_the_lecture_section(browser):
    """A learner reads the lecture, then works on the exercises: their links go back to the right section."""
    open_notebook(browser, "notebooks/01_convolution.ipynb")
    open_notebook(browser, "mywork/01_convolution/01_convolution.ipynb")
    href = browser.execute_script(
        APP + "const a = Array.from(w.node.querySelectorAll('.jp-RenderedMarkdown a'))"
        ".find(a => /notebooks\\/01_convolution\\.ipynb(\\?[^#]*)?#heading=/.test(a.getAttribute('href'))); "
        "if (!a) return null; a.scrollIntoView({block: 'center'}); a.click(); return a.getAttribute('href');")
    assert href, "the exercise notebook has no '#heading=' link into the lecture"
    anchor = href.split("#heading=", 1)[1]
    wait_for(lambda: browser.execute_script(CURRENT_PATH) == "notebooks/01_convolution.ipynb", 60, "the lecture")
    wait_for(lambda: heading_in_view(browser, anchor), 60, f"the lecture to scroll to {anchor}")


def test_links_inside_a_lecture_scroll_to_their_section(browser):
    open_notebook(browser, "notebooks/01_convolution.ipynb")
    anchor = browser.execute_script(
        APP + "const a = Array.from(w.node.querySelectorAll('.jp-RenderedMarkdown a:not(.jp-InternalAnchorLink)'))"
        ".filter(a => (a.getAttribute('href') || '').startsWith('#')).pop(); "
        "if (!a) return null; a.scrollIntoView({block: 'center'}); a.click(); return a.getAttribute('href').slice(1);")
    assert anchor, "the lecture has no in-document links"
    wait_for(lambda: heading_in_view(browser, anchor), 60, f"the lecture to scroll to #{anchor}")


def test_assignment_and_course_lists_show_no_errors(browser):
    for command, name in (("nbgrader:open-assignment-list", "Assignments"), ("nbgrader:open-course-list", "Courses")):
        browser.execute_script(f"window.jupyterapp.commands.execute({command!r});")
        wait_for(lambda name=name: browser.execute_script(
            APP + "return w && w.title && w.title.label;") == name, 60, f"the {name} panel")
        text = wait_for(lambda: browser.execute_script(APP + "return w.node.innerText;"), 30, f"the {name} panel text")
        wait_for(lambda: "loading" not in browser.execute_script(APP + "return w.node.innerText;").lower(), 60,
                 f"the {name} panel to load")
        text = browser.execute_script(APP + "return w.node.innerText;")
        assert "does not exist" not in text and "error" not in text.lower(), f"{name}: {text[:500]}"
