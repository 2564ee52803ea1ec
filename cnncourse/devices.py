"""Catch device mixing on a CPU-only machine: the bug that only shows on a GPU.

A function such as ``nms`` that builds ``torch.ones(n)`` without ``device=`` works on the
CPU and fails on CUDA with "Expected all tensors to be on the same device". This module
finds that mistake without a GPU.

How it works. :func:`guard` wraps a graded function. Each call moves the tensor
arguments (also inside lists, tuples and dicts, and the parameters and buffers of an
``nn.Module`` argument) onto a stand-in device: an :class:`OnDevice` tensor keeps its
real values on the CPU but reports ``device == meta``, so code that follows the
course's rule (``torch.zeros(n, device=x.device)``, ``x.new_zeros(n)``,
``torch.zeros_like(x)``) creates stand-in tensors too, while ``torch.zeros(n)`` creates
an ordinary CPU tensor. A ``TorchDispatchMode`` active during the call sees every ATen
operator and applies CUDA's rule: a CPU tensor with one or more dimensions may not meet a
device tensor in one operator (0-dim CPU tensors may, as on CUDA; copies, ``.to()`` and
index tensors may, as on CUDA). It also refuses ``.numpy()`` on a device tensor. When
the call returns, results are moved back to plain CPU tensors (moves in and out keep the
autograd history, so a test can still differentiate through a result), so the test cell's
comparisons against the library run as usual; a result that came back on the CPU for
inputs on the device is reported as well (on a GPU it would silently leave the device),
unless it descends from an explicit ``.cpu()`` / ``.to("cpu")`` inside the function.

A function without tensor arguments that takes a ``device`` parameter (``make_anchors``)
is called with the stand-in device, and its results must live there.

Problems are raised as :class:`DeviceMixing` (an ``AssertionError``) so a test cell fails
on them with a message that names the operator.
"""

from __future__ import annotations

import functools
import inspect
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils.stateless import _reparametrize_module
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

STAND_IN = torch.device("meta")
# Operators that may legally combine devices on CUDA: copies and device moves.
_CROSS_DEVICE_OK = {"aten::copy_", "aten::_to_copy", "aten::to", "aten::_copy_from",
                    "aten::lift_fresh", "aten::lift_fresh_copy", "aten::_local_scalar_dense"}
# Index tensors may stay on the CPU when indexing a CUDA tensor.
_INDEX_OPS = {"aten::index", "aten::index_put", "aten::index_put_", "aten::_index_put_impl_"}


class DeviceMixing(AssertionError):
    """A tensor on the CPU met a tensor on the inputs' device (a CUDA failure on a GPU)."""


class OnDevice(torch.Tensor):
    """A tensor that reports the stand-in device while holding its values on the CPU."""

    elem: torch.Tensor
    __torch_function__ = torch._C._disabled_torch_function_impl

    @staticmethod
    def __new__(cls, elem: torch.Tensor) -> OnDevice:
        out = torch.Tensor._make_wrapper_subclass(
            cls, elem.shape, strides=elem.stride(), storage_offset=elem.storage_offset(),
            dtype=elem.dtype, layout=elem.layout, device=STAND_IN, requires_grad=elem.requires_grad)
        out.elem = elem
        return out

    def __repr__(self) -> str:
        return f"OnDevice({self.elem!r})"

    def tolist(self) -> Any:
        return self.elem.tolist()

    def numpy(self, *args: Any, **kwargs: Any) -> Any:
        raise DeviceMixing(".numpy() on a tensor on the inputs' device (on CUDA: 'can't convert "
                           "cuda:0 device type tensor to numpy'); call .cpu() first")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        return self.numpy()

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN206
        # Outside a guarded call (a backward pass run later by the caller): compute on the
        # real values and keep the results on the stand-in device, as autograd expects.
        unwrapped = tree_map(_unwrap, (args, kwargs or {}))
        out = func(*unwrapped[0], **unwrapped[1])
        return tree_map(lambda x: OnDevice(x) if _is_cpu_tensor(x) else x, out)


_MOVED = "_moved_to_cpu_on_purpose"


def _mark_moved(x: Any) -> None:
    """Remember that a CPU tensor came from an explicit ``.cpu()`` (or from one that did)."""
    if _is_cpu_tensor(x):
        setattr(x, _MOVED, True)


def _unwrap(x: Any) -> Any:
    return x.elem if isinstance(x, OnDevice) else x


def _is_cpu_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and not isinstance(x, OnDevice) and x.device.type == "cpu"


def _shapes(tensors: list[torch.Tensor], most: int = 3) -> str:
    shown = ", ".join(str(tuple(t.shape)) for t in tensors[:most])
    return shown + (f" and {len(tensors) - most} more" if len(tensors) > most else "")


_SUSPENDED = [0]


_HERE = __file__
_TORCH_DIR = str(Path(torch.__file__).parent)


def _where() -> str:
    """``line N: <code>`` of the innermost frame outside torch and this module, or ''."""
    for frame in reversed(traceback.extract_stack()):
        if frame.filename != _HERE and not frame.filename.startswith(_TORCH_DIR):
            return f"line {frame.lineno} ({(frame.line or '').strip()}): "
    return ""


class DeviceRule(TorchDispatchMode):
    """Apply CUDA's same-device rule to every operator, with :class:`OnDevice` as the device."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN206
        kwargs = kwargs or {}
        if _SUSPENDED[0]:
            return func(*tree_map(_unwrap, args), **tree_map(_unwrap, kwargs))
        name = func._schema.name
        checked = (args[:1], kwargs) if name in _INDEX_OPS else (args, kwargs)
        if name in _INDEX_OPS and len(args) > 2:
            checked = ((args[0], *args[2:]), kwargs)  # self and values, not the indices
        flat, _ = tree_flatten(checked)
        on_device = any(isinstance(x, OnDevice) for x in flat)
        if on_device and name not in _CROSS_DEVICE_OK:
            stray = [x for x in flat if _is_cpu_tensor(x) and x.dim() > 0]
            if stray:
                raise DeviceMixing(
                    f"{_where()}{func} mixes tensors on the inputs' device with CPU tensor(s) of shape "
                    f"{_shapes(stray)}: create new tensors with device=x.device (torch.zeros(..., "
                    f"device=x.device, dtype=x.dtype), x.new_zeros(...), torch.zeros_like(x))")
        wants = kwargs.get("device")
        if wants is not None:  # an explicit device decides: the stand-in, or a real (CPU) one
            on_device = torch.device(wants) == STAND_IN
            if on_device:
                kwargs = {**kwargs, "device": torch.device("cpu")}
        flat_args = tree_map(_unwrap, args)
        out = func(*flat_args, **tree_map(_unwrap, kwargs))
        if not on_device:
            moved = wants is not None and name in ("aten::_to_copy", "aten::to") and any(
                isinstance(x, OnDevice) for x in flat)
            if moved or any(getattr(x, _MOVED, False) for x in flat):
                tree_map(_mark_moved, out)
            return out
        return tree_map(lambda x: OnDevice(x) if _is_cpu_tensor(x) else x, out)


class _ToStandIn(torch.autograd.Function):
    """Move a tensor onto the stand-in device, keeping its autograd history (as ``x.to(cuda)``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return OnDevice(x.detach())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return _unwrap(grad)


class _ToCpu(torch.autograd.Function):
    """Move a stand-in tensor back to the CPU, keeping its autograd history (as ``x.cpu()``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return _unwrap(x).detach().clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return OnDevice(grad) if _is_cpu_tensor(grad) else grad


def _move_in(x: torch.Tensor) -> torch.Tensor:
    if x.requires_grad:
        return _ToStandIn.apply(x)
    return OnDevice(x)


def _move_out(x: Any) -> Any:
    if not isinstance(x, OnDevice):
        return x
    if x.requires_grad:
        return _ToCpu.apply(x)
    return x.elem


def _caller_side(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A callable argument (the ``f`` of ``numerical_gradient(f, x)``) is the caller's code:
    it runs outside the rule on CPU values, and its tensor results join the device."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        _SUSPENDED[0] += 1
        try:
            out = fn(*to_cpu(args), **to_cpu(kwargs))
        finally:
            _SUSPENDED[0] -= 1
        return tree_map(lambda x: _move_in(x) if _is_cpu_tensor(x) else x, out)

    return call


def to_device(obj: Any) -> Any:
    """``obj`` with every tensor moved onto the stand-in device (lists, tuples, dicts too);
    callables other than modules become caller-side functions (see :func:`_caller_side`)."""
    def move(x: Any) -> Any:
        if _is_cpu_tensor(x):
            return _move_in(x)
        if callable(x) and not isinstance(x, (nn.Module, type, torch.Tensor)):
            return _caller_side(x)
        return x

    return tree_map(move, obj)


def _module_to_cpu(module: nn.Module) -> None:
    """A module the function built on the device (``prune_input_channels``) brought back, in place."""
    for m in module.modules():
        for name, p in m._parameters.items():
            if isinstance(p, OnDevice):
                m._parameters[name] = nn.Parameter(p.elem.detach(), requires_grad=p.requires_grad)
        for name, b in m._buffers.items():
            if isinstance(b, OnDevice):
                m._buffers[name] = b.elem


def to_cpu(obj: Any) -> Any:
    """``obj`` with every stand-in tensor back on the CPU (autograd history kept), modules included."""
    out = tree_map(_move_out, obj)
    for leaf in tree_flatten(out)[0]:
        if isinstance(leaf, nn.Module):
            _module_to_cpu(leaf)
    return out


def _cpu_results(obj: Any) -> list[torch.Tensor]:
    flat, _ = tree_flatten(obj)
    return [x for x in flat if _is_cpu_tensor(x) and not getattr(x, _MOVED, False)]


@contextmanager
def _modules_on_device(args: tuple, kwargs: dict) -> Iterator[None]:
    """Move the parameters and buffers of every ``nn.Module`` argument for the duration of a call."""
    modules = [m for m in (*args, *kwargs.values()) if isinstance(m, nn.Module)]
    if not modules:
        yield
        return
    module = modules[0]
    by_id: dict[int, OnDevice] = {}  # a weight shared by two layers moves once, as one tensor
    moved = {name: by_id.setdefault(id(t), OnDevice(t)) for name, t in (
        *module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False))}
    with _reparametrize_module(module, moved):
        with _modules_on_device(tuple(modules[1:]), {}):
            yield


class StandInFactories(TorchFunctionMode):
    """``torch.tensor(data, device=x.device)`` and friends copy Python data straight onto the
    device before any ATen operator runs; build them on the CPU and mark them instead."""

    FACTORIES = (torch.tensor, torch.as_tensor, torch.asarray, torch.from_numpy)

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN206
        kwargs = kwargs or {}
        wants = kwargs.get("device")
        if func in self.FACTORIES and not _SUSPENDED[0] and wants is not None and torch.device(wants) == STAND_IN:
            return OnDevice(func(*args, **{**kwargs, "device": torch.device("cpu")}))
        return func(*args, **kwargs)


_ACTIVE = [0]


def guard(fn: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
    """``fn`` run with its inputs on the stand-in device; raises :class:`DeviceMixing` on mixing.

    Nested guarded calls (``mean_average_precision`` calling a guarded ``box_iou``) run
    inside the outer call's mode unchanged.
    """
    label = name or getattr(fn, "__name__", repr(fn))
    try:
        takes_device = "device" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_device = False

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if _ACTIVE[0]:
            return fn(*args, **kwargs)
        had_tensor = any(_is_cpu_tensor(x) for x in tree_flatten((args, kwargs))[0])
        if not had_tensor and takes_device and "device" not in kwargs:
            kwargs = {**kwargs, "device": STAND_IN}
            had_tensor = True
        if not had_tensor:
            # Nothing to put on the device (a module alone, or data behind a DataLoader): the
            # function sees its arguments as they are; only tensors it asks for on the
            # stand-in device would be checked.
            return fn(*args, **kwargs)
        args, kwargs = to_device(args), to_device(kwargs)
        _ACTIVE[0] += 1
        try:
            with _modules_on_device(args, kwargs), StandInFactories(), DeviceRule():
                out = fn(*args, **kwargs)
        except DeviceMixing as err:
            raise DeviceMixing(f"{label}: {err}") from None
        finally:
            _ACTIVE[0] -= 1
        stray = _cpu_results(out)
        if stray:
            raise DeviceMixing(f"{label} returned CPU tensor(s) of shape {_shapes(stray)} for inputs "
                               f"on another device: create the result on the inputs' device")
        return to_cpu(out)

    guarded.__wrapped_by_device_guard__ = True  # type: ignore[attr-defined]
    return guarded
