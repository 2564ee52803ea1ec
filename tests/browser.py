"""Real-browser helpers for the tests: a JupyterLab server and headless Chromium (Debian's).

Browser builds cannot be downloaded here, so the tests drive the system's ``chromium``
through its ``chromedriver`` with selenium. JupyterLab runs with
``--LabApp.expose_app_in_browser`` so a test can wait on the application's own state
(kernel status, cell outputs, the dirty flag) instead of sleeping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
TOKEN = "course-browser-test"


def require_browser() -> None:
    """Fail (not skip) with a one-line reason when the browser is missing: CI installs it."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    if missing:
        pytest.fail(f"headless Chromium is required for this test (apt-get install chromium chromium-driver); "
                    f"missing: {', '.join(missing)}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - the page may be between states
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}" + (f" ({last_error})" if last_error else ""))


def chrome(width: int = 1400, height: int = 1000):
    """A headless Chromium driven by selenium, offline (no driver or browser downloads)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_browser()
    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@dataclass
class LabServer:
    """A JupyterLab server on 127.0.0.1 serving ``root``."""

    root: Path
    port: int
    process: subprocess.Popen

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={TOKEN}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_lab(root: Path, runtime_dir: Path, log: Path, extra_env: dict[str, str] | None = None) -> LabServer:
    """Start JupyterLab on ``root`` and wait until its API answers."""
    port = free_port()
    bindir = Path(sys.executable).parent
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime_dir), "OMP_NUM_THREADS": "1",
           "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", **(extra_env or {})}
    process = subprocess.Popen(
        [str(bindir / "jupyter"), "lab", "--allow-root", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True"],
        cwd=root, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    server = LabServer(root, port, process)

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"JupyterLab exited: {log.read_text()[-2000:]}")
        with urllib.request.urlopen(server.url("api/status"), timeout=5) as resp:
            return resp.status == 200

    try:
        wait_for(answers, 120, "JupyterLab to answer")
    except BaseException:
        server.stop()
        raise
    return server
