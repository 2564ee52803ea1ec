"""Sandboxed Jupyter kernels for instructor autograding (bubblewrap), and the in-kernel guard.

Only the kernel that executes student code runs in the sandbox; everything else of
the grading (nbgrader, the gradebook, the feedback) runs outside it, as trusted code.

The sandbox (``bwrap``) gives the kernel:

- a read-only view of the system it needs and nothing else: ``/usr``, the Python
  installation, the virtual environment and the ``cnnlab`` package. The course root is
  never mounted: no ``source/``, no ``release/``, no gradebook, no ``nbgrader_config.py``,
  no other student;
- a private, size-limited ``/tmp`` and a private home whose working directory holds a
  copy of the student's own submission folder (memory-backed, so a student cannot fill
  the instructor's disk);
- no network (``--unshare-net``), its own PID / IPC / UTS namespaces, death with the
  grading process (``--die-with-parent``);
- limits: address space (``RLIMIT_AS``), CPU time (``RLIMIT_CPU``), process count
  (``RLIMIT_NPROC``, enforced because the kernel runs under an unprivileged uid of its
  own), file size (``RLIMIT_FSIZE``), open files, no core dumps, plus a memory / pids
  cgroup when the machine offers one (caps the whole process tree, forks included);
- a channel to the grader over Unix sockets (ZeroMQ ``ipc`` transport) in a private
  directory: the kernel cannot reach any TCP port of the grader.

When the grader runs as root, ``bwrap`` runs privileged (no user namespace) with only
CAP_SETUID / CAP_SETGID kept; the kernel's first trusted step drops to a dedicated uid
(one per live worker process), so the kernel owns nothing on the host, ``RLIMIT_NPROC`` applies,
and ``no_new_privs`` stops any setuid binary from giving privileges back. Without root,
``bwrap`` runs unprivileged in a user namespace (``--unshare-user --disable-userns``).

The guard (:class:`Guard`, installed in the kernel before any student code) snapshots
the comparison functions of torch / numpy / ``cnnlab.checks``, the builtins, the classes
those modules define and IPython's execution machinery. Before each test cell the
grader asks it to restore the pristine references; a line appended to the test cell
verifies that nothing was re-patched during the test and prints a per-cell nonce, so a
test cell that did not run to its end never counts as passed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

GUARD_MODULE = "_cnnlab_guard"
SANDBOX_HOME = "/home/student"
SUBMISSION_MOUNT = "/run/submission"
IPC_MOUNT = "/run/kernel"
UID_BASE = 2_000_000_000  # + the worker's pid: an unprivileged uid of its own (no passwd entry needed)
GiB = 2**30
MiB = 2**20


@dataclass
class Limits:
    """Resource limits of one sandboxed kernel (and of every process it starts)."""

    memory_bytes: int = 6 * GiB       # RLIMIT_AS per process, and the cgroup's total memory
    cpu_seconds: int = 900            # RLIMIT_CPU (per process)
    nproc: int = 128                  # RLIMIT_NPROC: threads and processes of the sandbox uid
    fsize_bytes: int = 256 * MiB      # RLIMIT_FSIZE: largest file the kernel may write
    nofile: int = 1024                # RLIMIT_NOFILE
    tmpfs_bytes: int = 512 * MiB      # size of each of /tmp, the home and /dev/shm
    cell_output_bytes: int = 1 * MiB  # outputs kept per cell (errors are always kept)
    total_output_bytes: int = 8 * MiB  # outputs kept per notebook
    message_bytes: int = 32 * MiB     # largest single kernel message read (ZMQ_MAXMSGSIZE)


# --------------------------------------------------------------------------------------
# Kernel side: the guard and the entry point (runs inside the sandbox, standard library only
# until the kernel starts).
# --------------------------------------------------------------------------------------

_PROTECTED_EXACT = frozenset({
    "builtins", "math", "operator", "functools", "inspect", "ast", "textwrap", "importlib",
    "types", "numbers", "unittest", "torch", "numpy", "pytest", "_pytest.python_api", GUARD_MODULE,
})
_PROTECTED_PREFIXES = (
    "torch.testing", "torch.nn", "torch.autograd", "torch.utils._python_dispatch", "torch.overrides",
    "torch._tensor", "torch.functional", "torch.random", "torch._C", "torchvision", "numpy.testing",
    "numpy._core", "numpy.core", "numpy.linalg", "numpy.lib", "cnnlab", "sklearn.metrics",
    "unittest.", "IPython.core", "ipykernel", "jupyter_client.session",
)
# module-level containers whose contents count as behaviour (hooks, tolerances, rule tables)
_PROTECTED_CONTAINERS = {
    "torch.nn.modules.module": (
        "_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
        "_global_backward_pre_hooks", "_global_forward_hooks_always_called", "_global_forward_hooks_with_kwargs",
        "_global_parameter_registration_hooks", "_global_module_registration_hooks",
        "_global_buffer_registration_hooks",
    ),
}
_IMMUTABLE_TYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE
_STRICT_CLASSES = frozenset({
    "torch._tensor.Tensor", "torch.nn.parameter.Parameter", "torch.nn.modules.module.Module",
    "torch.utils._python_dispatch.TorchDispatchMode", "torch.overrides.TorchFunctionMode",
    "unittest.case.TestCase",
})
_KEEP_IN_USER_NS = frozenset({"_", "__", "___", "__builtins__", "__name__", "__doc__", "__spec__", "__loader__",
                              "__package__", "In", "Out", "exit", "quit", "get_ipython", "display", "input"})
# builtins that IPython / ipykernel swap in and out around every execution
_SHELL_MANAGED_BUILTINS = frozenset({"input", "raw_input", "exit", "quit", "get_ipython", "display", "__IPYTHON__"})


class TamperingError(AssertionError):
    """Raised in a test cell when graded code changed what the hidden tests rely on."""


def _protected(name: str) -> bool:
    return name in _PROTECTED_EXACT or name.startswith(_PROTECTED_PREFIXES)


def _behaviour(value: object) -> bool:
    """Values whose replacement changes behaviour: callables, classes, descriptors, modules."""
    return callable(value) or isinstance(value, (type(sys), staticmethod, classmethod, property))


class Guard:
    """Pristine references taken at kernel start, restored before and verified after each test."""

    def __init__(self) -> None:
        self.modules: dict[str, object] = {}
        self.module_dicts: list[tuple[object, dict, str]] = []
        self.class_dicts: list[tuple[type, dict, frozenset | None]] = []
        self.containers: list[tuple[object, object, str]] = []
        self.events: list[str] = []
        self.shell = None
        self.kernel = None
        self._stdout = sys.stdout
        self._stderr = sys.stderr
        self._sys = {}
        self._lists: dict[str, list] = {}
        self._hidden: dict[str, object] = {}

    # ---- snapshot ------------------------------------------------------------------
    def snapshot(self, shell=None, kernel=None) -> None:
        import gc
        import threading as _threading

        self.shell, self.kernel = shell, kernel
        self._stdout, self._stderr = sys.stdout, sys.stderr
        seen_classes: set[int] = set()
        for name, mod in list(sys.modules.items()):
            if mod is None or not _protected(name):
                continue
            self.modules[name] = mod
            try:
                namespace = vars(mod)
            except TypeError:
                continue
            snap = {k: v for k, v in list(namespace.items()) if _behaviour(v)
                    and not (name == "builtins" and k in _SHELL_MANAGED_BUILTINS)}
            self.module_dicts.append((mod, snap, name))
            for value in snap.values():
                if isinstance(value, type) and id(value) not in seen_classes:
                    seen_classes.add(id(value))
                    self._snap_class(value, name)
            for attr in _PROTECTED_CONTAINERS.get(name, ()):
                container = namespace.get(attr)
                if isinstance(container, dict):
                    self.containers.append((container, dict(container), f"{name}.{attr}"))
            if name == "cnnlab" or name.startswith("cnnlab."):
                for attr, value in namespace.items():
                    if isinstance(value, (dict, list, set)) and not attr.startswith("__"):
                        self.containers.append((value, _copy_container(value), f"{name}.{attr}"))
        for cls in (type(shell), type(kernel), type(sys.stdout)):
            if cls is not type(None) and id(cls) not in seen_classes:
                for klass in cls.__mro__:
                    if id(klass) not in seen_classes:
                        seen_classes.add(id(klass))
                        self._snap_class(klass, klass.__module__, force=True)
        self._sys = {k: getattr(sys, k) for k in ("excepthook", "displayhook", "breakpointhook", "unraisablehook")
                     if hasattr(sys, k)}
        self._sys["threading.excepthook"] = _threading.excepthook
        self._lists = {"meta_path": list(sys.meta_path), "path_hooks": list(sys.path_hooks),
                       "gc.callbacks": list(gc.callbacks)}
        if shell is not None:
            self._user_ns0 = dict(shell.user_ns)
            self._shell_state = self._read_shell_state()
            self._instance_snap = {id(o): (o, {k: v for k, v in vars(o).items() if _behaviour(v)})
                                   for o in self._instances()}
        sys.addaudithook(self._audit)

    def _snap_class(self, cls: type, modname: str, force: bool = False) -> None:
        if cls.__flags__ & _IMMUTABLE_TYPE:
            return
        if not force and getattr(cls, "__module__", None) != modname:
            return
        try:
            namespace = dict(vars(cls))
        except TypeError:
            return
        snap = {k: v for k, v in namespace.items() if _behaviour(v)}
        strict = force or modname.startswith("cnnlab") or f"{modname}.{cls.__qualname__}" in _STRICT_CLASSES
        # keys added later only matter for the classes tests compare with (``Tensor.__eq__ = ...``)
        self.class_dicts.append((cls, snap, frozenset(namespace) if strict else None))

    def _instances(self) -> list:
        objs = [self.shell, self.kernel]
        for name in ("compile", "displayhook", "display_pub", "input_transformer_manager", "events",
                     "display_formatter"):
            objs.append(getattr(self.shell, name, None))
        objs.append(getattr(self.kernel, "session", None))
        return [o for o in objs if o is not None and hasattr(o, "__dict__")]

    def _read_shell_state(self) -> dict:
        sh = self.shell
        itm = sh.input_transformer_manager
        state = {
            "ast_transformers": list(sh.ast_transformers),
            "input_transformers_post": list(sh.input_transformers_post),
            "cleanup_transforms": list(itm.cleanup_transforms),
            "line_transforms": list(itm.line_transforms),
            "token_transformers": list(itm.token_transformers),
            "custom_exceptions": sh.custom_exceptions,
            "CustomTB": sh.CustomTB,
            "compile": sh.compile,
            "compile.flags": sh.compile.flags,
            "displayhook": sh.displayhook,
            "display_pub": sh.display_pub,
            "events": {k: list(v) for k, v in sh.events.callbacks.items()},
        }
        if self.kernel is not None:
            state["shell_handlers"] = dict(self.kernel.shell_handlers)
            state["control_handlers"] = dict(getattr(self.kernel, "control_handlers", {}))
            state["session"] = self.kernel.session
        return state

    def _audit(self, event: str, args: tuple) -> None:
        if event == "sys.addaudithook":
            self.events.append("an audit hook was added")
        elif event in ("object.__setattr__", "object.__delattr__") and args and isinstance(args[0], type):
            cls, name = args[0], args[1]
            for klass, snap, _keys in self.class_dicts:
                if klass is cls and name in snap:
                    self.events.append(f"{cls.__module__}.{cls.__qualname__}.{name} was reassigned")
                    break

    # ---- restore / verify ----------------------------------------------------------
    def restore(self) -> None:
        """Put every protected reference back to its value at kernel start."""
        import gc
        import threading as _threading

        sys.settrace(None)
        sys.setprofile(None)
        _threading.settrace(None)
        _threading.setprofile(None)
        for name, mod in self.modules.items():
            if sys.modules.get(name) is not mod:
                sys.modules[name] = mod
        for mod, snap, _name in self.module_dicts:
            namespace = vars(mod)
            for key, value in snap.items():
                if _changed(namespace, snap, key):
                    namespace[key] = value
        for cls, snap, keys in self.class_dicts:
            current = vars(cls)
            for key, value in snap.items():
                if _changed(current, snap, key):
                    try:
                        type.__setattr__(cls, key, value)
                    except (TypeError, AttributeError):
                        pass
            for key in set(current) - keys if keys is not None else ():
                if any(key in vars(base) for base in cls.__mro__[1:]) or key.startswith("__"):
                    try:
                        type.__delattr__(cls, key)
                    except (TypeError, AttributeError):
                        pass
        for container, snap, _name in self.containers:
            if _differs(container, snap):
                _reset_container(container, snap)
        for key, value in self._sys.items():
            if key == "threading.excepthook":
                _threading.excepthook = value
            else:
                setattr(sys, key, value)
        sys.meta_path[:] = self._lists["meta_path"]
        sys.path_hooks[:] = self._lists["path_hooks"]
        gc.callbacks[:] = self._lists["gc.callbacks"]
        sys.stdout, sys.stderr = self._stdout, self._stderr
        main = sys.modules.get("__main__")
        if main is not None and vars(main).get("__builtins__") is not self.modules.get("builtins"):
            vars(main)["__builtins__"] = self.modules.get("builtins")
        if self.shell is not None:
            self._restore_shell()
        self._reset_torch_modes()

    def _restore_shell(self) -> None:
        sh, st = self.shell, self._shell_state
        itm = st["compile"] and sh.input_transformer_manager
        for _oid, (obj, snap) in self._instance_snap.items():
            current = vars(obj)
            for key in [k for k, v in current.items() if _behaviour(v) and k not in snap]:
                if hasattr(type(obj), key):
                    del current[key]
            for key, value in snap.items():
                if current.get(key, _MISSING) is not value:
                    current[key] = value
        sh.compile = st["compile"]
        sh.compile.flags = st["compile.flags"]
        sh.ast_transformers[:] = st["ast_transformers"]
        sh.input_transformers_post[:] = st["input_transformers_post"]
        itm = sh.input_transformer_manager
        itm.cleanup_transforms[:] = st["cleanup_transforms"]
        itm.line_transforms[:] = st["line_transforms"]
        itm.token_transformers[:] = st["token_transformers"]
        sh.custom_exceptions = st["custom_exceptions"]
        sh.CustomTB = st["CustomTB"]
        sh.displayhook = st["displayhook"]
        sh.display_pub = st["display_pub"]
        for event, callbacks in sh.events.callbacks.items():
            keep = st["events"].get(event, [])
            callbacks[:] = [cb for cb in callbacks if cb in keep or _trusted_callable(cb)]
        if self.kernel is not None:
            self.kernel.shell_handlers.clear()
            self.kernel.shell_handlers.update(st["shell_handlers"])
            if st["control_handlers"]:
                self.kernel.control_handlers.clear()
                self.kernel.control_handlers.update(st["control_handlers"])
            self.kernel.session = st["session"]

    def _reset_torch_modes(self) -> None:
        torch = sys.modules.get("torch")
        if torch is None or not hasattr(torch, "_C"):
            return
        c = torch._C
        for length, pop in (("_len_torch_function_stack", "_pop_torch_function_stack"),
                            ("_len_torch_dispatch_stack", "_pop_torch_dispatch_stack")):
            if hasattr(c, length) and hasattr(c, pop):
                for _ in range(64):
                    if getattr(c, length)() <= 0:
                        break
                    getattr(c, pop)()

    def verify(self) -> list[str]:
        """What differs from the snapshot (empty when nothing protected was touched)."""
        problems = list(dict.fromkeys(self.events))
        for name, mod in self.modules.items():
            if sys.modules.get(name) is not mod:
                problems.append(f"sys.modules[{name!r}] was replaced")
        for mod, snap, name in self.module_dicts:
            namespace = vars(mod)
            for key in snap:
                if _changed(namespace, snap, key):
                    problems.append(f"{name}.{key} was replaced")
        for cls, snap, keys in self.class_dicts:
            current = vars(cls)
            for key in snap:
                if _changed(current, snap, key):
                    problems.append(f"{cls.__module__}.{cls.__qualname__}.{key} was replaced")
            for key in set(current) - keys if keys is not None else ():
                if any(key in vars(base) for base in cls.__mro__[1:]):
                    problems.append(f"{cls.__module__}.{cls.__qualname__}.{key} was overridden")
        for container, snap, name in self.containers:
            if _differs(container, snap):
                problems.append(f"{name} was modified")
        if sys.gettrace() is not None or sys.getprofile() is not None:
            problems.append("a trace or profile function is active")
        if self.shell is not None:
            sh, st = self.shell, self._shell_state
            if list(sh.ast_transformers) != st["ast_transformers"]:
                problems.append("IPython AST transformers were changed")
            if sh.custom_exceptions != st["custom_exceptions"]:
                problems.append("an IPython custom exception handler was installed")
            if sh.compile is not st["compile"] or sh.compile.flags != st["compile.flags"]:
                problems.append("IPython's compiler was changed")
        torch = sys.modules.get("torch")
        if torch is not None and hasattr(torch, "_C") and hasattr(torch._C, "_len_torch_function_stack"):
            if torch._C._len_torch_function_stack() or torch._C._len_torch_dispatch_stack():
                problems.append("a torch function / dispatch mode is still active")
        return problems

    # ---- the calls the grader sends ------------------------------------------------
    def begin(self) -> str:
        """Before a test cell: restore everything; return what had been changed ("" if nothing)."""
        problems = self.verify()
        self.events.clear()
        self.restore()
        self._hide_shadowing()
        if self._hidden:
            problems.append("user variables shadowing builtins hidden during the test: "
                            + ", ".join(sorted(self._hidden)))
        return "; ".join(problems)

    def end(self) -> None:
        """After a test cell: give the student's namespace back its hidden names."""
        main = sys.modules.get("__main__")
        namespace = vars(main) if main is not None else {}
        if self.shell is not None:
            namespace = self.shell.user_ns
        for key, value in self._hidden.items():
            namespace.setdefault(key, value)
        self._hidden = {}

    def _hide_shadowing(self) -> None:
        """Names of the user namespace that shadow a builtin (``type = ...``) are hidden during a test."""
        self._hidden = {}
        if self.shell is None:
            return
        builtins_snap = next((snap for mod, snap, name in self.module_dicts if name == "builtins"), {})
        namespace = self.shell.user_ns
        initial = getattr(self, "_user_ns0", {})
        for key in list(namespace):
            if key in initial and namespace[key] is initial[key]:
                continue  # put there by IPython / ipykernel (e.g. their own ``open``)
            if key in builtins_snap and key not in _KEEP_IN_USER_NS and namespace[key] is not builtins_snap[key]:
                self._hidden[key] = namespace.pop(key)

    def finish(self, nonce: str) -> None:
        """Last line of a test cell: verify, then prove that the cell ran to its end."""
        problems = self.verify()
        if problems:
            self.restore()
            shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
            raise TamperingError(f"the graded code changed what the tests rely on: {shown}. No points for this test.")
        self._stdout.flush()
        getattr(self, "_raw_write", self._stdout.write)(f"{nonce}\n")
        self._stdout.flush()


class _Missing:
    pass


def _changed(namespace: dict, snap: dict, key: str) -> bool:
    """Whether ``namespace[key]`` differs from the snapshot; a library's own re-wrapping is adopted.

    Some libraries wrap their functions lazily (torch wraps ``torch.manual_seed`` when
    ``torch._dynamo`` loads): a new value that wraps the snapshot value (``__wrapped__``)
    and whose code lives in the trusted installation replaces the snapshot value.
    """
    old = snap[key]
    new = namespace.get(key, _MISSING)
    if new is old:
        return False
    if new is not _MISSING and _rewraps(new, old):
        snap[key] = new
        return False
    return True


def _rewraps(new, old) -> bool:
    inner, depth = new, 0
    while depth < 8:
        inner = getattr(inner, "__wrapped__", None)
        depth += 1
        if inner is None:
            return False
        if inner is old:
            break
    else:
        return False
    code = getattr(getattr(new, "__func__", new), "__code__", None)
    filename = getattr(code, "co_filename", "") or ""
    return bool(_TRUSTED_PREFIXES) and filename.startswith(_TRUSTED_PREFIXES)


_MISSING = _Missing()


def _copy_container(value):
    return dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else set(value)


def _differs(container, snap) -> bool:
    try:
        if isinstance(container, dict):
            return container.keys() != snap.keys() or any(container[k] is not v for k, v in snap.items())
        if isinstance(container, list):
            return len(container) != len(snap) or any(a is not b for a, b in zip(container, snap))
        return container != snap
    except Exception:  # noqa: BLE001 - a hostile __eq__ counts as a difference
        return True


def _reset_container(container, snap) -> None:
    container.clear()
    if isinstance(container, dict):
        container.update(snap)
    elif isinstance(container, list):
        container.extend(snap)
    else:
        container.update(snap)


_TRUSTED_PREFIXES: tuple[str, ...] = ()


def _trusted_callable(cb) -> bool:
    code = getattr(getattr(cb, "__func__", cb), "__code__", None)
    filename = getattr(code, "co_filename", "") or ""
    return bool(_TRUSTED_PREFIXES) and filename.startswith(_TRUSTED_PREFIXES)


def _cap_streams(shell, guard: Guard, cap: int) -> None:
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


def _set_limits(limits: dict) -> None:
    import resource

    pairs = {
        resource.RLIMIT_AS: limits["memory_bytes"],
        resource.RLIMIT_CPU: limits["cpu_seconds"],
        resource.RLIMIT_FSIZE: limits["fsize_bytes"],
        resource.RLIMIT_NOFILE: limits["nofile"],
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NPROC: limits["nproc"],
    }
    for which, value in pairs.items():
        soft, hard = resource.getrlimit(which)
        value = int(value)
        hard_new = value if hard == resource.RLIM_INFINITY or hard > value else hard
        if which == resource.RLIMIT_CPU:
            # SIGXCPU at the soft limit, SIGKILL a few seconds later if it is ignored
            hard_new = value + 5 if hard == resource.RLIM_INFINITY or hard > value + 5 else hard
        resource.setrlimit(which, (min(value, hard_new), hard_new))


def kernel_main(config_path: str) -> None:
    """Entry point of the sandboxed kernel: limits, privilege drop, preload, guard, then ipykernel."""
    global _TRUSTED_PREFIXES
    cfg = json.loads(Path(config_path).read_text())
    _set_limits(cfg["limits"])
    if os.getuid() == 0 and cfg.get("uid") is not None:
        uid, gid = int(cfg["uid"]), int(cfg["gid"])
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise SystemExit("could not drop privileges")
    work = Path(cfg["cwd"])
    work.mkdir(parents=True, exist_ok=True)
    src = Path(SUBMISSION_MOUNT)
    if src.is_dir():
        for path in sorted(src.rglob("*")):
            if path.is_symlink():
                continue
            dest = work / path.relative_to(src)
            if path.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
            elif path.is_file():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)
    os.chdir(work)
    _TRUSTED_PREFIXES = tuple(cfg.get("trusted_prefixes", ()))
    if sys.path and sys.path[0] in ("", "."):
        sys.path.pop(0)

    import types

    guard = Guard()
    module = types.ModuleType(GUARD_MODULE, "The grader's guard (see cnnlab.sandbox).")
    module.guard = guard
    module.begin = guard.begin
    module.end = guard.end
    module.finish = guard.finish
    module.TamperingError = TamperingError
    sys.modules[GUARD_MODULE] = module

    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(["-f", cfg["connection_file"], "--HistoryManager.hist_file=:memory:",
                    "--IPKernelApp.log_level=CRITICAL"])
    import importlib

    debug = (lambda msg: print(f"[sandbox {time.monotonic():.2f}] {msg}", file=sys.__stderr__, flush=True)
             ) if cfg.get("debug") else (lambda msg: None)
    debug("kernel initialized")
    _cap_streams(app.shell, guard, int(cfg["limits"]["cell_output_bytes"]))
    for name in cfg.get("preload", []):
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
    debug("preloaded")
    guard.snapshot(shell=app.shell, kernel=app.kernel)
    debug("snapshot taken")
    app.start()


# --------------------------------------------------------------------------------------
# Grader side: launching the sandbox and talking to the kernel.
# --------------------------------------------------------------------------------------

def bwrap_path() -> str | None:
    """The bubblewrap executable, or None when it is not installed."""
    return shutil.which("bwrap") or (("/usr/bin/bwrap") if Path("/usr/bin/bwrap").exists() else None)


def sandbox_smoke_test() -> str:
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
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1][:200]
    return ""


@dataclass
class SandboxSettings:
    """Everything a worker needs to start sandboxed kernels (JSON-serialisable)."""

    limits: Limits = field(default_factory=Limits)
    slot: int = 0
    preload: list[str] = field(default_factory=list)
    use_cgroup: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SandboxSettings:
        data = dict(data)
        data["limits"] = Limits(**data.get("limits", {}))
        return cls(**data)


class CGroup:
    """A memory + pids cgroup for one kernel, when the machine lets us make one (v1 or v2)."""

    _counter = 0

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs

    @classmethod
    def create(cls, memory_bytes: int, pids: int, cpus: float = 1.0) -> CGroup | None:
        CGroup._counter += 1
        name = f"cnnlab-{os.getpid()}-{CGroup._counter}"
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return None
        dirs: dict[str, Path] = {}
        try:
            if Path("/sys/fs/cgroup/cgroup.controllers").exists():  # cgroup v2
                rel = next(line.split("::", 1)[1] for line in lines if line.startswith("0::"))
                parent = Path("/sys/fs/cgroup") / rel.lstrip("/")
                if not {"memory", "pids"} <= set((parent / "cgroup.subtree_control").read_text().split()):
                    return None
                d = parent / name
                d.mkdir()
                dirs["v2"] = d
                (d / "memory.max").write_text(str(memory_bytes))
                (d / "memory.swap.max").write_text("0") if (d / "memory.swap.max").exists() else None
                (d / "pids.max").write_text(str(pids))
                if (d / "cpu.max").exists():
                    (d / "cpu.max").write_text(f"{int(cpus * 100000)} 100000")
            else:  # cgroup v1
                for controller in ("memory", "pids"):
                    rel = next(line.split(":", 2)[2] for line in lines if line.split(":")[1] == controller)
                    d = Path("/sys/fs/cgroup") / controller / rel.lstrip("/") / name
                    d.mkdir()
                    dirs[controller] = d
                (dirs["memory"] / "memory.limit_in_bytes").write_text(str(memory_bytes))
                (dirs["pids"] / "pids.max").write_text(str(pids))
                cpu_line = next((line for line in lines if "cpu" in line.split(":")[1].split(",")), None)
                if cpu_line is not None:  # optional: one core per kernel, so a fork bomb cannot starve the others
                    ctrl = cpu_line.split(":")[1]
                    d = Path("/sys/fs/cgroup") / ctrl / cpu_line.split(":", 2)[2].lstrip("/") / name
                    try:
                        d.mkdir()
                        dirs["cpu"] = d
                        (d / "cpu.cfs_period_us").write_text("100000")
                        (d / "cpu.cfs_quota_us").write_text(str(int(cpus * 100000)))
                    except OSError:
                        pass
        except (OSError, StopIteration, IndexError):
            cls(dirs).remove()
            return None
        return cls(dirs)

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def oom_killed(self) -> bool:
        try:
            if "v2" in self.dirs:
                events = (self.dirs["v2"] / "memory.events").read_text()
                return any(line.split()[0] in ("oom_kill", "oom") and int(line.split()[1]) > 0
                           for line in events.splitlines())
            if "memory" in self.dirs:
                ctl = (self.dirs["memory"] / "memory.oom_control").read_text()
                kills = [int(line.split()[1]) for line in ctl.splitlines() if line.startswith("oom_kill ")]
                failcnt = int((self.dirs["memory"] / "memory.failcnt").read_text().strip() or 0)
                return bool(kills and kills[0] > 0) or failcnt > 0
        except (OSError, ValueError, IndexError):
            return False
        return False

    def kill_all(self) -> None:
        for d in self.dirs.values():
            try:
                for pid in (d / "cgroup.procs").read_text().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, PermissionError, ValueError):
                        pass
            except OSError:
                pass

    def remove(self) -> None:
        for d in self.dirs.values():
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    self.kill_all()
                    time.sleep(0.05)


@dataclass
class ExecResult:
    """Outcome of one execute request."""

    status: str                    # ok | error | timeout | dead
    outputs: list = field(default_factory=list)
    execution_count: int | None = None
    ename: str = ""
    evalue: str = ""
    truncated: bool = False        # outputs dropped by the output budget
    lost: bool = False             # the end-of-cell message never came (e.g. an oversized message)
    expressions: dict = field(default_factory=dict)  # user_expressions: name -> (status, text)


class SandboxKernel:
    """One sandboxed IPython kernel, reached over Unix sockets."""

    def __init__(self, settings: SandboxSettings, workdir: Path, files: Path | None, cwd_name: str = "work") -> None:
        self.settings = settings
        self.limits = settings.limits
        self.workdir = Path(workdir)
        self.files = files
        self.cwd = f"{SANDBOX_HOME}/{cwd_name}"
        self.proc: subprocess.Popen | None = None
        self.kc = None
        self.cgroup: CGroup | None = None
        self._log = bytearray()
        self._log_thread: threading.Thread | None = None
        self.output_bytes_total = 0
        # one uid per live worker process, machine-wide: RLIMIT_NPROC counts per uid, so two sandboxes
        # (of this run or of another run on the same machine) never share a process budget
        self.uid = UID_BASE + os.getpid() if os.geteuid() == 0 else os.getuid()
        self.gid = self.uid if os.geteuid() == 0 else os.getgid()

    # ---- start / stop --------------------------------------------------------------
    def _bwrap_args(self, ipc: Path, config: Path) -> list[str]:
        bwrap = bwrap_path()
        if not bwrap:
            raise RuntimeError("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
        lim = self.limits
        args = [bwrap, "--die-with-parent", "--new-session", "--clearenv",
                "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        if os.geteuid() == 0:
            args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            args += ["--unshare-user", "--disable-userns", "--uid", str(self.uid), "--gid", str(self.gid)]
        made: set[str] = set()

        def ensure_parents(dest: str) -> None:
            parts = Path(dest).parent.parts
            for i in range(2, len(parts) + 1):
                p = str(Path(*parts[:i]))
                if p not in made and p not in ("/usr",) and not p.startswith("/usr/"):
                    made.add(p)
                    args.extend(["--perms", "0755", "--dir", p])

        args += ["--ro-bind", "/usr", "/usr", "--perms", "0755", "--dir", "/etc"]
        for name in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
            host = Path("/") / name
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), f"/{name}"]
            elif host.is_dir():
                args += ["--ro-bind", str(host), f"/{name}"]
        for etc in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "hosts",
                    "mime.types"):
            if (Path("/etc") / etc).exists():
                args += ["--ro-bind", f"/etc/{etc}", f"/etc/{etc}"]
        args += ["--ro-bind", str(ipc / "passwd"), "/etc/passwd", "--ro-bind", str(ipc / "group"), "/etc/group"]
        args += ["--proc", "/proc", "--dev", "/dev",
                 "--perms", "1777", "--size", str(lim.tmpfs_bytes), "--tmpfs", "/dev/shm",
                 "--perms", "1777", "--size", str(lim.tmpfs_bytes), "--tmpfs", "/tmp",
                 "--perms", "0755", "--dir", "/home",
                 "--perms", "0777", "--size", str(lim.tmpfs_bytes), "--tmpfs", SANDBOX_HOME,
                 "--perms", "0755", "--dir", "/run",
                 "--bind", str(ipc), IPC_MOUNT]
        # The Python roots come after the private /tmp and home, so a course (and its .venv)
        # that lives under /tmp or /home is not hidden by them.
        made.update({"/tmp", "/dev", "/dev/shm", "/home", SANDBOX_HOME, "/run", "/proc"})
        for path in _python_roots():
            if path == "/usr" or path.startswith("/usr/"):
                continue
            ensure_parents(path)
            args += ["--ro-bind", path, path]
        if self.files is not None:
            args += ["--ro-bind", str(self.files), SUBMISSION_MOUNT]
        env = {
            "HOME": SANDBOX_HOME, "USER": "student", "LOGNAME": "student", "LANG": "C.UTF-8",
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
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
        for key, value in env.items():
            args += ["--setenv", key, value]
        args += ["--chdir", "/", "--remount-ro", "/"]
        boot = ("import sys,types;m=types.ModuleType('cnnlab');m.__path__=[sys.argv[1]];sys.modules['cnnlab']=m;"
                "from cnnlab.sandbox import kernel_main as k;del sys.modules['cnnlab'],sys.modules['cnnlab.sandbox'];"
                "k(sys.argv[2])")
        args += [sys.executable, "-c", boot, str(Path(__file__).resolve().parent), f"{IPC_MOUNT}/config.json"]
        return args

    def start(self, startup_timeout: float = 180) -> None:
        import zmq
        from jupyter_client.blocking.client import BlockingKernelClient

        self.workdir.mkdir(parents=True, exist_ok=True)
        ipc = Path(self._short_dir())
        ipc.chmod(0o755)
        ip = f"{ipc}/k"
        conn = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5,
                "ip": f"{IPC_MOUNT}/k", "key": secrets.token_hex(16), "transport": "ipc",
                "signature_scheme": "hmac-sha256", "kernel_name": "python3"}
        (ipc / "kernel.json").write_text(json.dumps(conn))
        (ipc / "passwd").write_text(f"student:x:{self.uid}:{self.gid}:student:{SANDBOX_HOME}:/bin/sh\n")
        (ipc / "group").write_text(f"student:x:{self.gid}:\n")
        roots = _python_roots()
        cfg = {"uid": self.uid if os.geteuid() == 0 else None, "gid": self.gid, "limits": asdict(self.limits),
               "preload": self.settings.preload, "cwd": self.cwd, "connection_file": f"{IPC_MOUNT}/kernel.json",
               "trusted_prefixes": roots, "debug": bool(os.environ.get("CNNLAB_SANDBOX_DEBUG"))}
        (ipc / "config.json").write_text(json.dumps(cfg))
        for f in ipc.iterdir():
            f.chmod(0o644)
        if os.geteuid() == 0:
            os.chown(ipc, self.uid, self.gid)
        if self.files is not None:
            _make_world_readable(self.files)
        self.cgroup = CGroup.create(self.limits.memory_bytes, self.limits.nproc) if self.settings.use_cgroup else None
        cmd = self._bwrap_args(ipc, ipc / "config.json")
        if self.cgroup is not None:
            script = 'while [ "$1" != "--" ]; do echo $$ > "$1" || exit 97; shift; done; shift; exec "$@"'
            cmd = ["/bin/sh", "-c", script, "sh", *self.cgroup.procs_files, "--", *cmd]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                                     env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        self._log_thread = threading.Thread(target=self._read_log, daemon=True)
        self._log_thread.start()
        deadline = time.monotonic() + startup_timeout
        # Connect only once the kernel has bound its sockets (ZeroMQ does not retry a missing ipc path).
        while not all((ipc / f"k-{port}").exists() for port in (1, 2, 4)):
            if self.proc.poll() is not None:
                raise KernelStartError(f"the sandboxed kernel exited during startup (code {self.proc.returncode}): "
                                       f"{self.log_tail(800)}")
            if time.monotonic() > deadline:
                self.kill()
                raise KernelStartError(f"the sandboxed kernel did not start within {startup_timeout:g} s")
            time.sleep(0.02)
        if os.geteuid() == 0:
            # the kernel has bound its sockets: from now on it may not create files in this host directory
            os.chown(ipc, 0, 0)
            ipc.chmod(0o755)
        ctx = zmq.Context()
        ctx.setsockopt(zmq.MAXMSGSIZE, int(self.limits.message_bytes))
        ctx.setsockopt(zmq.LINGER, 0)
        self._ctx = ctx
        kc = BlockingKernelClient(context=ctx)
        info = dict(conn, ip=ip)
        kc.load_connection_info(info)
        kc.start_channels(hb=False, stdin=False)
        self.kc = kc
        sent: set[str] = set()
        last_sent = 0.0
        while True:
            if self.proc.poll() is not None:
                raise KernelStartError(f"the sandboxed kernel exited during startup (code {self.proc.returncode}): "
                                       f"{self.log_tail(800)}")
            if time.monotonic() > deadline:
                self.kill()
                raise KernelStartError(f"the sandboxed kernel did not start within {startup_timeout:g} s")
            if time.monotonic() - last_sent > 5:
                sent.add(kc.kernel_info())
                last_sent = time.monotonic()
            try:
                reply = kc.get_shell_msg(timeout=0.5)
            except Exception:  # noqa: BLE001 - queue.Empty: not up yet
                continue
            if reply["parent_header"].get("msg_id") in sent and reply["msg_type"] == "kernel_info_reply":
                self.kernel_info = reply["content"]
                break
        # drain the startup status messages
        while True:
            try:
                kc.get_iopub_msg(timeout=0.2)
            except Exception:  # noqa: BLE001
                break

    def _short_dir(self) -> str:
        import tempfile

        # Unix socket paths are limited to ~107 bytes: keep the directory short.
        d = tempfile.mkdtemp(prefix="cnnlab-k-", dir="/tmp")
        self._ipc = d
        return d

    def _read_log(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
            self._log += chunk
            if len(self._log) > 65536:
                del self._log[:-32768]

    def log_tail(self, n: int = 2000) -> str:
        return bytes(self._log[-n:]).decode("utf-8", "replace").strip()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """Stop the kernel and everything it started, at once."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if self.cgroup is not None:
                self.cgroup.kill_all()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.kc is not None:
            try:
                self.kc.stop_channels()
            except Exception:  # noqa: BLE001
                pass
            self.kc = None
            try:
                self._ctx.destroy(linger=0)
            except Exception:  # noqa: BLE001
                pass
        if self.cgroup is not None:
            self.cgroup.remove()
        if getattr(self, "_ipc", None):
            shutil.rmtree(self._ipc, ignore_errors=True)
            self._ipc = None

    def death_reason(self) -> str:
        """A one-line cause for a kernel that is gone."""
        if self.proc is None or self.proc.returncode is None:
            return "the kernel stopped responding"
        if self.cgroup is not None and self.cgroup.oom_killed():
            return f"memory limit ({self.limits.memory_bytes / GiB:g} GiB) exceeded: the kernel was killed"
        rc = self.proc.returncode
        sig = rc - 128 if rc > 128 else -rc if rc < 0 else 0
        if sig == signal.SIGXCPU:
            return f"CPU-time limit ({self.limits.cpu_seconds} s) exceeded: the kernel was killed"
        if sig == signal.SIGKILL:
            return "the kernel was killed (SIGKILL: memory or CPU limit, or a crash)"
        if sig == signal.SIGSEGV:
            return "the kernel crashed (segmentation fault)"
        if sig:
            return f"the kernel died (signal {signal.Signals(sig).name})"
        return f"the kernel exited (exit code {rc})"

    # ---- execution -----------------------------------------------------------------
    def _reconnect_iopub(self) -> None:
        """After an oversized message ZeroMQ drops the subscription for good: open a new one."""
        kc = self.kc
        try:
            kc.iopub_channel.stop()
        except Exception:  # noqa: BLE001
            pass
        kc._iopub_channel = None
        kc.iopub_channel.start()
        time.sleep(0.2)

    def execute(self, code: str, timeout: float, silent: bool = False,
                user_expressions: dict[str, str] | None = None, keep: str = "") -> ExecResult:
        """Run ``code``; collect its outputs (within the output budget) until the kernel is idle.

        ``user_expressions`` are evaluated by the kernel after the code, directly (IPython's
        input transformers do not touch them); their values come back in ``res.expressions``.
        """
        from queue import Empty

        kc = self.kc
        if kc is None or not self.alive():
            return ExecResult("dead")
        msg_id = kc.execute(code, silent=silent, store_history=not silent, allow_stdin=False, stop_on_error=False,
                            user_expressions=user_expressions or {})
        res = ExecResult("ok")
        deadline = time.monotonic() + timeout
        reply = None
        idle = False
        reply_at = None
        cell_bytes = 0
        clear_pending = False
        while not (reply is not None and idle):
            now = time.monotonic()
            if now > deadline:
                res.status = "timeout"
                return res
            if not self.alive():
                res.status = "dead"
                return res
            if reply is not None and reply_at is not None and now - reply_at > 5:
                res.lost = True
                self._reconnect_iopub()
                break
            try:
                msg = kc.get_iopub_msg(timeout=0.05)
            except Empty:
                msg = None
            if msg is not None and msg.get("parent_header", {}).get("msg_id") == msg_id:
                mtype, content = msg["msg_type"], msg["content"]
                if mtype == "status":
                    idle = idle or content.get("execution_state") == "idle"
                elif mtype == "clear_output":
                    if content.get("wait"):
                        clear_pending = True
                    else:
                        res.outputs.clear()
                elif mtype == "execute_input":
                    res.execution_count = content.get("execution_count")
                elif mtype in ("stream", "display_data", "execute_result", "error"):
                    if clear_pending:
                        res.outputs.clear()
                        clear_pending = False
                    cell_bytes = self._add_output(res, mtype, content, cell_bytes, keep)
            while reply is None:
                try:
                    shell = kc.get_shell_msg(timeout=0)
                except Empty:
                    break
                if shell.get("parent_header", {}).get("msg_id") == msg_id:
                    reply = shell
                    reply_at = time.monotonic()
        content = reply["content"] if reply is not None else {}
        if content.get("status") == "error":
            res.status = "error"
            res.ename = content.get("ename", "")
            res.evalue = content.get("evalue", "")
            if not any(o.get("output_type") == "error" for o in res.outputs):
                res.outputs.append({"output_type": "error", "ename": res.ename, "evalue": res.evalue,
                                    "traceback": list(content.get("traceback") or [])[:100]})
        if content.get("execution_count") is not None:
            res.execution_count = content["execution_count"]
        for key, value in (content.get("user_expressions") or {}).items():
            if isinstance(value, dict):
                res.expressions[key] = (value.get("status"), str((value.get("data") or {}).get("text/plain", ""))[:4000]
                                        if value.get("status") == "ok" else str(value.get("evalue", ""))[:400])
        if res.truncated:
            res.outputs.append({"output_type": "stream", "name": "stdout",
                                "text": f"\n[grader: output truncated: more than {self.limits.cell_output_bytes} "
                                        "bytes in this cell or the notebook]\n"})
        return res

    def _add_output(self, res: ExecResult, mtype: str, content: dict, cell_bytes: int, keep: str = "") -> int:
        if mtype == "error":
            tb = [str(line)[:10000] for line in (content.get("traceback") or [])[:100]]
            res.outputs.append({"output_type": "error", "ename": str(content.get("ename", ""))[:1000],
                                "evalue": str(content.get("evalue", ""))[:10000], "traceback": tb})
            return cell_bytes
        if mtype == "stream":
            text = str(content.get("text", ""))
            size = len(text)
        else:
            data = content.get("data") or {}
            size = sum(len(str(v)) for v in data.values())
        budget = min(self.limits.cell_output_bytes - cell_bytes,
                     self.limits.total_output_bytes - self.output_bytes_total)
        if size > budget:
            res.truncated = True
            if mtype != "stream":
                return cell_bytes
            kept = f"{keep}\n" if keep and keep in text[max(budget, 0):] else ""
            text = text[:max(budget, 0)] + kept
            size = len(text)
            if not text:
                return cell_bytes
        self.output_bytes_total += size
        if mtype == "stream":
            name = content.get("name", "stdout")
            last = res.outputs[-1] if res.outputs else None
            if last is not None and last.get("output_type") == "stream" and last.get("name") == name:
                last["text"] += text
            else:
                res.outputs.append({"output_type": "stream", "name": name, "text": text})
        else:
            out = {"output_type": mtype, "data": content.get("data") or {}, "metadata": content.get("metadata") or {}}
            if mtype == "execute_result":
                out["execution_count"] = content.get("execution_count")
            res.outputs.append(out)
        return cell_bytes + size


class KernelStartError(RuntimeError):
    """The sandboxed kernel could not be started (an instructor-side problem)."""


def _python_roots() -> list[str]:
    """Directories the kernel's Python needs, read-only: the venv, the base install, cnnlab."""
    roots = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix),
             os.path.realpath(Path(__file__).resolve().parent)}
    exe = os.path.realpath(sys.executable)
    if not any(exe.startswith(r + os.sep) for r in roots):
        roots.add(os.path.dirname(exe))
    # drop roots nested inside another root
    ordered = sorted(roots, key=len)
    kept: list[str] = []
    for r in ordered:
        if not any(r == k or r.startswith(k + os.sep) for k in kept):
            kept.append(r)
    return kept


def _make_world_readable(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                os.chmod(p, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
