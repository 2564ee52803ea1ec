"""cnnlab.checks: the helpers test cells rely on must fail when they should, with clear messages."""

import re

import pytest
import torch
import torch.nn.functional as F

from cnnlab.checks import (
    ForbiddenOpError,
    assert_close,
    assert_equal,
    assert_not_uses,
    assert_shape,
    forbid_ops,
    referenced_names,
    tolerance,
)


def test_assert_close_accepts_within_tolerance_and_names_the_worst_element():
    x = torch.randn(3, 4)
    assert_close(x + 1e-6, x)
    y = x.clone()
    y[1, 2] += 1.0
    with pytest.raises(AssertionError, match=r"1 of 12 values differ; worst at index \(1, 2\)"):
        assert_close(y, x, "out")
    with pytest.raises(AssertionError, match=r"expected shape \(3, 4\), got \(4, 3\): hint"):
        assert_close(x.T, x, hint="hint")
    with pytest.raises(AssertionError, match="expected a torch.Tensor"):
        assert_close(x.tolist(), x)
    assert_close(3, 3.0)
    assert_close(torch.tensor([float("nan")]), torch.tensor([float("nan")]))
    with pytest.raises(AssertionError):
        assert_close(torch.tensor([float("nan")]), torch.tensor([0.0]))
    with pytest.raises(AssertionError, match="dtype"):
        assert_close(x.double(), x, check_dtype=True)


def test_tolerances_by_dtype():
    assert tolerance(torch.float64) < tolerance(torch.float32) < tolerance(torch.float16)
    assert tolerance(torch.int64) == (0.0, 0.0)
    with pytest.raises(AssertionError):
        assert_close(torch.tensor([1.0], dtype=torch.float64) + 1e-6, torch.tensor([1.0], dtype=torch.float64))


def test_assert_shape_and_equal():
    assert_shape(torch.zeros(2, 3), (2, 3))
    with pytest.raises(AssertionError, match=r"expected shape \(2, 3\), got \(3, 2\): pad"):
        assert_shape(torch.zeros(3, 2), (2, 3), hint="pad")
    with pytest.raises(AssertionError, match="expected a torch.Tensor"):
        assert_shape([1, 2], (2,))
    assert_equal(5, 5)
    with pytest.raises(AssertionError, match="expected 5, got 6"):
        assert_equal(6, 5)
    with pytest.raises(AssertionError):
        assert_equal(True, 1)


def test_forbid_ops_blocks_every_route_to_the_kernel():
    x, w = torch.randn(1, 2, 6, 6), torch.randn(3, 2, 3, 3)
    conv = F.conv2d  # an alias taken before the rule is in force
    for call in (lambda: F.conv2d(x, w), lambda: conv(x, w), lambda: torch.nn.Conv2d(2, 3, 3)(x),
                 lambda: torch.conv2d(x, w), lambda: F.conv_transpose2d(x, w.transpose(0, 1))):
        with pytest.raises(ForbiddenOpError, match=r"aten\.conv"), forbid_ops("conv", label="f"):
            call()
    g = torch.randn(1, 3, 4, 4)  # torch.nn.grad's helpers go through aten.convolution_backward
    for call in (lambda: torch.nn.grad.conv2d_input(x.shape, w, g), lambda: torch.nn.grad.conv2d_weight(x, w.shape, g)):
        with pytest.raises(ForbiddenOpError, match="convolution"), forbid_ops("conv"):
            call()
    with pytest.raises(ForbiddenOpError, match="im2col"), forbid_ops("unfold"):
        F.unfold(x, 3)
    with pytest.raises(ForbiddenOpError), forbid_ops("pool"):
        F.max_pool2d(x, 2)
    with pytest.raises(ForbiddenOpError), forbid_ops("norm"):
        F.group_norm(x, 1)
    with forbid_ops("conv", "unfold"):  # elementary operations stay allowed
        (x[:, :, :3, :3] * w[0]).sum()
        x.unfold(2, 3, 1)
    F.conv2d(x, w)  # and the rule ends with the block
    with pytest.raises(ValueError):
        forbid_ops()


def test_static_name_rules():
    def uses_conv(x, w):
        return F.conv2d(x, w)

    def clean(x):
        return x.sum()

    assert "conv2d" in referenced_names(uses_conv)
    with pytest.raises(AssertionError, match="uses conv2d"):
        assert_not_uses(uses_conv, {"conv2d", "unfold"})
    assert_not_uses(clean, {"conv2d"})

    class Layer:
        def forward(self, x):
            return F.max_pool2d(x, 2)

        @staticmethod
        def helper(x):
            return x.unfold(2, 2, 2)

    assert {"max_pool2d", "unfold"} <= referenced_names(Layer)
    with pytest.raises(AssertionError, match="Layer uses max_pool2d"):
        assert_not_uses(Layer, {"max_pool2d"})


def test_comparisons_cannot_be_faked_by_student_objects():
    class Liar(int):
        def __eq__(self, other):
            return True

        def __ne__(self, other):
            return False

        __hash__ = int.__hash__

    class Anything:
        def __eq__(self, other):
            return True

        def __ne__(self, other):
            return False

    class FakeTensor(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            if func is torch.isclose:
                return torch.ones_like(args[0], dtype=torch.bool)
            return super().__torch_function__(func, types, args, kwargs or {})

    with pytest.raises(AssertionError, match="expected 5, got 4"):
        assert_equal(Liar(4), 5)
    with pytest.raises(AssertionError, match="got a Anything"):
        assert_equal(Anything(), 5)
    with pytest.raises(AssertionError, match=r"expected \(1, 2\), got \(1, 3\)"):
        assert_equal((1, Liar(3)), (1, 2))
    assert_equal([1, 2.0], [1, 2])
    fake = torch.zeros(3).as_subclass(FakeTensor)
    with pytest.raises(AssertionError, match="FakeTensor, a torch.Tensor subclass that redefines __torch_function__"):
        assert_close(fake, torch.ones(3))  # a subclass that could lie about what the check reads is refused


def test_failed_checks_show_the_message_first_and_only_the_test_cells_frames(capsys):
    """In IPython a failed check prints its message, then the failing test-cell line; no helper frames."""
    from IPython.core.interactiveshell import InteractiveShell

    from cnnlab.checks import CheckFailed

    shell = InteractiveShell.instance()
    try:
        cell = (
            "import torch\n"
            "from cnnlab.checks import assert_close, forbid_ops\n"
            "def my_conv(x):\n"
            "    return torch.nn.functional.conv2d(x, torch.ones(1, 1, 3, 3))\n"
            "assert_close(torch.ones(3), torch.zeros(3), 'conv output', hint='did you pad both sides?')\n"
        )
        result = shell.run_cell(cell)
        shown = _strip_ansi(capsys.readouterr().out)
        assert isinstance(result.error_in_exec, CheckFailed)
        lines = [line for line in shown.splitlines() if line.strip()]
        assert lines[0].startswith("CheckFailed: conv output: 3 of 3 values differ"), shown
        assert lines[0].endswith("did you pad both sides?"), shown
        assert "----> 5 assert_close(torch.ones(3)" in shown, "the failing line of the cell is shown"
        assert "checks.py" not in shown and "raise CheckFailed" not in shown, shown
        assert shown.count("values differ") == 1, "the message is shown once"

        shell.run_cell("with forbid_ops('conv', label='my_conv'):\n    my_conv(torch.ones(1, 1, 5, 5))\n")
        shown = _strip_ansi(capsys.readouterr().out)
        assert shown.lstrip().startswith("ForbiddenOpError: my_conv called the built-in operator aten.conv"), shown
        assert "return torch.nn.functional.conv2d(x" in shown, "the learner's own call is shown"
        assert "checks.py" not in shown and "site-packages/torch" not in shown, shown
    finally:
        InteractiveShell.clear_instance()


def test_failed_checks_stay_assertion_errors_outside_ipython():
    from cnnlab.checks import CheckFailed

    with pytest.raises(AssertionError) as info:
        assert_equal(6, 5, "answer")
    assert isinstance(info.value, CheckFailed)
    assert info.value._render_traceback_() == ["CheckFailed: answer: expected 5, got 6"]
    assert issubclass(ForbiddenOpError, CheckFailed)


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
