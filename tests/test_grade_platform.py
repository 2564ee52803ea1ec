"""The grader's platform switches: Linux only, and --gpu that exposes NVIDIA devices without RLIMIT_AS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnngrade import cli
from cnngrade.sandbox import Limits, bwrap

BOOT = Path(bwrap.INKERNEL_DIR) / "boot.py"


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_other_platforms_get_one_line_and_exit_2(monkeypatch, capsys, platform):
    monkeypatch.setattr(sys, "platform", platform)
    assert cli.main(["01_convolution"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs Linux" in err and "make grade" in err


def test_gpu_without_nvidia_devices_is_an_instructor_error(monkeypatch, capsys):
    monkeypatch.setattr(bwrap, "gpu_args", lambda dev=Path("/dev"): [])
    assert cli.main(["01_convolution", "--gpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--gpu" in err and "/dev/nvidia" in err


def test_gpu_args_bind_every_nvidia_node_and_nothing_else(tmp_path):
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "null", "dri"):
        (tmp_path / name).touch()
    (tmp_path / "nvidia-caps").mkdir()
    (tmp_path / "nvidia-caps" / "nvidia-cap1").touch()
    args = bwrap.gpu_args(tmp_path)
    bound = [args[i + 1] for i, a in enumerate(args) if a == "--dev-bind"]
    assert sorted(Path(p).name for p in bound) == ["nvidia-cap1", "nvidia-uvm", "nvidia0", "nvidia1", "nvidiactl"]
    assert args[-3:] == ["--ro-bind-try", "/sys", "/sys"]
    assert bwrap.gpu_args(tmp_path / "nvidia-caps" / "none") == []


def _limits_in_child(gpu: bool) -> dict[str, int]:
    """The rlimits boot.set_limits leaves in a fresh process (so this test process keeps its own)."""
    limits = {**Limits(gpu=gpu).__dict__, "memory_bytes": 3 * 2**30}
    code = (f"import importlib.util, json, resource\n"
            f"spec = importlib.util.spec_from_file_location('boot', {str(BOOT)!r})\n"
            f"boot = importlib.util.module_from_spec(spec); spec.loader.exec_module(boot)\n"
            f"boot.set_limits({limits!r})\n"
            f"print(json.dumps({{'as': resource.getrlimit(resource.RLIMIT_AS)[0], "
            f"'nofile': resource.getrlimit(resource.RLIMIT_NOFILE)[0]}}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    return json.loads(out.stdout)


def test_gpu_lifts_only_the_address_space_limit():
    import resource

    plain, gpu = _limits_in_child(False), _limits_in_child(True)
    assert plain["as"] == 3 * 2**30
    assert gpu["as"] == resource.getrlimit(resource.RLIMIT_AS)[0]  # inherited: not set by the grader
    assert plain["nofile"] == gpu["nofile"] == Limits().nofile
