"""The lock (requirements.txt) installs on Linux, macOS and Windows and pins the same course.

The markers are evaluated for one typical machine of each platform: Linux gets the CUDA
build of torch (with its NVIDIA libraries and triton), macOS and Windows get the plain
torch wheel from the same pin and none of the CUDA packages.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCK_PYTHON = "3.11.5"  # the oldest Python the lock is compiled for (Makefile, target lock)


def _env(sys_platform: str, platform_system: str, machine: str, os_name: str) -> dict[str, str]:
    return {"sys_platform": sys_platform, "platform_system": platform_system, "os_name": os_name,
            "platform_machine": machine, "python_version": "3.11", "python_full_version": "3.11.7",
            "implementation_name": "cpython", "platform_python_implementation": "CPython"}


PLATFORMS = {
    "linux": _env("linux", "Linux", "x86_64", "posix"),
    "linux-arm": _env("linux", "Linux", "aarch64", "posix"),
    "macos": _env("darwin", "Darwin", "arm64", "posix"),
    "windows": _env("win32", "Windows", "AMD64", "nt"),
}
CUDA_ONLY = re.compile(r"^(nvidia-|cuda-|triton$)")


def lock_lines() -> list[str]:
    return [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def resolved(platform: str) -> dict[str, str]:
    """name -> exact version of every pin whose marker holds on ``platform``."""
    pins: dict[str, str] = {}
    for line in lock_lines():
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate(PLATFORMS[platform]):
            continue
        (spec,) = req.specifier
        assert spec.operator == "==", f"not an exact pin: {line}"
        name = canonicalize_name(req.name)
        assert name not in pins, f"{name} pinned twice on {platform}"
        pins[name] = spec.version
    return pins


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_every_platform_gets_the_same_torch(platform):
    pins = resolved(platform)
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    direct = [canonicalize_name(Requirement(line).name)
              for line in (REPO / "requirements.in").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    missing = [name for name in direct if name not in pins]
    assert not missing, f"requirements.in names packages the lock lacks on {platform}: {missing}"


def test_cuda_packages_only_on_linux():
    linux, macos, windows = resolved("linux"), resolved("macos"), resolved("windows")
    assert {"triton", "nvidia-cudnn-cu13", "nvidia-cublas"} <= set(linux)
    for name, pins in (("macos", macos), ("windows", windows)):
        cuda = sorted(p for p in pins if CUDA_ONLY.match(p))
        assert not cuda, f"{name} would install CUDA packages: {cuda}"
    assert "pywinpty" in windows and "pywinpty" not in linux
    assert "appnope" in macos and "appnope" not in linux
    assert set(macos) - set(linux) <= {"appnope"}


def test_the_markers_parse_and_mention_only_known_platforms():
    for line in lock_lines():
        req = Requirement(line)
        if req.marker is not None:
            Marker(str(req.marker))  # round-trips
            assert not re.search(r"sys_platform == '(?!linux|darwin|win32|emscripten)", str(req.marker)), line


def test_requires_python_matches_the_lock():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    allowed = SpecifierSet(meta["requires-python"])
    assert LOCK_PYTHON in allowed and "3.11.4" not in allowed and "3.10.12" not in allowed
    assert f"--python-version {LOCK_PYTHON}" in (REPO / "Makefile").read_text()
