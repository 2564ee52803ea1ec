"""`make lab`: JupyterLab serves the course with the nbgrader extensions (as root too)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cnncourse.paths import course_root

REPO = course_root()

TOKEN = "course-test-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.read().decode()


def test_lab_serves_course_and_nbgrader(tmp_path):
    port = _free_port()
    jupyter = Path(sys.executable).parent / "jupyter"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path), "PATH": f"{jupyter.parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [str(jupyter), "lab", "--allow-root", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={REPO}"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if _get(f"{base}/api/status")[0] == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("JupyterLab did not start within 60 s")
        status, page = _get(f"{base}/lab")
        assert status == 200 and "@jupyter/nbgrader" in page, "the nbgrader lab extension is not enabled"
        _, listing = _get(f"{base}/api/contents/notebooks")
        assert "01_convolution.ipynb" in [item["name"] for item in json.loads(listing)["content"]]
        status, formgrader = _get(f"{base}/formgrader")
        assert status == 200 and "formgrader" in formgrader.lower()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
