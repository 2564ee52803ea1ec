"""Entry point of the sandboxed kernel: limits, privilege drop, the guard, then ipykernel.

Run by the sandbox as a script (``python .../cnngrade/inkernel/boot.py CONFIG.json``),
never imported on the host's behalf. Until ipykernel starts it uses the standard library
only, so a broken or hostile site cannot run before the limits are in place. The guard
(:mod:`guard`, in this folder) is loaded from its file under the name ``_cnnlab_guard``,
the name the grader's requests use.

CONFIG.json (written by :mod:`cnngrade.sandbox.client`) holds: ``limits``, ``uid`` /
``gid`` (dropped to when started as root), ``cwd``, ``connection_file``, ``preload``
(modules imported before the guard's snapshot), ``trusted_prefixes`` and ``debug``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path

SUBMISSION_MOUNT = "/run/submission"
HERE = Path(__file__).resolve().parent


def set_limits(limits: dict) -> None:
    """Resource limits of this process and everything it starts (CPU time gets a hard kill 5 s later)."""
    import resource

    pairs = {
        resource.RLIMIT_CPU: limits["cpu_seconds"],
        resource.RLIMIT_FSIZE: limits["fsize_bytes"],
        resource.RLIMIT_NOFILE: limits["nofile"],
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NPROC: limits["nproc"],
    }
    if not limits.get("gpu"):  # CUDA cannot start under an address-space limit
        pairs[resource.RLIMIT_AS] = limits["memory_bytes"]
    for which, value in pairs.items():
        soft, hard = resource.getrlimit(which)
        value = int(value)
        hard_new = value if hard == resource.RLIM_INFINITY or hard > value else hard
        if which == resource.RLIMIT_CPU:
            # SIGXCPU at the soft limit, SIGKILL a few seconds later if it is ignored
            hard_new = value + 5 if hard == resource.RLIM_INFINITY or hard > value + 5 else hard
        resource.setrlimit(which, (min(value, hard_new), hard_new))


def drop_privileges(uid: int | None, gid: int) -> None:
    """As root (privileged bwrap): become the sandbox's own unprivileged uid, for good."""
    if os.getuid() != 0 or uid is None:
        return
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise SystemExit("could not drop privileges")


def copy_submission(work: Path, src: Path = Path(SUBMISSION_MOUNT)) -> None:
    """The student's files (read-only mount) copied into the writable working directory."""
    work.mkdir(parents=True, exist_ok=True)
    if not src.is_dir():
        return
    for path in sorted(src.rglob("*")):
        if path.is_symlink():
            continue
        dest = work / path.relative_to(src)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)


def load_guard_module():
    """This folder's guard.py, registered as ``_cnnlab_guard`` (the module the test cells call)."""
    import builtins

    spec = importlib.util.spec_from_file_location("_cnnlab_guard", HERE / "guard.py")
    module = importlib.util.module_from_spec(spec)
    module.__builtins__ = dict(vars(builtins))  # its own copy: rebinding a builtin later does not reach the guard
    sys.modules["_cnnlab_guard"] = module
    spec.loader.exec_module(module)
    return module


def _cap_streams(shell, guard, cap: int) -> None:
    """Drop stream output beyond ``cap`` characters per execution, in the kernel itself.

    An honest notebook that prints megabytes then never sends the grader a message larger
    than it reads; the grader keeps its own budget and message-size limit in any case.
    """
    used = {"n": 0}

    notes: list[dict] = []

    def reset(*_args) -> None:
        used["n"] = 0
        for note in notes:
            note["done"] = note.get("stderr", False)

    for stream in (sys.stdout, sys.stderr):
        raw = stream.write
        if stream is sys.stdout:
            guard._raw_write = raw
        noted = {"done": stream is not sys.stdout, "stderr": stream is not sys.stdout}  # note on stdout only
        notes.append(noted)

        def write(text, _raw=raw, _noted=noted):
            if not isinstance(text, str):
                return _raw(text)
            room = cap - used["n"]
            if room <= 0:
                if not _noted["done"]:
                    _noted["done"] = True
                    _raw("\n[output truncated in the kernel]\n")
                return len(text)
            used["n"] += min(len(text), room)
            return _raw(text[:room]) if len(text) > room else _raw(text)

        stream.write = write
    shell.events.register("pre_execute", reset)



def preload(names: list[str]) -> None:
    """Import the modules the source notebook imports, so the guard's snapshot covers them."""
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - a module the source names but that does not import
            pass
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            torch.set_num_threads(1)
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass


def kernel_main(config_path: str) -> None:
    """Limits, privilege drop, the submission copied in, the guard installed, then the kernel."""
    cfg = json.loads(Path(config_path).read_text())
    set_limits(cfg["limits"])
    drop_privileges(cfg.get("uid"), int(cfg["gid"]))
    work = Path(cfg["cwd"])
    copy_submission(work)
    os.chdir(work)
    guard_module = load_guard_module()
    guard_module.set_trusted_prefixes(cfg.get("trusted_prefixes", ()))
    guard = guard_module.Guard()

    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(["-f", cfg["connection_file"], "--HistoryManager.hist_file=:memory:",
                    "--IPKernelApp.log_level=CRITICAL"])
    debug = (lambda msg: print(f"[sandbox {time.monotonic():.2f}] {msg}", file=sys.__stderr__, flush=True)
             ) if cfg.get("debug") else (lambda msg: None)
    debug("kernel initialized")
    _cap_streams(app.shell, guard, int(cfg["limits"]["cell_output_bytes"]))
    preload(cfg.get("preload", []))
    debug("preloaded")
    guard.snapshot(shell=app.shell, kernel=app.kernel)
    guard_module.arm(guard, guard_module)
    guard_module.install(guard, guard_module)
    debug("snapshot taken, guard armed")
    app.start()


if __name__ == "__main__":
    # the script's own folder must not shadow anything the student imports
    if sys.path and Path(sys.path[0] or ".").resolve() == HERE:
        sys.path.pop(0)
    kernel_main(sys.argv[1])
