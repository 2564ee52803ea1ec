"""Raw memory is refused to notebook code, in one sandboxed kernel each: ctypes reads and ``/proc/self/mem``.

Code that reads the process's memory could find the guard's key and forge its answers, so
the guard refuses notebook code the ctypes events that read or hand out raw memory and
the opening (or mapping) of a path that is the process's memory. Each refusal is
remembered: every later test cell scores 0. Libraries that use ctypes for themselves,
called from the notebook, keep working and cost nothing.
"""

from __future__ import annotations

import pytest

from cnngrade.execute import CellRunner
from cnngrade.sandbox import SandboxSettings, bwrap

pytestmark = pytest.mark.skipif(bwrap.bwrap_path() is None, reason="bubblewrap (bwrap) is not installed")

ROUTES = {  # route -> notebook code that reaches raw memory by it
    "string_at": "ctypes.string_at(id(_secret), 16)",
    "wstring_at": "ctypes.wstring_at(id(_secret), 4)",
    "from_address": "ctypes.c_char.from_address(id(_secret))",
    "from_buffer": "ctypes.c_char.from_buffer(bytearray(4))",
    "addressof": "ctypes.addressof(ctypes.c_int(3))",
    "dlopen": "ctypes.CDLL(None)",
    "dlsym": "ctypes.pythonapi.Py_IncRef",
    "open": "open('/proc/self/mem', 'rb')",
    "os.open": "os.open(f'/proc/{os.getpid()}/mem', os.O_RDONLY)",
    "pathlib": "pathlib.Path('/proc/self/task/1/mem').read_bytes()",
    "dotdot": "open('/tmp/../proc/self/./mem', 'rb')",
    "symlink": "os.path.lexists('/tmp/_m') or os.symlink('/proc/self/mem', '/tmp/_m'); open('/tmp/_m', 'rb')",
    "dir_fd": "os.open('mem', os.O_RDONLY, dir_fd=os.open('/proc/self', os.O_RDONLY))",
    "map_files": "open('/proc/self/map_files/1000-2000', 'rb')",
    "pathlike": "open(type('P', (), {'__fspath__': lambda self: '/proc/self/mem'})(), 'rb')",
    "mmap": "mmap.mmap(os.open('/proc/self/mem', os.O_RDONLY), 4096)",
}

ATTEMPT = '''
import ctypes, mmap, os, pathlib
_secret = b"not for the notebook"
_refused = {}
for _name, _src in ROUTES.items():
    try:
        exec(_src)
        _refused[_name] = "allowed"
    except Exception as exc:
        _refused[_name] = type(exc).__name__
print(sorted(k for k, v in _refused.items() if v != "TestStateError"))
'''

LIBRARIES = '''
import ctypes, numpy as np, torch
_a = np.arange(4.0)
_view = np.ctypeslib.as_array(np.ctypeslib.as_ctypes(_a))
_ptr = _a.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
_t = torch.from_numpy(_view).sum()
with open("/proc/self/status") as _fh:
    _status = _fh.read()
print(float(_t), _ptr[1])
'''


def _kernel(tmp_path_factory) -> CellRunner:
    work = tmp_path_factory.mktemp("guard-memory")
    files = work / "files"
    files.mkdir()
    settings = SandboxSettings.from_dict({})
    settings.preload = ["torch", "numpy", "cnnlab.checks"]
    run = CellRunner(settings, work, files, cell_timeout=60, deadline=0)
    run.start()
    return run


@pytest.fixture()
def runner(tmp_path_factory):
    run = _kernel(tmp_path_factory)
    yield run
    run.stop()


def _text(outputs: list[dict]) -> str:
    return "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")


def _graded(runner: CellRunner, source: str) -> tuple[list[str], list[str]]:
    """(the error names of the test cell's outputs, the events it caused)."""
    before = len(runner.events)
    outputs, _ = runner.run(source, test=True, label="t")
    return [o["ename"] for o in outputs if o["output_type"] == "error"], [e["text"] for e in runner.events[before:]]


def test_libraries_keep_their_ctypes(runner):
    outputs, _ = runner.run(LIBRARIES, test=False, label="libraries")
    assert not [o for o in outputs if o["output_type"] == "error"], outputs
    assert _text(outputs).split() == ["6.0", "1.0"], outputs
    assert _graded(runner, "assert 2 * 2 == 4\nprint('ok')\n") == ([], [])


def test_every_route_to_raw_memory_is_refused_and_costs_later_tests(runner):
    runner.run(f"ROUTES = {ROUTES!r}\n", test=False, label="routes")
    outputs, _ = runner.run(ATTEMPT, test=False, label="attempt")
    assert _text(outputs).strip() == "[]", outputs
    errors, events = _graded(runner, "assert 2 * 2 == 4\n")
    assert "GradingError" in errors, (errors, events)
    assert any("raw memory (ctypes.string_at)" in e for e in events), events


def test_a_refusal_inside_a_test_costs_that_test(runner):
    runner.run("import ctypes\ndef peek(x):\n    ctypes.string_at(id(x), 8)\n    return 2 * x\n"
               "def careful(x):\n    try:\n        return peek(x)\n    except Exception:\n        return 2 * x\n",
               test=False, label="setup")
    errors, events = _graded(runner, "assert careful(2) == 4\n")
    assert "GradingError" in errors, (errors, events)
    assert any("raw memory" in e for e in events), events
