"""Topic 03_backprop: mutants the hidden tests must reject, plus the shared topic checks."""

from harness import Mutant, check_autograde, check_mutants, check_release, check_structure

MUTANTS = [
    # numerical_gradient
    Mutant("numerical_gradient", "one-sided (forward) difference",
           old="grad_flat[i] = (f_plus - f_minus) / (2 * h)", new="grad_flat[i] = (f_plus - float(f(work))) / h"),
    Mutant("numerical_gradient", "divides by h instead of 2h", old="/ (2 * h)", new="/ h"),
    Mutant("numerical_gradient", "never restores the perturbed entry", old="        flat[i] = original\n", new=""),
    Mutant("numerical_gradient", "keeps a view of the entry instead of its value",
           old="original = flat[i].item()", new="original = flat[i]"),
    Mutant("numerical_gradient", "asks autograd instead of differencing", old="    return grad\n",
           new="    work.requires_grad_(True)\n    return torch.autograd.grad(f(work), work)[0]\n", visible=True),
    # relative_error
    Mutant("relative_error", "no floor on the denominator (0/0 is NaN)", old=".clamp(min=1e-8)", new=""),
    Mutant("relative_error", "one global ratio instead of per element",
           old="ratio = (a - b).abs() / (a.abs() + b.abs()).clamp(min=1e-8)",
           new="ratio = (a - b).abs().max() / (a.abs() + b.abs()).max().clamp(min=1e-8)"),
    Mutant("relative_error", "mean instead of max", old="float(ratio.max())", new="float(ratio.mean())"),
    Mutant("relative_error", "|a + b| instead of |a| + |b|", old="(a.abs() + b.abs())", new="(a + b).abs()"),
    # conv2d_backward
    Mutant("conv2d_backward", "crops the padded gradient at the top-left corner",
           old="dx = dxp[:, :, padding : padding + h, padding : padding + w]", new="dx = dxp[:, :, :h, :w]"),
    Mutant("conv2d_backward", "ignores dilation in the row offset",
           old="rows = slice(u * dilation, u * dilation + stride * (h_out - 1) + 1, stride)",
           new="rows = slice(u, u + stride * (h_out - 1) + 1, stride)"),
    Mutant("conv2d_backward", "averages db over the batch", old="db = dout.sum(dim=(0, 2, 3))",
           new="db = dout.mean(dim=0).sum(dim=(1, 2))"),
    Mutant("conv2d_backward", "flips the kernel in the scatter", old="weight[:, :, u, v])",
           new="weight[:, :, kh - 1 - u, kw - 1 - v])"),
    Mutant("conv2d_backward", "assigns overlapping contributions instead of adding them",
           old="dxp[:, :, rows, cols] += ", new="dxp[:, :, rows, cols] = "),
    Mutant("conv2d_backward", "takes dx from torch.nn.grad.conv2d_input", old="    return dx, dw, db\n",
           new="    dx = torch.nn.grad.conv2d_input(x.shape, weight, dout, stride, padding, dilation)\n"
               "    return dx, dw, db\n", visible=True),
    # Conv2dFunction
    Mutant("Conv2dFunction", "forgets the hyper-parameters in backward",
           old="conv2d_backward(grad_out, x, weight, *ctx.hyper)", new="conv2d_backward(grad_out, x, weight)"),
    Mutant("Conv2dFunction", "ignores the upstream gradient", old="conv2d_backward(grad_out,",
           new="conv2d_backward(torch.ones_like(grad_out),"),
    Mutant("Conv2dFunction", "forward calls F.conv2d",
           old="return conv2d_forward(x, weight, bias, stride, padding, dilation)",
           new="return F.conv2d(x, weight, bias, stride, padding, dilation)", visible=True),
    Mutant("Conv2dFunction", "returns a bias gradient when there is no bias",
           old="(db if ctx.has_bias else None)", new="db"),
    Mutant("Conv2dFunction", "returns the gradients in the wrong order", old="return dx, dw,", new="return dw, dx,"),
    # he_std
    Mutant("he_std", "LeCun / Xavier-style 1 / fan_in", old="math.sqrt(2.0 / (1.0 + negative_slope**2))",
           new="math.sqrt(1.0 / (1.0 + negative_slope**2))", visible=True),
    Mutant("he_std", "returns the variance", old="return gain / math.sqrt(fan)", new="return gain**2 / fan", visible=True),
    Mutant("he_std", "uniform bound instead of std", old="return gain / math.sqrt(fan)",
           new="return math.sqrt(3.0) * gain / math.sqrt(fan)", visible=True),
    Mutant("he_std", "ignores the negative slope", old="(1.0 + negative_slope**2)", new="1.0", visible=True),
    Mutant("he_std", "slope not squared", old="(1.0 + negative_slope**2)", new="(1.0 + negative_slope)"),
    Mutant("he_std", "fan-in counts the input channels only", old="fan = shape[1] * receptive if", new="fan = shape[1] if",
           visible=True),
    Mutant("he_std", "fan_in and fan_out swapped", old='if mode == "fan_in" else', new='if mode == "fan_out" else',
           visible=True),
    Mutant("he_std", "fan from the first two dimensions only", old="receptive = math.prod(shape[2:])",
           new="receptive = 1"),
]

TOPIC = "03_backprop"


def test_exercise_structure():
    check_structure(TOPIC, MUTANTS)


def test_mutants_rejected():
    check_mutants(TOPIC, MUTANTS)


def test_autograde_scores(tmp_path):
    check_autograde(TOPIC, tmp_path)


def test_release_matches_source_cells():
    check_release(TOPIC)
