"""The bubblewrap command line of a sandbox: namespaces, the read-only system, the Python roots, env.

Only what the kernel needs is mounted: ``/usr`` and the root-level system folders, a
few files of ``/etc``, the Python installation (the environment's prefix and its base
installation), the ``cnnlab`` package and the in-kernel folder of the grader. The
course root is never mounted. A prefix reached through a symbolic link (``.venv`` as a
link, a conda environment elsewhere) is mounted both at its real location and at the
path the interpreter was started from, so the interpreter, its ``pyvenv.cfg`` and any
``.pth`` path resolve inside the sandbox as they do outside.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SANDBOX_HOME = "/home/student"
INKERNEL_DIR = Path(__file__).resolve().parent.parent / "inkernel"
SYSTEM_DIRS = ("bin", "sbin", "lib", "lib64", "lib32", "libx32")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "hosts", "mime.types")


@dataclass(frozen=True)
class Bind:
    """A read-only bind mount: host folder ``src`` seen at ``dest`` in the sandbox."""

    src: str
    dest: str


def bwrap_path() -> str | None:
    """The bubblewrap executable, or None when it is not installed."""
    return shutil.which("bwrap") or (("/usr/bin/bwrap") if Path("/usr/bin/bwrap").exists() else None)


def package_dir(name: str) -> str | None:
    """Where ``import name`` finds a package, without importing it (editable installs included)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def python_binds(prefix: str, base_prefix: str, executable: str, packages: list[str]) -> list[Bind]:
    """The folders the kernel's Python needs, each at its real path and at the path it is used from.

    Nested folders are dropped when their parent's bind already shows them at the same place.
    """
    wanted = [prefix, base_prefix, *packages]
    real_exe = os.path.realpath(executable)
    wanted.append(os.path.dirname(real_exe))
    wanted.append(os.path.dirname(os.path.abspath(executable)))
    binds: set[Bind] = set()
    for path in wanted:
        real, seen = os.path.realpath(path), os.path.abspath(path)
        binds.add(Bind(real, real))
        if seen != real:
            binds.add(Bind(real, seen))
    kept: list[Bind] = []
    for bind in sorted(binds, key=lambda b: (len(b.dest), b.dest)):
        if not any(_covered(bind, k) for k in kept):
            kept.append(bind)
    return [b for b in kept if not (b.dest == "/usr" or b.dest.startswith("/usr/"))]


def _covered(bind: Bind, by: Bind) -> bool:
    """Whether ``by`` already shows ``bind.src`` at ``bind.dest``."""
    if bind.dest != by.dest and not bind.dest.startswith(by.dest.rstrip("/") + "/"):
        return False
    rel = os.path.relpath(bind.dest, by.dest)
    return os.path.realpath(os.path.join(by.src, rel)) == os.path.realpath(bind.src)


def current_python_binds() -> list[Bind]:
    """:func:`python_binds` for this interpreter, the ``cnnlab`` package and the in-kernel folder."""
    packages = [p for p in (package_dir("cnnlab"), str(INKERNEL_DIR)) if p]
    return python_binds(sys.prefix, sys.base_prefix, sys.executable, packages)


def interpreter() -> str:
    """The interpreter to start in the sandbox: this one, by its normalised path (``..`` resolved,
    links kept, so a venv reached through a link stays a venv); that path is bound."""
    return os.path.abspath(sys.executable)


def trusted_prefixes(binds: list[Bind]) -> list[str]:
    """Paths of trusted code inside the sandbox (both names of every bound folder)."""
    return sorted({b.dest for b in binds} | {b.src for b in binds})


def namespace_args(uid: int, gid: int, keep_setuid: bool = True) -> list[str]:
    """New namespaces; as root, only the capabilities needed to drop to ``uid`` (or none)."""
    args = ["--die-with-parent", "--new-session", "--clearenv", "--unshare-ipc", "--unshare-pid",
            "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    if os.geteuid() == 0:
        keep = ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"] if keep_setuid else []
        return args + ["--cap-drop", "ALL", *keep]
    return args + ["--unshare-user", "--disable-userns", "--uid", str(uid), "--gid", str(gid)]


def system_args(tmpfs_bytes: int) -> list[str]:
    """The read-only system, /proc, /dev and private size-limited /tmp, /dev/shm and home."""
    args = ["--ro-bind", "/usr", "/usr", "--perms", "0755", "--dir", "/etc"]
    for name in SYSTEM_DIRS:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    for etc in ETC_FILES:
        if (Path("/etc") / etc).exists():
            args += ["--ro-bind", f"/etc/{etc}", f"/etc/{etc}"]
    size = str(tmpfs_bytes)
    return args + ["--proc", "/proc", "--dev", "/dev",
                   "--perms", "1777", "--size", size, "--tmpfs", "/dev/shm",
                   "--perms", "1777", "--size", size, "--tmpfs", "/tmp",
                   "--perms", "0755", "--dir", "/home",
                   "--perms", "0777", "--size", size, "--tmpfs", SANDBOX_HOME,
                   "--perms", "0755", "--dir", "/run"]


def gpu_args(dev: Path = Path("/dev")) -> list[str]:
    """Device binds for ``--gpu``: the NVIDIA device nodes, and /sys read-only for the driver.

    The driver's libraries live under /usr, which every sandbox sees; the CUDA runtime comes
    with torch's wheels inside the environment, which is bound as well.
    """
    nodes = sorted(p for p in dev.glob("nvidia*") if not p.is_dir())
    nodes += sorted(dev.glob("nvidia-caps/*"))
    args: list[str] = []
    for node in nodes:
        args += ["--dev-bind", str(node), str(node)]
    return args + ["--ro-bind-try", "/sys", "/sys"] if nodes else []


def bind_args(binds: list[Bind]) -> list[str]:
    """Read-only binds, after the private /tmp and home (a venv under /tmp stays visible)."""
    made = {"/tmp", "/dev", "/dev/shm", "/home", SANDBOX_HOME, "/run", "/proc", "/etc"}
    args: list[str] = []
    for bind in binds:
        parts = Path(bind.dest).parent.parts
        for i in range(2, len(parts) + 1):
            parent = str(Path(*parts[:i]))
            if parent not in made and not (parent == "/usr" or parent.startswith("/usr/")):
                made.add(parent)
                args += ["--perms", "0755", "--dir", parent]
        args += ["--ro-bind", bind.src, bind.dest]
    return args


def kernel_env() -> dict[str, str]:
    """The kernel's whole environment (``--clearenv`` drops everything else)."""
    env = {
        "HOME": SANDBOX_HOME, "USER": "student", "LOGNAME": "student", "LANG": "C.UTF-8",
        "PATH": f"{os.path.dirname(interpreter())}:/usr/local/bin:/usr/bin:/bin",
        "TMPDIR": "/tmp", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1", "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "MPLCONFIGDIR": "/tmp/matplotlib", "IPYTHONDIR": "/tmp/ipython", "JUPYTER_CONFIG_DIR": "/tmp/jupyter",
        "JUPYTER_DATA_DIR": "/tmp/jupyter-data", "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
        "JUPYTER_PLATFORM_DIRS": "1", "NBGRADER_EXECUTION": "autograde", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "TORCH_HOME": "/tmp/torch", "XDG_CACHE_HOME": "/tmp/cache",
    }
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def env_args(env: dict[str, str]) -> list[str]:
    args: list[str] = []
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args


def smoke_test() -> str:
    """Empty when bwrap can build our kind of sandbox here, else its one-line complaint."""
    bwrap = bwrap_path()
    if not bwrap:
        return "bwrap is not installed"
    args = [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev"]
    for name in ("bin", "lib", "lib64"):
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    if os.geteuid() != 0:
        args += ["--unshare-user", "--disable-userns"]
    args += ["/usr/bin/env", "true"]
    return _complaint(args)


def import_check(modules: list[str], limits_tmpfs: int = 64 * 2**20, timeout: float = 180) -> str:
    """Empty when the sandboxed interpreter can import ipykernel, cnnlab and ``modules``; else why not.

    Runs the in-kernel probe script in a sandbox built like the kernel's: a broken or
    mismatched environment is an instructor error found before anyone is graded.
    """
    bwrap = bwrap_path()
    if not bwrap:
        return "bwrap is not installed"
    args = [bwrap, *namespace_args(os.getuid(), os.getgid(), keep_setuid=False),
            *system_args(limits_tmpfs), *bind_args(current_python_binds()), *env_args(kernel_env()),
            "--chdir", "/", "--remount-ro", "/",
            interpreter(), str(INKERNEL_DIR / "probe.py"), "ipykernel", "cnnlab.checks", *modules]
    return _complaint(args, timeout)


def _complaint(args: list[str], timeout: float = 60) -> str:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode != 0:
        lines = (proc.stdout + "\n" + proc.stderr).strip().splitlines()
        return (lines or [f"exit code {proc.returncode}"])[-1][:300]
    return ""
