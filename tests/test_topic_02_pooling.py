"""Topic 02_pooling: mutants the hidden tests must reject, plus the shared topic checks."""

from harness import Mutant, check_autograde, check_mutants, check_release, check_structure

_ZERO_FILL_SHIFT = (
    "torch.roll(F.pad(images, (abs(dx), abs(dx), abs(dy), abs(dy))), shifts=(dy, dx), dims=(2, 3))"
    "[:, :, abs(dy) : abs(dy) + images.shape[2], abs(dx) : abs(dx) + images.shape[3]]"
)

MUTANTS = [
    # maxpool2d
    Mutant("maxpool2d", "stride defaults to 1 instead of the kernel",
           old="_pair(kernel if stride is None else stride)", new="_pair(1 if stride is None else stride)"),
    Mutant("maxpool2d", "pads with zeros instead of -inf", old='value=float("-inf")', new="value=0.0"),
    Mutant("maxpool2d", "last maximum wins on ties", old="better = cand > out", new="better = cand >= out"),
    Mutant("maxpool2d", "indices count positions in the padded input",
           old="""    rows = torch.arange(-ph, h + ph, device=x.device)
    cols = torch.arange(-pw, w + pw, device=x.device)
    flat = rows[:, None] * w + cols[None, :]""",
           new="""    rows = torch.arange(h + 2 * ph, device=x.device)
    cols = torch.arange(w + 2 * pw, device=x.device)
    flat = rows[:, None] * (w + 2 * pw) + cols[None, :]"""),
    Mutant("maxpool2d", "row stride H instead of W in the flat index",
           old="flat = rows[:, None] * w + cols[None, :]", new="flat = rows[:, None] * h + cols[None, :]"),
    Mutant("maxpool2d", "padding order (top/bottom, left/right) swapped",
           old='F.pad(x, (pw, pw, ph, ph), value=float("-inf"))', new='F.pad(x, (ph, ph, pw, pw), value=float("-inf"))'),
    # avgpool2d
    Mutant("avgpool2d", "stride defaults to 1 instead of the kernel",
           old="_pair(kernel if stride is None else stride)", new="_pair(1 if stride is None else stride)"),
    Mutant("avgpool2d", "divides by kh * kh", old="return total / (kh * kw)", new="return total / (kh * kh)"),
    Mutant("avgpool2d", "replicates the border instead of zero padding",
           old="xp = F.pad(x, (pw, pw, ph, ph))", new='xp = F.pad(x, (pw, pw, ph, ph), mode="replicate")'),
    Mutant("avgpool2d", "padding order swapped", old="xp = F.pad(x, (pw, pw, ph, ph))", new="xp = F.pad(x, (ph, ph, pw, pw))"),
    # maxpool2d_backward
    Mutant("maxpool2d_backward", "overwrites instead of adding (overlapping windows)",
           old="dx.scatter_add_(2,", new="dx.scatter_(2,"),
    Mutant("maxpool2d_backward", "routes 1 instead of the upstream gradient",
           old="dout.reshape(n, c, -1))", new="torch.ones_like(dout).reshape(n, c, -1))"),
    Mutant("maxpool2d_backward", "reshapes to (W, H)", old="return dx.reshape(n, c, h, w)", new="return dx.reshape(n, c, w, h).transpose(2, 3)"),
    Mutant("maxpool2d_backward", "indices as positions in the whole (C, H, W) volume",
           old="""    dx = torch.zeros(n, c, h * w, dtype=dout.dtype, device=dout.device)
    dx.scatter_add_(2, indices.reshape(n, c, -1), dout.reshape(n, c, -1))""",
           new="""    dx = torch.zeros(n, c * h * w, dtype=dout.dtype, device=dout.device)
    dx.scatter_add_(1, indices.reshape(n, -1), dout.reshape(n, -1))"""),
    # global_avg_pool
    Mutant("global_avg_pool", "global max pooling", old="x.mean(dim=(2, 3))", new="x.amax(dim=(2, 3))"),
    Mutant("global_avg_pool", "sums instead of averaging", old="x.mean(dim=(2, 3))", new="x.sum(dim=(2, 3))"),
    Mutant("global_avg_pool", "keeps the spatial dims", old="x.mean(dim=(2, 3))", new="x.mean(dim=(2, 3), keepdim=True)"),
    Mutant("global_avg_pool", "averages over the wrong axes", old="x.mean(dim=(2, 3))", new="x.mean(dim=(1, 2))"),
    Mutant("global_avg_pool", "divides by the canvas area (padding counted)",
           old="return total / inside.sum(dim=(2, 3)).to(x.dtype)", new="return total / (x.shape[2] * x.shape[3])",
           visible=True),
    Mutant("global_avg_pool", "reads sizes as (width, height)",
           old="sizes[:, 0, None, None]) & (cols[None, None, :] < sizes[:, 1, None, None])",
           new="sizes[:, 1, None, None]) & (cols[None, None, :] < sizes[:, 0, None, None])", visible=True),
    Mutant("global_avg_pool", "multiplies by the mask (a NaN in the padding leaks)",
           old="torch.where(inside, x, torch.zeros((), dtype=x.dtype, device=x.device))", new="(x * inside)",
           visible=True),
    Mutant("global_avg_pool", "masks the bottom-right corner instead of the top-left",
           old="(rows[None, :, None] < sizes[:, 0, None, None]) & (cols[None, None, :] < sizes[:, 1, None, None])",
           new="(rows.flip(0)[None, :, None] < sizes[:, 0, None, None]) & (cols.flip(0)[None, None, :] < sizes[:, 1, None, None])"),
    # head_params
    Mutant("head_params", "forgets the bias", old="return in_features * out_features + out_features",
           new="return in_features * out_features"),
    Mutant("head_params", "one bias per input", old="return in_features * out_features + out_features",
           new="return in_features * out_features + in_features"),
    Mutant("head_params", "GAP keeps the pixels instead of the channels",
           old="in_features = channels if gap else", new="in_features = height * width if gap else"),
    Mutant("head_params", "assumes a square map", old="else channels * height * width", new="else channels * height * height"),
    # shift_invariance_score
    Mutant("shift_invariance_score", "an int shifts rows instead of columns",
           old="dy, dx = (0, shift) if isinstance(shift, int) else shift",
           new="dy, dx = (shift, 0) if isinstance(shift, int) else shift", visible=True),
    Mutant("shift_invariance_score", "a pair read as (dx, dy)",
           old="dy, dx = (0, shift) if isinstance(shift, int) else shift",
           new="dx, dy = (shift, 0) if isinstance(shift, int) else shift", visible=True),
    Mutant("shift_invariance_score", "shifts the other way",
           old="shifts=(dy, dx)", new="shifts=(-dy, -dx)"),
    Mutant("shift_invariance_score", "predicts in train mode (dropout on)", old="    model.eval()\n", new=""),
    Mutant("shift_invariance_score", "does not restore the model's mode", old="    model.train(was_training)\n", new=""),
    Mutant("shift_invariance_score", "zero-fill shift instead of circular",
           old="torch.roll(images, shifts=(dy, dx), dims=(2, 3))", new=_ZERO_FILL_SHIFT),
    Mutant("shift_invariance_score", "returns the fraction that changed",
           old="return (before == after).float().mean().item()", new="return (before != after).float().mean().item()"),
]

TOPIC = "02_pooling"


def test_exercise_structure():
    check_structure(TOPIC, MUTANTS)


def test_mutants_rejected():
    check_mutants(TOPIC, MUTANTS)


def test_autograde_scores(tmp_path):
    check_autograde(TOPIC, tmp_path)


def test_release_matches_source_cells():
    check_release(TOPIC)
