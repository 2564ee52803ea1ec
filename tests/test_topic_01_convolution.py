"""Topic 01_convolution: mutants the hidden tests must reject, plus the shared topic checks."""

from harness import Mutant, check_autograde, check_mutants, check_release, check_structure

MUTANTS = [
    # conv_output_size
    Mutant("conv_output_size", "ignores dilation", old="span = dilation * (kernel - 1) + 1", new="span = kernel"),
    Mutant("conv_output_size", "pads one side only", old="size + 2 * padding - span", new="size + padding - span"),
    Mutant("conv_output_size", "rounds up", old="(size + 2 * padding - span) // stride + 1",
           new="-(-(size + 2 * padding - span) // stride) + 1"),
    Mutant("conv_output_size", "dilates the kernel by d*K", old="span = dilation * (kernel - 1) + 1",
           new="span = dilation * kernel"),
    # conv_params
    Mutant("conv_params", "ignores groups", old="(c_in // groups)", new="c_in"),
    Mutant("conv_params", "one bias per input channel", old="(c_out if bias else 0)", new="(c_in if bias else 0)"),
    Mutant("conv_params", "always counts the bias", old="(c_out if bias else 0)", new="c_out"),
    Mutant("conv_params", "square kernel from the first size", old="kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel",
           new="kh = kw = kernel if isinstance(kernel, int) else kernel[0]"),
    # conv_macs
    Mutant("conv_macs", "ignores groups", old="(c_in // groups)", new="c_in"),
    Mutant("conv_macs", "counts FLOPs instead of MACs", old="return h_out * w_out", new="return 2 * h_out * w_out"),
    Mutant("conv_macs", "forgets output channels", old="* c_out * (c_in // groups)", new="* (c_in // groups)"),
    # receptive_field
    Mutant("receptive_field", "ignores the jump", old="rf += dilation * (kernel - 1) * jump", new="rf += dilation * (kernel - 1)"),
    Mutant("receptive_field", "ignores dilation", old="rf += dilation * (kernel - 1) * jump", new="rf += (kernel - 1) * jump"),
    Mutant("receptive_field", "updates the jump first", old="""        rf += dilation * (kernel - 1) * jump
        jump *= stride""", new="""        jump *= stride
        rf += dilation * (kernel - 1) * jump"""),
    Mutant("receptive_field", "starts from zero", old="rf, jump = 1, 1", new="rf, jump = 0, 1"),
    # conv2d_naive
    Mutant("conv2d_naive", "flips the kernel (true convolution)", old='torch.einsum("nchw,ochw->no", patch, weight)',
           new='torch.einsum("nchw,ochw->no", patch, weight.flip(-1, -2))'),
    Mutant("conv2d_naive", "ignores dilation in the patch", old="patch = xp[:, :, top : top + dh * (kh - 1) + 1 : dh, left : left + dw * (kw - 1) + 1 : dw]",
           new="patch = xp[:, :, top : top + kh, left : left + kw]"),
    Mutant("conv2d_naive", "swaps height and width padding", old="xp = F.pad(x, (pw, pw, ph, ph))", new="xp = F.pad(x, (ph, ph, pw, pw))"),
    Mutant("conv2d_naive", "drops the bias", old="out += bias.view(1, -1, 1, 1)", new="out += 0"),
    Mutant("conv2d_naive", "uses F.conv2d", old="    return out\n", new="    return F.conv2d(x, weight, bias, stride, padding, dilation)\n", visible=True),
    # conv2d_im2col
    Mutant("conv2d_im2col", "flattens (offset, channel) instead of (channel, offset)",
           old="cols = cols.reshape(n, groups, c_per_group * kh * kw, h_out * w_out)",
           new="cols = cols.transpose(1, 2).reshape(n, groups, c_per_group * kh * kw, h_out * w_out)"),
    Mutant("conv2d_im2col", "stacks offsets in the wrong order", old="for a in range(kh) for b in range(kw)]",
           new="for b in range(kw) for a in range(kh)]"),
    Mutant("conv2d_im2col", "forgets stride in the slices", old="a * dh : a * dh + sh * (h_out - 1) + 1 : sh", new="a * dh : a * dh + h_out"),
    Mutant("conv2d_im2col", "calls F.unfold", old="    cols = torch.stack(cols, dim=2)  # (N, C_in, kH*kW, H_out, W_out)\n",
           new="    cols = F.unfold(xp, (kh, kw), dilation=(dh, dw), stride=(sh, sw)).reshape(n, c_in, kh * kw, h_out, w_out)\n",
           visible=True),
    Mutant("conv2d_im2col", "returns float64", old="    return out\n", new="    return out.double()\n"),
    # drills
    Mutant("drills", "forgets the bias", old="drill_params = 128 * (64 * 3 * 3 + 1)", new="drill_params = 128 * 64 * 3 * 3", visible=True),
    Mutant("drills", "forgets the padding", old="drill_out_size = (224 + 2 * 3 - 7) // 2 + 1", new="drill_out_size = (224 - 7) // 2 + 1", visible=True),
    Mutant("drills", "receptive field of three 3x3 as 3 * 3", old="drill_rf_three_3x3 = 7", new="drill_rf_three_3x3 = 9",
           visible=True),
    Mutant("drills", "two 3x3 kernels counted as 3 * 3 * 3", old="drill_weights_two_3x3 = 2 * 3 * 3",
           new="drill_weights_two_3x3 = 3 * 3 * 3", visible=True),
    Mutant("drills", "dilated RF as K*D", old="drill_dilated_rf = 3 + (3 - 1) * (4 - 1)", new="drill_dilated_rf = 3 * 4", visible=True),
    Mutant("drills", "transposed conv without padding", old="drill_transposed_out = (16 - 1) * 2 - 2 * 1 + 4",
           new="drill_transposed_out = (16 - 1) * 2 + 4", visible=True),
    Mutant("drills", "ratio upside down", old="drill_bottleneck_ratio = (256 * 256 * 9) / (256 * 64 + 64 * 64 * 9 + 64 * 256)",
           new="drill_bottleneck_ratio = (256 * 64 + 64 * 64 * 9 + 64 * 256) / (256 * 256 * 9)", visible=True),
]

TOPIC = "01_convolution"


def test_exercise_structure():
    check_structure(TOPIC, MUTANTS)


def test_mutants_rejected():
    check_mutants(TOPIC, MUTANTS)


def test_autograde_scores(tmp_path):
    check_autograde(TOPIC, tmp_path)


def test_release_matches_source_cells():
    check_release(TOPIC)
