"""Topic 12_compression: mutants the hidden tests must reject, plus the shared topic checks."""
from harness import Mutant, check_autograde, check_mutants, check_release, check_structure

MUTANTS = [
    # magnitude_prune
    Mutant("magnitude_prune", "prunes by signed value instead of magnitude",
           old="weight.detach().abs().flatten()", new="weight.detach().flatten()", visible=True),
    Mutant("magnitude_prune", "prunes the largest weights",
           old="k, largest=False)", new="k, largest=True)", visible=True),
    Mutant("magnitude_prune", "truncates the count with int() instead of rounding",
           old="k = round(amount * weight.numel())", new="k = int(amount * weight.numel())", visible=True),
    Mutant("magnitude_prune", "rounds the count up",
           old="k = round(amount * weight.numel())", new="k = math.ceil(amount * weight.numel())", visible=True),
    Mutant("magnitude_prune", "returns the pruned weight instead of the mask",
           old="return mask.reshape(weight.shape)", new="return weight * mask.reshape(weight.shape)", visible=True),
    Mutant("magnitude_prune", "mask always float32 (loses the weight's dtype)",
           old="dtype=weight.dtype, device", new="dtype=torch.float32, device"),
    # sparsity
    Mutant("sparsity", "counts every parameter (biases, BatchNorm, weight_orig)",
           old="""    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            zeros += int((module.weight == 0).sum())
            total += module.weight.numel()""",
           new="""    for p in model.parameters():
        zeros += int((p == 0).sum())
        total += p.numel()""", visible=True),
    Mutant("sparsity", "fraction of non-zero weights (density)",
           old="int((module.weight == 0).sum())", new="int((module.weight != 0).sum())", visible=True),
    Mutant("sparsity", "mean of per-layer sparsities instead of pooled",
           old="""            zeros += int((module.weight == 0).sum())
            total += module.weight.numel()
    return zeros / total""",
           new="""            zeros += float((module.weight == 0).float().mean())
            total += 1
    return zeros / total""", visible=True),
    Mutant("sparsity", "only convolutions counted",
           old="isinstance(module, nn.Conv2d | nn.Linear)", new="isinstance(module, nn.Conv2d)", visible=True),
    # prune_channels
    Mutant("prune_channels", "keeps the channels with the smallest norm",
           old="torch.topk(norms, n_keep)", new="torch.topk(norms, n_keep, largest=False)", visible=True),
    Mutant("prune_channels", "L2 norm instead of L1",
           old="conv.weight.detach().abs().sum(dim=(1, 2, 3))", new="conv.weight.detach().pow(2).sum(dim=(1, 2, 3))"),
    Mutant("prune_channels", "kept channels in rank order, not original order",
           old="torch.topk(norms, n_keep).indices.sort().values", new="torch.topk(norms, n_keep).indices"),
    Mutant("prune_channels", "number of channels truncated, not rounded",
           old="n_keep = conv.out_channels - round(amount * conv.out_channels)",
           new="n_keep = conv.out_channels - int(amount * conv.out_channels)"),
    Mutant("prune_channels", "bias not copied",
           old="            small.bias.copy_(conv.bias[keep])\n", new="            small.bias.zero_()\n", visible=True),
    Mutant("prune_channels", "stride and padding not copied in the pruned conv",
           old="small = nn.Conv2d(conv.in_channels, len(keep), conv.kernel_size, stride=conv.stride, padding=conv.padding,",
           new="small = nn.Conv2d(conv.in_channels, len(keep), conv.kernel_size,"),
    Mutant("prune_channels", "next layer sliced on its output channels",
           old="small.weight.copy_(conv.weight[:, keep])", new="small.weight.copy_(conv.weight[keep][:, :len(keep)])",
           visible=True),
    Mutant("prune_channels", "dilation not copied in the next layer",
           old="""    small = nn.Conv2d(len(keep), conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                      dilation=conv.dilation,""",
           new="""    small = nn.Conv2d(len(keep), conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                     """),
    # choose_qparams
    Mutant("choose_qparams", "range not widened to contain zero",
           old="x_min, x_max = min(x_min, 0.0), max(x_max, 0.0)", new="pass", visible=True),
    Mutant("choose_qparams", "256 steps instead of 255",
           old="scale = max((x_max - x_min) / (qmax - qmin), eps)", new="scale = max((x_max - x_min) / (qmax - qmin + 1), eps)",
           visible=True),
    Mutant("choose_qparams", "zero point truncated instead of rounded",
           old="qmin - round(x_min / scale)", new="qmin - int(x_min / scale)", visible=True),
    Mutant("choose_qparams", "symmetric scale over the full width",
           old="/ ((qmax - qmin) / 2)", new="/ (qmax - qmin)", visible=True),
    Mutant("choose_qparams", "symmetric unsigned zero point 128 (ignores the given range)",
           old="(qmin + qmax) // 2", new="128"),
    Mutant("choose_qparams", "symmetric scale divides by qmax (127 for -128..127)",
           old="/ ((qmax - qmin) / 2)", new="/ qmax", visible=True),
    Mutant("choose_qparams", "zero point returned as a float",
           old="return float(scale), int(zero_point)", new="return float(scale), float(zero_point)", visible=True),
    Mutant("choose_qparams", "no eps floor on the scale",
           old="scale = max((x_max - x_min) / (qmax - qmin), eps)", new="scale = (x_max - x_min) / (qmax - qmin) or 1.0",
           visible=True),
    Mutant("choose_qparams", "zero point rounded half away from zero",
           old="qmin - round(x_min / scale)", new="qmin - math.floor(x_min / scale + 0.5)"),
    # quantize
    Mutant("quantize", "rounds half up (floor(v + 0.5))",
           old="torch.round(x / scale)", new="torch.floor(x / scale + 0.5)", visible=True),
    Mutant("quantize", "truncates toward zero",
           old="torch.round(x / scale)", new="torch.trunc(x / scale)", visible=True),
    Mutant("quantize", "no clamping",
           old="torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax)", new="(torch.round(x / scale) + zero_point)",
           visible=True),
    Mutant("quantize", "clamps to 0..255 whatever the range",
           old="+ zero_point, qmin, qmax)", new="+ zero_point, 0, 255)", visible=True),
    Mutant("quantize", "subtracts the zero point",
           old="torch.round(x / scale) + zero_point", new="torch.round(x / scale) - zero_point", visible=True),
    Mutant("quantize", "returns floats",
           old=".to(torch.int32)", new="", visible=True),
    Mutant("quantize", "adds the zero point before dividing",
           old="torch.round(x / scale) + zero_point", new="torch.round(x / scale + zero_point / scale)"),
    # dequantize
    Mutant("dequantize", "subtracts the zero point after scaling",
           old="(q.to(torch.float32) - zero_point) * scale", new="q.to(torch.float32) * scale - zero_point", visible=True),
    Mutant("dequantize", "adds the zero point",
           old="(q.to(torch.float32) - zero_point) * scale", new="(q.to(torch.float32) + zero_point) * scale", visible=True),
    Mutant("dequantize", "forgets the zero point",
           old="(q.to(torch.float32) - zero_point) * scale", new="q.to(torch.float32) * scale", visible=True),
    Mutant("dequantize", "divides by the scale",
           old="(q.to(torch.float32) - zero_point) * scale", new="(q.to(torch.float32) - zero_point) / scale", visible=True),
    Mutant("dequantize", "returns float64",
           old="q.to(torch.float32)", new="q.to(torch.float64)", visible=True),
    # fake_quant
    Mutant("fake_quant", "no straight-through estimator (gradient of round is zero)",
           old="return value.detach() + (x - x.detach()) * inside", new="return value", visible=True),
    Mutant("fake_quant", "straight-through everywhere (no clipping of the gradient)",
           old="(x - x.detach()) * inside", new="(x - x.detach())", visible=True),
    Mutant("fake_quant", "range test on the unrounded value",
           old="q = torch.round(x / scale) + zero_point\n    inside = ((q >= qmin) & (q <= qmax)).to(x.dtype)",
           new="q = torch.round(x / scale) + zero_point\n    u = x / scale + zero_point\n"
               "    inside = ((u >= qmin) & (u <= qmax)).to(x.dtype)"),
    Mutant("fake_quant", "returns the integers instead of the dequantized value",
           old="value = (q.clamp(qmin, qmax) - zero_point) * scale", new="value = q.clamp(qmin, qmax)", visible=True),
    Mutant("fake_quant", "strict inequalities at the range edges",
           old="((q >= qmin) & (q <= qmax))", new="((q > qmin) & (q < qmax))"),
    Mutant("fake_quant", "dequantizes without subtracting the zero point",
           old="value = (q.clamp(qmin, qmax) - zero_point) * scale", new="value = q.clamp(qmin, qmax) * scale",
           visible=True),
    # kd_loss
    Mutant("kd_loss", "no T^2 factor",
           old="alpha * T**2 * kl", new="alpha * kl", visible=True),
    Mutant("kd_loss", "KL in the wrong direction (student || teacher)",
           old="kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1).mean()",
           new="kl = (log_p_student.exp() * (log_p_student - log_p_teacher)).sum(dim=1).mean()", visible=True),
    Mutant("kd_loss", "KL averaged over batch * classes (reduction='mean')",
           old="kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1).mean()",
           new="kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).mean()", visible=True),
    Mutant("kd_loss", "cross-entropy on the softened student logits",
           old="ce = F.cross_entropy(student_logits, labels)", new="ce = F.cross_entropy(student_logits / T, labels)",
           visible=True),
    Mutant("kd_loss", "alpha and 1 - alpha swapped",
           old="return alpha * T**2 * kl + (1 - alpha) * ce", new="return (1 - alpha) * T**2 * kl + alpha * ce",
           visible=True),
    Mutant("kd_loss", "teacher not detached",
           old="teacher_logits.detach() / T", new="teacher_logits / T", visible=True),
    Mutant("kd_loss", "teacher logits not softened",
           old="F.log_softmax(teacher_logits.detach() / T, dim=1)", new="F.log_softmax(teacher_logits.detach(), dim=1)",
           visible=True),
    # distill
    Mutant("distill", "transfer set unused (only the labelled images)",
           old="loss = kd_loss(student(X_lab), t_lab, y_lab, temperature, alpha) + soft_only",
           new="loss = kd_loss(student(X_lab), t_lab, y_lab, temperature, alpha)"),
    Mutant("distill", "hard labels only (alpha = 0, no teacher)",
           old="loss = kd_loss(student(X_lab), t_lab, y_lab, temperature, alpha) + soft_only",
           new="loss = kd_loss(student(X_lab), t_lab, y_lab, temperature, 0.0)"),
    Mutant("distill", "learning rate typo, 1000x too small",
           old="lr=1e-2)", new="lr=1e-5)"),
    Mutant("distill", "returns an untrained student",
           old="    return student.eval()\n", new="    return TinyStudent().to(device).eval()\n"),
]

TOPIC = "12_compression"


def test_exercise_structure():
    check_structure(TOPIC, MUTANTS)


def test_mutants_rejected():
    check_mutants(TOPIC, MUTANTS)


def test_autograde_scores(tmp_path):
    check_autograde(TOPIC, tmp_path)


def test_release_matches_source_cells():
    check_release(TOPIC)
