"""The device-mixing check: it catches planted bugs, and no graded function mixes devices.

``cnncourse.devices.guard`` runs a function with its inputs on a stand-in device (see the
module's docstring). The first tests plant the classic bugs and prove they are caught;
the sweep at the end executes each exercise notebook once, replaces every graded function
by its guarded version and re-runs the function's test cells, hidden tests included.
"""

from __future__ import annotations

import ast
import json

import pytest
import torch
from harness import graded_cells_after, source_notebook
from torch import nn

from cnncourse.devices import DeviceMixing, guard
from cnncourse.kernel import KernelSession, cell_key, load_cells


def _boxes(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * 50
    return torch.cat([xy, xy + torch.rand(n, 2, generator=gen) * 30 + 1], 1), torch.rand(n, generator=gen)


def _nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, planted: bool) -> torch.Tensor:
    from torchvision.ops import box_iou

    order = torch.argsort(scores, descending=True)
    iou = box_iou(boxes[order], boxes[order])
    device = None if planted else boxes.device
    alive = torch.ones(len(order), dtype=torch.bool, device=device)  # the planted bug: no device
    keep = []
    for pos in range(len(order)):
        if alive[pos]:
            keep.append(int(order[pos]))
            alive[pos + 1:] &= iou[pos, pos + 1:] <= threshold
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)


def test_a_planted_mixing_bug_in_nms_is_caught_and_the_fix_passes():
    from torchvision.ops import nms

    boxes, scores = _boxes(30)
    kept = guard(_nms)(boxes, scores, 0.5, planted=False)
    assert kept.device.type == "cpu", "results come back as ordinary CPU tensors"
    assert torch.equal(kept, nms(boxes, scores, 0.5))
    with pytest.raises(DeviceMixing, match=r"_nms: line \d+ \(alive\[pos \+ 1:\] &= .*aten\.bitwise_and_.*shape \(29,\)"):
        guard(_nms)(boxes, scores, 0.5, planted=True)
    assert torch.equal(_nms(boxes, scores, 0.5, planted=True), kept), "unguarded, the bug is invisible"


def test_a_result_left_on_the_cpu_is_caught():
    def keep_all(boxes: torch.Tensor) -> torch.Tensor:
        return torch.tensor(list(range(len(boxes))))

    with pytest.raises(DeviceMixing, match="returned CPU tensor"):
        guard(keep_all)(torch.rand(4, 4))


def test_results_moved_to_the_cpu_on_purpose_are_fine():
    def summarise(x: torch.Tensor) -> list[torch.Tensor]:
        out = (x * 2).cpu()
        return [out[i] + 1 for i in range(len(out))]

    assert [float(v) for v in guard(summarise)(torch.tensor([1.0, 2.0]))] == [3.0, 5.0]


def test_precision_with_a_cpu_arange_is_caught():
    def precision(is_tp: torch.Tensor, planted: bool) -> torch.Tensor:
        ranks = torch.arange(1, len(is_tp) + 1) if planted else torch.arange(1, len(is_tp) + 1, device=is_tp.device)
        return torch.cumsum(is_tp.double(), 0) / ranks

    is_tp = torch.tensor([True, False, True])
    assert torch.allclose(guard(precision)(is_tp, False), torch.tensor([1.0, 0.5, 2 / 3], dtype=torch.float64))
    with pytest.raises(DeviceMixing, match="aten.div"):
        guard(precision)(is_tp, True)


def test_a_function_with_a_device_parameter_gets_the_stand_in():
    def anchors(n: int, device: torch.device | str = "cpu", planted: bool = False) -> torch.Tensor:
        return torch.arange(n, dtype=torch.float32, device=None if planted else device)

    assert torch.equal(guard(anchors)(3), torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(DeviceMixing, match="returned CPU tensor"):
        guard(anchors)(3, planted=True)


def test_the_rules_cuda_allows_are_allowed():
    def allowed(x: torch.Tensor) -> torch.Tensor:
        y = x * torch.tensor(2.0)  # a 0-dim CPU tensor may meet a device tensor
        y = y[torch.tensor([0, 2])]  # CPU index tensors may index a device tensor
        z = torch.zeros(2, device=x.device).copy_(torch.ones(2))  # copies cross devices
        w = torch.zeros_like(y) + x.new_ones(2) + torch.full((2,), 3.0, device=x.device)
        return (w + z + y.to(torch.float64).float()).cpu().to(x.device)

    x = torch.tensor([1.0, 2.0, 3.0])
    assert guard(allowed)(x).tolist() == [7.0, 11.0]


def test_module_parameters_move_with_the_inputs_and_gradients_flow():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())

    def saliency(net: nn.Module, X: torch.Tensor, planted: bool) -> torch.Tensor:
        X = X.clone().requires_grad_(True)
        out = net(X).sum()
        if planted:
            out = out + torch.ones(3).sum() * net[0].weight.flatten()[:3].sum() * torch.ones(3)
            out = out.sum()
        out.backward()
        return X.grad.abs()

    X = torch.rand(2, 1, 6, 6)
    assert torch.allclose(guard(saliency)(net, X, False), saliency(net, X, False))
    assert net[0].weight.device.type == "cpu" and type(net[0].weight) is nn.Parameter
    with pytest.raises(DeviceMixing):
        guard(saliency)(net, X, True)


def test_a_layer_used_twice_moves_once():
    layer = nn.Linear(2, 2)
    net = nn.Sequential(layer, nn.ReLU(), layer)
    X = torch.rand(3, 2)
    assert torch.allclose(guard(lambda m, x: m(x))(net, X), net(X))


def test_a_callable_argument_is_the_callers_code():
    A = torch.rand(3, 3, dtype=torch.float64)

    def grad_estimate(f, x: torch.Tensor, planted: bool) -> torch.Tensor:
        h = 1e-6
        eye = torch.eye(len(x), dtype=x.dtype, device=None if planted else x.device)
        return torch.stack([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in eye])

    x = torch.rand(3, dtype=torch.float64)
    got = guard(grad_estimate)(lambda t: t @ A @ t, x, False)  # the caller's closure holds a CPU matrix
    assert torch.allclose(got, (A + A.T) @ x, atol=1e-5)
    with pytest.raises(DeviceMixing):
        guard(grad_estimate)(lambda t: t @ A @ t, x, True)


def test_gradients_flow_through_the_moves():
    x = torch.rand(4, requires_grad=True)
    y = guard(lambda t: (t * torch.full_like(t, 3.0)).sum())(x)
    assert y.device.type == "cpu" and y.requires_grad
    y.backward()
    assert torch.equal(x.grad, torch.full((4,), 3.0))


def test_numpy_on_a_device_tensor_is_caught():
    with pytest.raises(DeviceMixing, match="numpy"):
        guard(lambda x: x.numpy().sum())(torch.rand(3))


# ---------------------------------------------------------------- the sweep over the exercises

TOPICS = sorted(p.parent.name for p in source_notebook("x").parents[1].glob("*/*.ipynb"))
# Training functions (train_*, or any that calls get_device()) pick their own device:
# `make test-gpu` covers them.
NOT_GUARDED_PREFIXES = ("train_",)
# Graded functions the check cannot run, and why.
NOT_COVERED: dict[str, dict[str, str]] = {
    "08_transfer": {"finetune": "trains: its optimizer's state must follow the real device"},
    "12_compression": {"distill": "trains on the notebook's global device"},
    "13_beyond": {"nt_xent_loss": "its test runs gradcheck, whose checks compare devices inside torch"},
}
# Graded functions that mix devices today, with the fix they need (see docs/platforms.md).
KNOWN_MIXING: dict[str, set[str]] = {}


def graded_functions(cells: list[dict]) -> dict[str, list[str]]:
    """solution cell key -> names of the top-level functions it defines (not classes)."""
    found = {}
    for cell in cells:
        if cell["cell_type"] == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            tree = ast.parse("".join(cell["source"]))
            source = "".join(cell["source"])
            names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)
                     and not n.name.startswith(("_", *NOT_GUARDED_PREFIXES))
                     and "get_device(" not in (ast.get_source_segment(source, n) or "")]
            if names:
                found[cell_key(cell)] = names
    return found


def mixing_functions(topic: str) -> dict[str, str]:
    """name -> the first device-mixing error its test cells raise when it runs guarded."""
    path = source_notebook(topic)
    cells = load_cells(path)
    found: dict[str, str] = {}
    with KernelSession(path.parent) as kernel:
        for cell in cells:
            if cell["cell_type"] == "code":
                result = kernel.run("".join(cell["source"]))
                assert result.ok, f"{topic}: cell {cell_key(cell)!r} fails on the reference: {result}"
        assert kernel.run("from cnncourse.devices import guard as _device_guard").ok
        for key, names in graded_functions(cells).items():
            for name in names:
                if name in NOT_COVERED.get(topic, {}):
                    continue
                assert kernel.run(f"_unguarded = {name}\n{name} = _device_guard({name})").ok
                for i in graded_cells_after(cells, key):
                    result = kernel.run("".join(cells[i]["source"]))
                    if not result.ok:
                        found[name] = str(result)
                        break
                assert kernel.run(f"{name} = _unguarded").ok
    return found


@pytest.mark.parametrize("topic", TOPICS)
def test_no_graded_function_mixes_devices(topic):
    found = mixing_functions(topic)
    known = KNOWN_MIXING.get(topic, set())
    new = {k: v for k, v in found.items() if k not in known}
    assert not new, f"{topic}: graded functions that mix devices:\n" + json.dumps(new, indent=1)
    fixed = known - set(found)
    assert not fixed, f"{topic}: {sorted(fixed)} no longer mix devices: remove them from KNOWN_MIXING"
