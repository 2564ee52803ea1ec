"""Tolerant comparisons and rule enforcement for exercise test cells.

Tolerances are stated once, here, per dtype: they hold on CPU and GPU for sums of
a few thousand terms. Messages say what was expected and what came back, because a
learner reads them.

``forbid_ops`` enforces rules such as "no F.conv2d inside conv2d_naive" at the
ATen dispatch level: every route to the real kernel (``F.conv2d``,
``nn.Conv2d``, ``torch.conv2d``, a saved alias, ``Tensor.__torch_function__``
tricks) ends in the same ATen operator, which the mode refuses.

A failed check reads like a failed ``assert`` in the test cell: the helpers here set
``__tracebackhide__`` (honoured by pytest and IPython), and in a notebook the error shows
the teaching message first, then only the test cell's failing line, without a walk
through this module.
"""

from __future__ import annotations

import ast
import functools
import inspect
import os
import textwrap
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

# Captured at import, so a test keeps working references even if a cell reassigns them.
_isclose = torch.isclose
_as_tensor = torch.as_tensor
_np_asarray = np.asarray

TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    # dtype: (atol, rtol)
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (2e-2, 2e-2),
    torch.float32: (1e-4, 1e-4),
    torch.float64: (1e-8, 1e-7),
}


_TORCH_DIR = str(Path(torch.__file__).parent) + os.sep


def _visible_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """``tb`` without the frames that declare ``__tracebackhide__`` (the helpers of this module)
    and without PyTorch's internals (between a learner's call and a refused operator)."""
    frames = []
    while tb is not None:
        inside_torch = tb.tb_frame.f_code.co_filename.startswith(_TORCH_DIR)
        if not (inside_torch or tb.tb_frame.f_locals.get("__tracebackhide__", False)):
            frames.append(tb)
        tb = tb.tb_next
    kept = None
    for entry in reversed(frames):
        kept = types.TracebackType(kept, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return kept


class CheckFailed(AssertionError):
    """A check of a test cell failed; the message says what was expected and what came back.

    IPython renders it through :meth:`_render_traceback_`: the message first, then the
    traceback without this module's frames, which ends at the test cell's failing line.
    """

    def _render_traceback_(self) -> list[str]:
        headline = f"{type(self).__name__}: {self}"
        try:
            from IPython import get_ipython

            shell = get_ipython()
            tb = _visible_traceback(self.__traceback__)
            if shell is None or tb is None:
                return [headline]
            stb = shell.InteractiveTB.structured_traceback(type(self), self, tb)
            # IPython's last entry repeats the message: it is already the first line here.
            return ["\x1b[0;31m" + headline + "\x1b[0m", *stb[:-1]]
        except Exception:  # rendering must never hide the failure itself
            return [headline]


class ForbiddenOpError(CheckFailed):
    """Raised when graded code calls an operator that its exercise forbids."""


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """The (atol, rtol) used for a dtype; exact (0, 0) for integer and bool dtypes."""
    return TOLERANCES.get(dtype, (0.0, 0.0))


class TamperingError(CheckFailed):
    """Raised when a value or a rule of a test was tampered with (a lying tensor, a rule taken off)."""


# what the checks read from a tensor: a subclass defined outside torch may not redefine any of it
_READ_BY_CHECKS = frozenset({
    "detach", "item", "shape", "size", "dtype", "device", "numpy", "tolist", "as_subclass", "to", "cpu", "double",
    "float", "reshape", "view", "clone", "contiguous", "__eq__", "__ne__", "__bool__", "__float__", "__int__",
    "__index__", "__array__", "__len__", "__iter__", "__getitem__", "__getattribute__", "__getattr__", "ndim",
    "numel", "all", "any", "abs", "sum", "is_floating_point", "__torch_function__", "__torch_dispatch__",
})
_detach = torch._C.TensorBase.detach
_as_subclass = torch._C.TensorBase.as_subclass


def _overridden(value: object, names: frozenset[str]) -> list[str]:
    """Names of ``names`` that a class outside torch / numpy in the MRO of ``value`` defines."""
    found = []
    for klass in type(value).__mro__:
        module = getattr(klass, "__module__", "") or ""
        if module.split(".")[0] in ("torch", "numpy", "builtins"):
            continue
        found += [name for name in vars(klass) if name in names and name not in found]
    return found


def _plain_tensor(value: torch.Tensor, name: str = "output") -> torch.Tensor:
    """A plain ``torch.Tensor`` view of ``value``, read through the base class's own methods.

    A subclass cannot fake comparisons through it; one that redefines what the checks read
    (``detach``, ``item``, ``shape``, ...) is refused with :class:`TamperingError`.
    """
    __tracebackhide__ = True  # a failure points at the test cell, not here
    if type(value) is not torch.Tensor:
        lies = _overridden(value, _READ_BY_CHECKS)
        if lies:
            raise TamperingError(f"{name}: got a {type(value).__name__}, a torch.Tensor subclass that redefines "
                                 f"{', '.join(sorted(lies))}: return a plain torch.Tensor")
    with torch._C.DisableTorchFunctionSubclass():
        return _as_subclass(_detach(value), torch.Tensor)


def _plain(value: Any) -> Any:
    """Python numbers, strings and sequences rebuilt from their base types (no custom __eq__)."""
    if isinstance(value, bool | np.bool_):
        return bool(value) if isinstance(value, np.bool_) else bool.__bool__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, np.integer | np.floating):
        if type(value).__module__ != "numpy" and _overridden(value, _READ_BY_CHECKS):
            raise TamperingError(f"got a {type(value).__name__}, a numpy subclass that redefines "
                                 f"{', '.join(sorted(_overridden(value, _READ_BY_CHECKS)))}: return plain numbers")
        return np.generic.item(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in tuple.__iter__(value))
    if isinstance(value, list):
        return [_plain(v) for v in list.__iter__(value)]
    return value


def _to_tensor(value: Any, name: str) -> torch.Tensor:
    __tracebackhide__ = True  # a failure points at the test cell, not here
    if isinstance(value, torch.Tensor):
        return _plain_tensor(value, name)
    if type(value) is not np.ndarray and isinstance(value, np.ndarray | np.generic) and _overridden(value, _READ_BY_CHECKS):
        raise TamperingError(f"{name}: got a {type(value).__name__}, a numpy subclass that redefines "
                             f"{', '.join(sorted(_overridden(value, _READ_BY_CHECKS)))}: return plain numbers")
    if isinstance(value, np.ndarray | int | float | bool | np.number | list | tuple):
        try:
            return _as_tensor(_np_asarray(value))
        except (TypeError, ValueError) as exc:
            raise CheckFailed(f"{name}: could not read {type(value).__name__} as numbers ({exc})") from None
    raise CheckFailed(f"{name}: expected a tensor or numbers, got {type(value).__name__}")


def assert_shape(actual: Any, shape: Iterable[int], name: str = "output", hint: str = "") -> None:
    """Fail with a readable message unless ``actual`` is a tensor of exactly ``shape``."""
    __tracebackhide__ = True  # a failure points at the test cell, not here
    shape = tuple(shape)
    if not isinstance(actual, torch.Tensor):
        raise CheckFailed(f"{name}: expected a torch.Tensor of shape {shape}, got {type(actual).__name__}")
    got = tuple(_plain_tensor(actual, name).shape)
    if got != shape:
        msg = f"{name}: expected shape {shape}, got {got}"
        raise CheckFailed(f"{msg}: {hint}" if hint else msg)


def assert_close(
    actual: Any, expected: Any, name: str = "output", atol: float | None = None, rtol: float | None = None,
    hint: str = "", check_dtype: bool = False,
) -> None:
    """Assert that ``actual`` matches ``expected`` within the course tolerances.

    Shapes must match exactly; values within ``atol + rtol * |expected|`` (defaults
    from :data:`TOLERANCES` for the expected dtype). NaN matches NaN only where both
    are NaN. The message names the worst element.
    """
    __tracebackhide__ = True  # a failure points at the test cell, not here
    exp = _to_tensor(expected, name)
    if isinstance(expected, torch.Tensor) and not isinstance(actual, torch.Tensor):
        raise CheckFailed(f"{name}: expected a torch.Tensor, got {type(actual).__name__}")
    act = _to_tensor(actual, name)
    if tuple(act.shape) != tuple(exp.shape):
        msg = f"{name}: expected shape {tuple(exp.shape)}, got {tuple(act.shape)}"
        raise CheckFailed(f"{msg}: {hint}" if hint else msg)
    if check_dtype and act.dtype != exp.dtype:
        raise CheckFailed(f"{name}: expected dtype {exp.dtype}, got {act.dtype}")
    d_atol, d_rtol = tolerance(exp.dtype if exp.is_floating_point() else act.dtype)
    atol = d_atol if atol is None else atol
    rtol = d_rtol if rtol is None else rtol
    act64 = act.to("cpu", torch.float64)
    exp64 = exp.to("cpu", torch.float64)
    ok = _isclose(act64, exp64, atol=atol, rtol=rtol, equal_nan=True)
    if bool(ok.all()):
        return
    err = (act64 - exp64).abs().nan_to_num(nan=float("inf"))
    err[ok] = -1.0
    flat = int(err.argmax())
    idx = tuple(int(i) for i in np.unravel_index(flat, tuple(exp.shape))) if exp.ndim else ()
    where = f" at index {idx}" if idx else ""
    msg = (
        f"{name}: {int((~ok).sum())} of {ok.numel()} values differ; worst{where}: "
        f"expected {exp64.reshape(-1)[flat].item():.6g}, got {act64.reshape(-1)[flat].item():.6g} "
        f"(atol={atol:g}, rtol={rtol:g})"
    )
    raise CheckFailed(f"{msg}. {hint}" if hint else msg)


def assert_equal(actual: Any, expected: Any, name: str = "answer", hint: str = "") -> None:
    """Exact equality for ints, strings and tuples, with the two values in the message.

    Both sides are first rebuilt from Python's base types, so an object whose ``__eq__``
    always answers True (or an ``int`` subclass that lies) does not pass.
    """
    __tracebackhide__ = True  # a failure points at the test cell, not here
    actual, expected = _plain(actual), _plain(expected)
    plain_types = (bool, int, float, str, tuple, list, type(None))
    if isinstance(expected, plain_types) and not isinstance(actual, plain_types):
        raise CheckFailed(f"{name}: expected {expected!r} ({type(expected).__name__}), got a {type(actual).__name__}")
    if actual != expected or type(actual) is bool and type(expected) is not bool:
        msg = f"{name}: expected {expected!r}, got {actual!r}"
        raise CheckFailed(f"{msg}. {hint}" if hint else msg)


# --------------------------------------------------------------------------- rules

FORBIDDEN_GROUPS: dict[str, frozenset[str]] = {
    "conv": frozenset({
        "convolution", "_convolution", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
        "conv_transpose3d", "cudnn_convolution", "cudnn_convolution_transpose", "mkldnn_convolution",
        "_nnpack_spatial_convolution", "_slow_conv2d_forward", "slow_conv_dilated2d", "slow_conv_transpose2d",
        "thnn_conv2d", "_convolution_mode", "convolution_overrideable", "miopen_convolution",
        "convolution_backward", "convolution_backward_overrideable", "_convolution_double_backward",
    }),
    "unfold": frozenset({"im2col", "col2im"}),
    "pool": frozenset({
        "max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "max_pool3d_with_indices",
        "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool2d", "_adaptive_avg_pool2d",
        "adaptive_max_pool2d", "mkldnn_max_pool2d", "max_unpool2d", "fractional_max_pool2d",
        "max_pool2d_with_indices_backward", "avg_pool2d_backward", "quantized_max_pool2d",
    }),
    "norm": frozenset({
        "batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
        "cudnn_batch_norm", "miopen_batch_norm", "group_norm", "native_group_norm", "layer_norm",
        "native_layer_norm", "instance_norm", "_batch_norm_impl_index", "_batch_norm_with_update",
        "_batch_norm_no_update",
    }),
}


_GATE_KEYS = ("CPU", "CUDA", "CompositeExplicitAutograd", "CompositeImplicitAutograd")


@functools.cache
def _gate_targets(name: str) -> tuple[tuple[str, str], ...]:
    """(overload name for ``Library.impl``, dispatch key) for every kernel the ATen operator ``name`` has."""
    packet = getattr(torch.ops.aten, name, None)
    if packet is None:
        return ()
    targets = []
    for overload in packet.overloads():
        qualified = name if overload == "default" else f"{name}.{overload}"
        for key in _GATE_KEYS:
            if torch._C._dispatch_has_kernel_for_dispatch_key(f"aten::{qualified}", key):
                targets.append((qualified, key))
    return tuple(targets)


class _ForbidMode(TorchDispatchMode):
    """The rule as a dispatch mode (the readable error) and, under it, a gate in PyTorch's dispatcher.

    While the block runs, every forbidden ATen operator has a kernel of its own that refuses
    to run, registered for the CPU / CUDA / composite keys: code that takes the mode off the
    dispatch stack (``_disable_current_modes()``, popping the stack, redispatching below the
    Python key) still meets the gate, which then reports the rule as tampered with. On leaving
    the block the gate is removed and the built-in kernels are back.
    """

    def __init__(self, banned: frozenset[str], label: str) -> None:
        super().__init__()
        self.banned = banned
        self.label = label
        self._gate = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        __tracebackhide__ = True  # a failure points at the test cell, not here
        name = func.overloadpacket.__name__
        if name in self.banned:
            raise self._refusal(name)
        return func(*args, **(kwargs or {}))

    def _refusal(self, name: str) -> CheckFailed:
        return ForbiddenOpError(
            f"{self.label} called the built-in operator aten.{name}, which this exercise forbids: "
            "compute it yourself from elementary tensor operations"
        )

    def _on_stack(self) -> bool:
        c = torch._C
        return any(c._get_dispatch_stack_at(i) is self for i in range(c._len_torch_dispatch_stack()))

    def _gate_kernel(self, name: str) -> Callable:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True  # a failure points at the test cell, not here
            if self._on_stack():
                raise self._refusal(name)
            raise TamperingError(
                f"{self.label} called the built-in operator aten.{name} with the forbid_ops rule taken off "
                "the dispatch stack: this exercise forbids it, and taking the rule off costs the test"
            )
        return refuse

    def _close_gate(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate._destroy()

    def __enter__(self):
        import warnings

        taken = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "overriding a previously registered kernel": that is the point
            gate = torch.library.Library("aten", "IMPL")
            for name in sorted(self.banned):
                refuse = self._gate_kernel(name)
                for qualified, key in _gate_targets(name):
                    try:
                        gate.impl(qualified, refuse, key)
                    except RuntimeError as exc:
                        if "already" not in str(exc):
                            raise
                        taken.append(f"aten.{qualified} ({key})")
        self._gate = gate
        if taken:
            self._close_gate()
            raise TamperingError(f"a Python kernel was registered for {', '.join(taken[:3])}: the forbid_ops rule "
                                 "of this test cannot be enforced, so the test fails")
        return super().__enter__()

    def __exit__(self, exc_type, exc, tb):
        gate = self._gate
        intact = gate is not None and getattr(gate, "m", None) is not None
        try:
            result = super().__exit__(exc_type, exc, tb)
        finally:
            self._close_gate()
        if not intact and exc_type is None:
            raise TamperingError(f"the forbid_ops rule around {self.label} was removed while it ran")
        return result


def forbid_ops(*groups_or_ops: str, label: str = "your code") -> _ForbidMode:
    """Context manager: any call of the named ATen operators inside it raises ForbiddenOpError.

    Accepts group names from :data:`FORBIDDEN_GROUPS` (``"conv"``, ``"unfold"``,
    ``"pool"``, ``"norm"``) or raw ATen operator names.
    """
    if not groups_or_ops:
        raise ValueError("name at least one operator or group to forbid")
    banned: set[str] = set()
    for item in groups_or_ops:
        banned |= FORBIDDEN_GROUPS.get(item, {item})
    return _ForbidMode(frozenset(banned), label)


def referenced_names(fn: Callable | type) -> set[str]:
    """Every identifier and attribute name in the source of ``fn`` (for static rules).

    For a class, the union over the functions defined in its body: Python cannot read
    the source of a class defined in a notebook cell, but it can read its methods'.
    """
    __tracebackhide__ = True  # a failure points at the test cell, not here
    if inspect.isclass(fn):
        names: set[str] = set()
        for member in vars(fn).values():
            func = member.__func__ if isinstance(member, staticmethod | classmethod) else member
            if inspect.isfunction(func):
                names |= referenced_names(func)
        return names
    try:
        src = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise CheckFailed(f"could not read the source of {getattr(fn, '__name__', fn)!r}: {exc}") from None
    names = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.name.split(".")[-1])
    return names


def assert_not_uses(fn: Callable | type, forbidden: Iterable[str], hint: str = "") -> None:
    """Fail if the source of ``fn`` mentions any forbidden name (e.g. ``conv2d``, ``unfold``)."""
    __tracebackhide__ = True  # a failure points at the test cell, not here
    used = sorted(referenced_names(fn) & set(forbidden))
    if used:
        msg = f"{fn.__name__} uses {', '.join(used)}, which this exercise forbids"
        raise CheckFailed(f"{msg}: {hint}" if hint else msg)
