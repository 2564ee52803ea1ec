"""The pre-commit hook turns an executed notebook back into exactly the stored form."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".pre-commit-config.yaml"


def _hook_command(hook_id: str) -> list[str]:
    text = CONFIG.read_text()
    block = text.split(f"- id: {hook_id}", 1)[1]
    entry = re.search(r"^\s*entry:\s*(.+)$", block, re.M)[1]
    cmd = shlex.split(entry)
    cmd[0] = str(Path(sys.executable).parent / Path(cmd[0]).name)
    return cmd


def test_nbstripout_hook_restores_the_stored_notebook(tmp_path):
    stored = ROOT / "notebooks" / "00_start_here.ipynb"
    nb = json.loads(stored.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            cell["execution_count"] = i
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["run output\n"]}]
            cell["metadata"]["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    executed = tmp_path / stored.name
    executed.write_text(json.dumps(nb, indent=1))
    subprocess.run([*_hook_command("nbstripout"), str(executed)], check=True)
    assert executed.read_text() == stored.read_text(), "the hook's output differs from how notebooks are stored"


def test_ruff_hook_is_the_lint_of_make_test():
    assert _hook_command("ruff")[1:3] == ["check", "--force-exclude"]
