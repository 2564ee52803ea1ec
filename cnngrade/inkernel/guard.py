"""The in-kernel guard: pristine references taken at kernel start, restored before each test cell.

This module runs *inside* the sandboxed kernel, loaded by :mod:`cnngrade.inkernel.boot`
under the name ``_cnnlab_guard`` before any student code, with a private copy of the
builtins; it uses the standard library only. It snapshots the comparison functions of
torch / numpy / ``cnnlab.checks``, the builtins, the classes those modules define and
IPython's execution machinery.

The grader reaches it by no name a notebook could rebind: :func:`arm` installs an audit
hook (which nothing can remove) that answers marker strings carried by lambdas the grader
sends (``(lambda: 'cnnlab-guard:begin:NONCE').__code__``). Before a test cell (``begin``)
it restores every protected reference and parks the IPython event callbacks the notebook
added; when the test cell's code starts (the ``exec`` audit event) it restores again and
watches the test: reading the call stack from graded code, rebinding the names the test
uses, reaching for the garbage collector's object lists or rewriting the guard's own code
are recorded. Notebook code is refused the routes to raw memory that raise audit events
(ctypes' memory reads, library loading; opening ``/proc/<pid>/mem``), which could reveal
the key. The test cell ends with a ``finish`` marker that verifies everything; after
it a ``verdict`` marker answers whether the test ran exactly once to its end untouched.
Every answer carries an HMAC under a key the grader sent before any student code ran, so
a notebook that intercepts the grader's requests cannot forge the guard's answer.
"""

from __future__ import annotations

import sys

MODULE_NAME = "_cnnlab_guard"
GUARD_MODULE = MODULE_NAME

_PROTECTED_EXACT = frozenset({
    "builtins", "math", "operator", "functools", "inspect", "ast", "textwrap", "importlib",
    "types", "numbers", "unittest", "torch", "numpy", "pytest", "_pytest.python_api",
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
        self.parked: list[tuple[str, object]] = []
        self.builtins_module = sys.modules["builtins"]

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
        self.park_callbacks()
        if self.kernel is not None:
            self.kernel.shell_handlers.clear()
            self.kernel.shell_handlers.update(st["shell_handlers"])
            if st["control_handlers"]:
                self.kernel.control_handlers.clear()
                self.kernel.control_handlers.update(st["control_handlers"])
            self.kernel.session = st["session"]

    def park_callbacks(self) -> list[str]:
        """Only the callbacks present at kernel start run during a test; the others wait in ``parked``.

        Returns the parked callbacks that are not genuinely library code (a notebook's own).
        """
        untrusted = []
        if self.shell is None:
            return untrusted
        for event, callbacks in self.shell.events.callbacks.items():
            keep = self._shell_state["events"].get(event, [])
            for cb in [cb for cb in callbacks if not any(cb is k for k in keep)]:
                self.parked.append((event, cb))
                if not _library_callable(cb):
                    untrusted.append(f"{event}: {getattr(cb, '__qualname__', type(cb).__name__)}")
            callbacks[:] = [cb for cb in callbacks if any(cb is k for k in keep)]
        return untrusted

    def unpark_callbacks(self, drop_new: bool = False) -> None:
        """After a test: the notebook's own callbacks come back (with ``drop_new``, the ones added during it do not)."""
        if self.shell is None:
            return
        if drop_new:
            for event, callbacks in self.shell.events.callbacks.items():
                keep = self._shell_state["events"].get(event, [])
                callbacks[:] = [cb for cb in callbacks if any(cb is k for k in keep)]
        for event, cb in self.parked:
            self.shell.events.callbacks.setdefault(event, []).append(cb)
        self.parked = []

    def shell_problems(self) -> list[str]:
        """Changes to IPython's shell, kernel and event callbacks since the last restore."""
        problems = []
        if self.shell is None:
            return problems
        for _oid, (obj, snap) in self._instance_snap.items():
            current = vars(obj)
            changed = [k for k, v in current.items() if _behaviour(v) and k not in snap and hasattr(type(obj), k)]
            changed += [k for k, v in snap.items() if current.get(k, _MISSING) is not v]
            if changed:
                problems.append(f"{type(obj).__name__}.{', '.join(sorted(changed)[:4])} of the kernel was replaced")
        for event, callbacks in self.shell.events.callbacks.items():
            keep = self._shell_state["events"].get(event, [])
            if any(not any(cb is k for k in keep) for cb in callbacks):
                problems.append(f"an IPython event callback ({event}) was registered")
        return problems

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

    # ---- the calls the grader sends (through the audit hook of :func:`arm`) -----------
    def begin(self) -> tuple[str, list[str]]:
        """Before a test cell: restore everything; (what had been changed and was restored, what costs the test)."""
        self.end()
        problems = self.verify()
        tamper = []
        if self._notebook_builtins_replaced():
            tamper.append("the notebook's __builtins__ was replaced")
        untrusted = self.park_callbacks()
        if untrusted:
            tamper.append("an IPython event callback was registered by the notebook (" + ", ".join(untrusted[:3]) + ")")
        self.events.clear()
        self.restore()
        self._hide_shadowing()
        if self._hidden:
            problems.append("user variables shadowing builtins hidden during the test: "
                            + ", ".join(sorted(self._hidden)))
        return "; ".join(problems), tamper

    def test_started(self) -> list[str]:
        """The test cell's code starts (after IPython's own pre-execution steps): restore the cheap parts again."""
        tamper = []
        if self._notebook_builtins_replaced():
            tamper.append("the notebook's __builtins__ was replaced")
        untrusted = self.park_callbacks()
        if untrusted:
            tamper.append("an IPython event callback was registered (" + ", ".join(untrusted[:3]) + ")")
        self._restore_builtins_and_trace()
        if self.shell is not None:
            problems = self.shell_problems()
            if problems:
                tamper += problems
                self._restore_shell()
        return tamper

    def _notebook_builtins_replaced(self) -> bool:
        spaces = [vars(m) for m in (sys.modules.get("__main__"),) if m is not None]
        if self.shell is not None:
            spaces.append(self.shell.user_ns)
        return any(ns.get("__builtins__", self.builtins_module) is not self.builtins_module for ns in spaces)

    def _restore_builtins_and_trace(self) -> None:
        import threading as _threading

        sys.settrace(None)
        sys.setprofile(None)
        _threading.settrace(None)
        _threading.setprofile(None)
        main = sys.modules.get("__main__")
        for ns in ([vars(main)] if main is not None else []) + ([self.shell.user_ns] if self.shell else []):
            ns["__builtins__"] = self.builtins_module

    def end(self, drop_new: bool = False) -> None:
        """After a test cell: give the student's namespace back its hidden names and parked callbacks."""
        main = sys.modules.get("__main__")
        namespace = vars(main) if main is not None else {}
        if self.shell is not None:
            namespace = self.shell.user_ns
        for key, value in self._hidden.items():
            namespace.setdefault(key, value)
        self._hidden = {}
        self.unpark_callbacks(drop_new)

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

    def finish(self) -> list[str]:
        """Last line of a test cell: what differs from the snapshot (the caller raises on anything)."""
        problems = self.verify()
        if self._notebook_builtins_replaced():
            problems.append("the notebook's __builtins__ was replaced")
        problems += self.shell_problems()
        if problems:
            self.restore()
        return problems


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


_TRUSTED_PREFIXES: tuple[str, ...] = ()  # set by the boot module: the Python installation


def _trusted_file(filename: str) -> bool:
    return bool(_TRUSTED_PREFIXES) and filename.startswith(_TRUSTED_PREFIXES)


def _library_callable(cb) -> bool:
    """A callback that is what it claims: a function (or bound method) of a module loaded from the installation.

    The function must be the module's own attribute (or its class's) and its code must come
    from that module's file, so a function whose code object merely names a library file does not pass.
    """
    func = getattr(cb, "__func__", cb)
    owner = getattr(cb, "__self__", None)
    code = getattr(func, "__code__", None)
    module = sys.modules.get(getattr(func, "__module__", None) or "")
    path = getattr(module, "__file__", None) or ""
    if code is None or not path or not _trusted_file(path) or code.co_filename != path:
        return False
    name = getattr(func, "__name__", "")
    if owner is not None:
        return getattr(type(owner), name, None) is func or getattr(owner, name, None) == cb
    return getattr(module, name, None) is func


def set_trusted_prefixes(prefixes: tuple[str, ...] | list[str]) -> None:
    """Directories whose code counts as the trusted installation (a library re-wrapping its own function)."""
    global _TRUSTED_PREFIXES
    _TRUSTED_PREFIXES = tuple(prefixes)


class TestStateError(RuntimeError):
    """Refused by the guard: the operation would reach or rewrite the grader's own code."""


class Reply(Exception):
    """The guard's answer to a marker, ``MAC|status|text`` (raised, so any expression can carry it)."""


MARK = "cnnlab-guard:"
FRAME_ATTRS = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
GC_EVENTS = frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents"})
# ctypes events that read or hand out raw memory, load libraries or call C code; refused when the
# code that asked ctypes is notebook code. Python 3.11 raises no event for ``cast``, pointer
# indexing, ``c_char_p(address)`` or calling a foreign function such as ``memmove``.
CTYPES_EVENTS = frozenset({
    "ctypes.string_at", "ctypes.wstring_at", "ctypes.cdata", "ctypes.cdata/buffer", "ctypes.addressof",
    "ctypes.call_function", "ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle",
})
OPEN_EVENTS = frozenset({"open", "mmap.__new__"})


def _memory_path(path: str) -> bool:
    """A path naming the process's raw memory: ``/proc/<pid>/mem`` (also of a task) or ``map_files``.

    A relative ``mem`` counts too: opened with ``dir_fd`` (an open ``/proc/self``), the audit
    event does not say which directory it is relative to.
    """
    parts = [p for p in path.split("/") if p]
    named = bool(parts) and (parts[-1] == "mem" or "map_files" in parts)
    return named and (not path.startswith("/") or parts[0] == "proc")


def _as_text(path: object) -> str | None:
    """The text of a ``str`` / ``bytes`` path, read with the base types' own methods (a subclass cannot lie)."""
    if isinstance(path, str):
        return str.__str__(path)
    if isinstance(path, bytes):
        return bytes.decode(bytes.__getitem__(path, slice(None)), "utf-8", "surrogateescape")
    if isinstance(path, bytearray):
        return bytearray.decode(bytearray.__getitem__(path, slice(None)), "utf-8", "surrogateescape")
    return None


def _resolve(text: str, readlink, getcwd) -> str:
    """``text`` as an absolute path with ``.``, ``..`` and symbolic links resolved (os.path is not used:
    a notebook can rebind its functions)."""
    out: list[str] = []
    pending = (text if text.startswith("/") else getcwd() + "/" + text).split("/")[::-1]
    hops = 0
    while pending and hops < 40:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            out = out[:-1]
            continue
        try:
            target = readlink("/" + "/".join(out + [part]))
        except (OSError, ValueError):
            out.append(part)
            continue
        hops += 1
        if target.startswith("/"):
            out = []
        pending.extend(target.split("/")[::-1])
    return "/" + "/".join(out)


def memory_target(path: object, readlink, getcwd) -> str:
    """Why opening ``path`` (an ``open`` / ``os.open`` argument or a file descriptor) reaches raw memory, or ``""``.

    The path is checked as written and resolved (working directory, ``..``, symbolic links).
    """
    if isinstance(path, int):
        try:
            text = readlink(f"/proc/self/fd/{int.__index__(path)}")
        except (OSError, ValueError, OverflowError):
            return ""
    else:
        text = _as_text(path)
    if text is None:  # open() and os.open() report the path after __fspath__, as the text they open
        return ""
    try:
        resolved = _resolve(text, readlink, getcwd)
    except (OSError, ValueError):
        resolved = text
    return f"{text[:80]} (the process's memory)" if _memory_path(text) or _memory_path(resolved) else ""


def arm(guard: Guard, module) -> None:
    """Install the audit hook through which the grader talks to ``guard`` (the guard's only entry point).

    Everything the hook uses is bound here, in its closure: a notebook that rebinds
    builtins, module attributes or the guard's class cannot change what the hook does,
    and the closure (the HMAC key, the state of the current test) is reachable only
    through the object graph, whose walkers (``gc.get_objects`` and friends) are refused
    to notebook code.
    """
    import hashlib
    import types

    sha256, function_type, code_type = hashlib.sha256, types.FunctionType, types.CodeType
    _isinstance, _len, _id, _getframe, _str = isinstance, len, id, sys._getframe, str
    _bytes, _tuple, _dict, _frozenset, _list, _hasattr = bytes, tuple, dict, frozenset, list, hasattr
    guard_file = getattr(module, "__file__", "") or ""
    trusted = _TRUSTED_PREFIXES + ("<frozen ",)
    own_dict = vars(module)
    own_snapshot = _dict(own_dict)
    own_builtins = own_dict.get("__builtins__")
    own_builtins_snapshot = _dict(own_builtins) if _isinstance(own_builtins, _dict) else {}
    own_classes = [(cls, _dict(vars(cls))) for cls in (Guard, TamperingError, Reply, TestStateError)]
    own_functions = set()
    for value in _list(own_snapshot.values()) + [v for _c, d in own_classes for v in d.values()]:
        func = getattr(value, "__func__", value)
        if _isinstance(func, function_type):
            own_functions.add(_id(func))
    type_setattr, type_delattr = type.__setattr__, type.__delattr__
    import os

    readlink, getcwd, target_of = os.readlink, os.getcwd, memory_target
    ctypes_dir = "/ctypes/"
    missing = _MISSING
    state = {"key": None, "pads": None, "nonce": "", "busy": False, "own": False, "in_test": False, "exec": 0,
             "finished": 0, "codes": {}, "names": {}, "tamper": [], "sticky": []}

    def caller():
        """The frame that raised the audit event (called by the handlers ``dispatch`` calls)."""
        state["own"] = True
        try:
            return _getframe(4)
        finally:
            state["own"] = False

    def mac(text: str) -> str:
        inner, outer = state["pads"]
        return sha256(outer + sha256(inner + text.encode()).digest()).hexdigest()[:32]

    def reply(kind: str, payload: str, status: str, text: str) -> Reply:
        text = text[:300]
        return Reply(f"{mac(f'{kind}|{payload}|{status}|{text}')}|{status}|{text}")

    def set_key(key: str) -> None:
        raw = key.encode().ljust(64, b"\0")
        state["pads"] = (_bytes(b ^ 0x36 for b in raw), _bytes(b ^ 0x5C for b in raw))
        state["key"] = key

    def self_check() -> None:
        """The guard's module, classes and builtins as they were when armed (put back, and remembered, if not)."""
        changed = [k for k, v in own_snapshot.items() if own_dict.get(k, missing) is not v]
        for k in changed:
            own_dict[k] = own_snapshot[k]
        if _isinstance(own_builtins, _dict):
            bad = [k for k, v in own_builtins_snapshot.items() if own_builtins.get(k, missing) is not v]
            changed += bad
            for k in bad:
                own_builtins[k] = own_builtins_snapshot[k]
        for cls, snap in own_classes:
            current = vars(cls)
            bad = [k for k, v in snap.items() if current.get(k, missing) is not v]
            bad += [k for k in current if k not in snap]
            changed += bad
            for k in bad:
                if k in snap:
                    type_setattr(cls, k, snap[k])
                else:
                    type_delattr(cls, k)
        if changed:
            note = "the grader's guard was modified (" + ", ".join(sorted(changed)[:3]) + ")"
            state["sticky"].append(note)
            state["tamper"].append(note)

    def untrusted(code) -> bool:
        filename = code.co_filename
        return not filename.startswith(trusted) and filename != guard_file

    def nested_codes(code, found: dict) -> dict:
        found[_id(code)] = code
        for const in code.co_consts:
            if _isinstance(const, code_type):
                nested_codes(const, found)
        return found

    def marker_of(code) -> tuple[str, str] | None:
        for const in code.co_consts:
            if _isinstance(const, _str) and const.startswith(MARK):
                kind, _, payload = const[_len(MARK):].partition(":")
                return kind, payload
        return None

    def test_names(codes: dict) -> dict:
        ns = guard.shell.user_ns if guard.shell is not None else vars(sys.modules["__main__"])
        names = set()
        for code in codes.values():
            names.update(code.co_names)
            names.update(code.co_varnames)
        return {n: ns.get(n, missing) for n in names if not n.startswith("__cnnlab")}

    def rebound() -> list[str]:
        ns = guard.shell.user_ns if guard.shell is not None else vars(sys.modules["__main__"])
        return sorted(n for n, v in state["names"].items() if ns.get(n, missing) is not v)

    def on_begin(payload: str) -> Reply:
        self_check()
        restored, tamper = guard.begin()
        state.update(nonce=payload, in_test=False, exec=0, finished=0, codes={}, names={},
                     tamper=_list(_dict.fromkeys(_list(state["sticky"]) + tamper)))
        status = "tamper" if state["tamper"] else "restored" if restored else "ok"
        return reply("begin", payload, status, "; ".join(state["tamper"]) if state["tamper"] else restored)

    def on_exec(code) -> None:
        self_check()
        found = None
        for const in code.co_consts:
            if _isinstance(const, code_type):
                codes = nested_codes(const, {})
                if any(marker_of(c) == ("finish", state["nonce"]) for c in codes.values()):
                    found = nested_codes(code, {})
                    break
        if found is None and marker_of(code) == ("finish", state["nonce"]):
            found = nested_codes(code, {})
        if found is None:
            return
        state["exec"] += 1
        if state["exec"] > 1:
            state["tamper"].append("the test cell's code was run a second time by the notebook")
            return
        state["tamper"] += guard.test_started()
        wrapped = any(marker_of(c) == ("leave", state["nonce"]) for c in found.values())
        state.update(in_test=True, codes=found, names=test_names(found) if wrapped else {})

    def on_finish(payload: str) -> None:
        if not state["in_test"] or payload != state["nonce"]:
            return
        self_check()
        caller_frame = caller()
        if _id(caller_frame.f_code) not in state["codes"]:
            state["tamper"].append("the end of the test was reached from outside the test cell")
            return
        state["finished"] += 1
        problems = _list(state["tamper"]) + guard.finish()
        names = rebound()
        if names:
            problems.append("the graded code rebound names the test uses: " + ", ".join(names[:5]))
        state["names"] = {}
        problems = _list(_dict.fromkeys(problems))
        if problems:
            state["tamper"] = problems
            shown = "; ".join(problems[:5])
            raise TamperingError(f"the graded code changed what the tests rely on: {shown}. No points for this test.")

    def on_leave(payload: str) -> None:
        """The test function's ``finally``: names the graded code rebound, before the test's own names are kept."""
        if payload != state["nonce"] or _id(caller().f_code) not in state["codes"]:
            return
        names = rebound()
        if names:
            state["tamper"].append("the graded code rebound names the test uses: " + ", ".join(names[:5]))
        state["names"] = {}
        state["in_test"] = False

    def on_verdict(payload: str) -> Reply:
        self_check()
        state["in_test"] = False
        problems = _list(state["tamper"])
        problems += [p for p in guard.shell_problems() if p not in problems]
        if payload != state["nonce"]:
            problems.append("the verdict was asked for another test")
        elif state["exec"] != 1:
            problems.append(f"the test cell's code ran {state['exec']} times")
        problems = _list(_dict.fromkeys(problems))
        guard.end(drop_new=True)
        status = "tamper" if problems else "finished" if state["finished"] == 1 else "unfinished"
        state.update(nonce="", names={}, codes={}, tamper=[])
        return reply("verdict", payload, status, "; ".join(problems))

    def frame_read(event: str, args: tuple) -> None:
        caller_frame = caller()
        code = caller_frame.f_code
        if untrusted(code) and _id(code) not in state["codes"]:
            state["tamper"].append(f"the graded code read the call stack ({event})")
            return
        if event == "sys._getframe" and args and _hasattr(args[0], "f_code") and untrusted(args[0].f_code):
            frame = caller_frame
            while frame is not None and not untrusted(frame.f_code):
                frame = frame.f_back
            if frame is not None and _id(frame.f_code) not in state["codes"]:
                state["tamper"].append("the graded code read the call stack (through a library)")

    def tracer_set(event: str, args: tuple) -> None:
        if args and args[0] is None:
            return
        if untrusted(caller().f_code):
            state["tamper"].append(f"the graded code installed a trace or profile function ({event})")

    def guarded_write(args: tuple) -> None:
        if args and _id(args[0]) in own_functions:
            state["sticky"].append("the notebook tried to rewrite the grader's guard")
            raise TestStateError("the grader's own code cannot be changed from a notebook")

    def walkers(event: str) -> None:
        if untrusted(caller().f_code):
            state["sticky"].append(f"the notebook walked the interpreter's objects ({event})")
            raise TestStateError(f"{event} is not available while a notebook is graded")

    def asker(frame):
        """The frame that asked ctypes: the first one outside the ctypes package (whose wrappers raise the events)."""
        while frame is not None and frame.f_code.co_filename.startswith(trusted) and \
                ctypes_dir in frame.f_code.co_filename:
            frame = frame.f_back
        return frame

    def notebook_in_chain(frame) -> bool:
        while frame is not None:
            if untrusted(frame.f_code):
                return True
            frame = frame.f_back
        return False

    def raw_memory(event: str, args: tuple, frame=None) -> None:
        """Refuse notebook code the routes to raw memory: ctypes memory and C calls, ``/proc/<pid>/mem``, ``map_files``.

        ctypes is refused when the code that asked it is the notebook's (libraries keep their
        own ctypes calls, even while the notebook calls them); a memory path whenever the
        notebook is anywhere in the chain (no library opens one for it honestly).
        """
        frame = caller() if frame is None else frame
        if event in CTYPES_EVENTS:
            first = asker(frame)
            if first is None or not untrusted(first.f_code):
                return
            what = event
        else:
            if not args or not notebook_in_chain(frame):
                return
            what = target_of(args[0], readlink, getcwd)
            if not what:
                return
            what = f"{'mmap of' if event == 'mmap.__new__' else 'open'} {what}"
        note = f"the notebook reached for raw memory ({what})"
        if note not in state["sticky"]:
            state["sticky"].append(note)
        if state["in_test"]:
            state["tamper"].append(note)
        raise TestStateError(f"{what}: raw memory access is not available while a notebook is graded")

    def dispatch(event: str, args: tuple) -> Reply | None:
        if event == "object.__getattr__" and args[1] == "__code__" and _isinstance(args[0], function_type):
            found = marker_of(args[0].__code__)
            if found is None:
                return None
            kind, payload = found
            if kind == "key":
                if state["key"] is None:
                    set_key(payload)
                    return reply("key", payload, "ok", "")
                return None
            if state["key"] is None:
                return None
            if kind == "begin":
                return on_begin(payload)
            if kind == "verdict":
                return on_verdict(payload)
            if kind == "finish":
                on_finish(payload)
            elif kind == "leave":
                on_leave(payload)
            return None
        if event == "exec" and state["nonce"] and not state["in_test"] and args and _isinstance(args[0], code_type):
            on_exec(args[0])
        elif event == "object.__setattr__" or event == "object.__delattr__":
            guarded_write(args)
            guard._audit(event, args)
        elif event in GC_EVENTS:
            walkers(event)
        elif event in CTYPES_EVENTS or event in OPEN_EVENTS:
            raw_memory(event, args)
        elif state["in_test"] and (event in ("sys._getframe", "sys._current_frames", "sys._getframemodulename")
                                   or (event == "object.__getattr__" and args[1] in FRAME_ATTRS)):
            frame_read(event, args)
        elif state["in_test"] and event in ("sys.settrace", "sys.setprofile"):
            tracer_set(event, args)
        elif event == "sys.addaudithook":
            guard.events.append("an audit hook was added")
        return None

    def hook(event: str, args: tuple) -> None:
        if state["busy"]:
            # code that runs inside the guard (a notebook object's __eq__ met while verifying) may not
            # look at the guard's frames or objects
            if not state["own"] and (event in GC_EVENTS or event in ("sys._getframe", "sys._current_frames")
                                     or event == "object.__getattr__" and args[1] in FRAME_ATTRS):
                state["own"] = True
                try:
                    inside = untrusted(_getframe(1).f_code)
                finally:
                    state["own"] = False
                if inside:
                    state["sticky"].append(f"notebook code looked into the grader's guard ({event})")
                    raise TestStateError(f"{event} is not available inside the grader's guard")
            elif not state["own"] and (event in CTYPES_EVENTS or event in OPEN_EVENTS):
                state["own"] = True
                try:
                    frame = _getframe(1)
                finally:
                    state["own"] = False
                raw_memory(event, args, frame)
            return
        state["busy"] = True
        try:
            answer = dispatch(event, args)
        finally:
            state["busy"] = False
        if answer is not None:
            raise answer

    sys.addaudithook(hook)


def install(guard: Guard, module) -> None:
    """Keep ``guard`` out of reach: no module attribute names it, and the module leaves ``sys.modules``."""
    module.TamperingError = TamperingError
    sys.modules.pop(MODULE_NAME, None)
