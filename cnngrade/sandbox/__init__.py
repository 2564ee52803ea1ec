"""The host side of the sandbox: limits, the bubblewrap command line, cgroups, the kernel client.

The code that runs inside the sandboxed kernel lives apart, in :mod:`cnngrade.inkernel`.
"""

from cnngrade.sandbox.bwrap import bwrap_path, import_check, smoke_test
from cnngrade.sandbox.client import ExecResult, KernelStartError, SandboxKernel, kill_group
from cnngrade.sandbox.limits import GiB, Limits, MiB, SandboxSettings

__all__ = ["ExecResult", "GiB", "KernelStartError", "Limits", "MiB", "SandboxKernel", "SandboxSettings",
           "bwrap_path", "import_check", "kill_group", "smoke_test"]
