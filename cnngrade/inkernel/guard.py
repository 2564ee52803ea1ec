"""The in-kernel guard: pristine references taken at kernel start, restored before each test cell.

This module runs *inside* the sandboxed kernel, loaded by :mod:`cnngrade.inkernel.boot`
under the name ``_cnnlab_guard`` before any student code; it uses the standard library
only. It snapshots the comparison functions of torch / numpy / ``cnnlab.checks``, the
builtins, the classes those modules define and IPython's execution machinery. Before
each test cell the grader asks it (``begin``) to restore the pristine references; a
line appended to the test cell (``finish``) verifies that nothing was re-patched during
the test and prints a per-cell nonce, so a test cell that did not run to its end never
counts as passed. ``end`` gives the student's hidden names back after the test.
"""

from __future__ import annotations

import sys

MODULE_NAME = "_cnnlab_guard"
GUARD_MODULE = MODULE_NAME

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


_TRUSTED_PREFIXES: tuple[str, ...] = ()  # set by the boot module: the Python installation


def _trusted_callable(cb) -> bool:
    code = getattr(getattr(cb, "__func__", cb), "__code__", None)
    filename = getattr(code, "co_filename", "") or ""
    return bool(_TRUSTED_PREFIXES) and filename.startswith(_TRUSTED_PREFIXES)


def set_trusted_prefixes(prefixes: tuple[str, ...] | list[str]) -> None:
    """Directories whose code counts as the trusted installation (a library re-wrapping its own function)."""
    global _TRUSTED_PREFIXES
    _TRUSTED_PREFIXES = tuple(prefixes)


def install(guard: Guard, module) -> None:
    """Expose ``guard``'s three calls on ``module`` (the name the grader's requests use)."""
    module.guard = guard
    module.begin = guard.begin
    module.end = guard.end
    module.finish = guard.finish
    module.TamperingError = TamperingError
