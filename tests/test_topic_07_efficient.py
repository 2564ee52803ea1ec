"""Topic 07_efficient: mutants the hidden tests must reject, plus the shared topic checks."""
from harness import Mutant, check_autograde, check_mutants, check_release, check_structure

MUTANTS = [
    # DepthwiseSeparableConv
    Mutant("DepthwiseSeparableConv", "depthwise without groups (a full convolution)",
           old="groups=in_channels, bias=False)", new="bias=False)", visible=True),
    Mutant("DepthwiseSeparableConv", "no padding in the depthwise convolution",
           old="padding=kernel_size // 2, groups=in_channels", new="padding=0, groups=in_channels", visible=True),
    Mutant("DepthwiseSeparableConv", "redundant bias in the depthwise convolution",
           old="groups=in_channels, bias=False)", new="groups=in_channels)", visible=True),
    Mutant("DepthwiseSeparableConv", "pointwise convolution without bias",
           old="nn.Conv2d(in_channels, out_channels, kernel_size=1)",
           new="nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)", visible=True),
    Mutant("DepthwiseSeparableConv", "ReLU between depthwise and pointwise (MobileNet v1 habit)",
           old="return self.pointwise(self.depthwise(x))", new="return self.pointwise(torch.relu(self.depthwise(x)))", visible=True),
    Mutant("DepthwiseSeparableConv", "padding from the kernel size, not half of it",
           old="padding=kernel_size // 2, groups", new="padding=kernel_size - 2 if kernel_size > 1 else 0, groups", visible=True),
    # SqueezeExcitation
    Mutant("SqueezeExcitation", "max pooling as the squeeze",
           old="z = x.mean(dim=(2, 3), keepdim=True)", new="z = x.amax(dim=(2, 3), keepdim=True)", visible=True),
    Mutant("SqueezeExcitation", "softmax over channels instead of a sigmoid gate",
           old="s = torch.sigmoid(self.fc2(self.activation(self.fc1(z))))",
           new="s = torch.softmax(self.fc2(self.activation(self.fc1(z))), dim=1)", visible=True),
    Mutant("SqueezeExcitation", "activation argument ignored (always ReLU)",
           old="self.activation = activation()", new="self.activation = nn.ReLU()", visible=True),
    Mutant("SqueezeExcitation", "no activation between the two layers",
           old="self.fc2(self.activation(self.fc1(z)))", new="self.fc2(self.fc1(z))", visible=True),
    Mutant("SqueezeExcitation", "gate added instead of multiplied",
           old="return x * s", new="return x + s", visible=True),
    Mutant("SqueezeExcitation", "squeeze over the channels instead of the positions",
           old="z = x.mean(dim=(2, 3), keepdim=True)", new="z = x.mean(dim=(1, 2, 3), keepdim=True).expand(-1, x.shape[1], 1, 1)", visible=True),
    # MBConv
    Mutant("MBConv", "residual whenever the channels match (stride ignored)",
           old="self.use_residual = stride == 1 and in_channels == out_channels",
           new="self.use_residual = in_channels == out_channels"),
    Mutant("MBConv", "no residual connection",
           old="self.use_residual = stride == 1 and in_channels == out_channels", new="self.use_residual = False", visible=True),
    Mutant("MBConv", "activation after the projection (not a linear bottleneck)",
           old="nn.BatchNorm2d(out_channels))", new="nn.BatchNorm2d(out_channels), nn.SiLU())", visible=True),
    Mutant("MBConv", "ReLU6 instead of SiLU in the depthwise stage (MobileNetV2 habit)",
           old="nn.BatchNorm2d(hidden), nn.SiLU())\n        self.se", new="nn.BatchNorm2d(hidden), nn.ReLU6())\n        self.se", visible=True),
    Mutant("MBConv", "SE squeeze computed from the expanded width",
           old="squeeze = max(1, in_channels // 4)", new="squeeze = max(1, hidden // 4)", visible=True),
    Mutant("MBConv", "SE with its default ReLU",
           old="SqueezeExcitation(hidden, squeeze, activation=nn.SiLU)", new="SqueezeExcitation(hidden, squeeze)", visible=True),
    Mutant("MBConv", "SE after the projection",
           old="out = self.project(self.se(self.depthwise(out)))",
           new="out = self.project(self.depthwise(out))\n        out = out * torch.sigmoid(out.mean((2, 3), keepdim=True))", visible=True),
    Mutant("MBConv", "stride on the expansion 1x1 instead of the depthwise convolution",
           old="nn.Conv2d(in_channels, hidden, 1, bias=False)", new="nn.Conv2d(in_channels, hidden, 1, stride=stride, bias=False)", visible=True),
    # channel_shuffle
    Mutant("channel_shuffle", "inverse shuffle (groups and channels-per-group swapped)",
           old="x.reshape(n, groups, c // groups, h, w)", new="x.reshape(n, c // groups, groups, h, w)", visible=True),
    Mutant("channel_shuffle", "no transpose (identity)",
           old=".transpose(1, 2).reshape(n, c, h, w)", new=".reshape(n, c, h, w)", visible=True),
    Mutant("channel_shuffle", "no divisibility check",
           old="    if c % groups != 0:\n        raise ValueError", new="    if False:\n        raise ValueError", visible=True),
    Mutant("channel_shuffle", "spatial axes shuffled too",
           old=".transpose(1, 2).reshape(n, c, h, w)", new=".transpose(1, 2).transpose(3, 4).reshape(n, c, h, w)"),
    # compound_scaling
    Mutant("compound_scaling", "multipliers returned in the wrong order",
           old="return float(depth), float(width), float(resolution)", new="return float(width), float(depth), float(resolution)", visible=True),
    Mutant("compound_scaling", "linear instead of exponential",
           old="depth = alpha**phi", new="depth = alpha * phi if phi else 1.0", visible=True),
    Mutant("compound_scaling", "width squared (FLOPs factor mixed in)",
           old="width = beta**phi", new="width = beta ** (2 * phi)", visible=True),
    Mutant("compound_scaling", "phi shifted by one",
           old="resolution = gamma**phi", new="resolution = gamma ** (phi + 1) / gamma if phi >= 0 else gamma ** (phi + 1)"),
    Mutant("compound_scaling", "channels rounded down instead of to the nearest multiple",
           old="int(channels + divisor / 2) // divisor * divisor", new="int(channels) // divisor * divisor", visible=True),
    Mutant("compound_scaling", "no 10% guard after rounding",
           old="    if rounded < 0.9 * channels:\n        rounded += divisor\n", new="", visible=True),
    Mutant("compound_scaling", "divisor argument ignored (always 8)",
           old="max(divisor, int(channels + divisor / 2) // divisor * divisor)", new="max(8, int(channels + 4) // 8 * 8)", visible=True),
    Mutant("compound_scaling", "layers per stage rounded to the nearest integer, not up",
           old="int(math.ceil(n * depth_mult))", new="int(round(n * depth_mult))", visible=True),
    Mutant("compound_scaling", "scaled widths truncated instead of rounded to multiples of 8",
           old="round_channels(c * width_mult)", new="int(c * width_mult)", visible=True),
    # measure_latency
    Mutant("measure_latency", "seconds instead of milliseconds",
           old="return float(statistics.median(times) * 1000.0)", new="return float(statistics.median(times))", visible=True),
    Mutant("measure_latency", "mean instead of median",
           old="return float(statistics.median(times) * 1000.0)", new="return float(statistics.mean(times) * 1000.0)", visible=True),
    Mutant("measure_latency", "minimum instead of median",
           old="return float(statistics.median(times) * 1000.0)", new="return float(min(times) * 1000.0)"),
    Mutant("measure_latency", "no warm-up call",
           old="            model(x)\n            sync()\n            for", new="            for", visible=True),
    Mutant("measure_latency", "autograd left on",
           old="with torch.no_grad():", new="with torch.enable_grad():", visible=True),
    Mutant("measure_latency", "model left in train mode",
           old="    model.eval()\n", new="", visible=True),
    Mutant("measure_latency", "eval mode not restored",
           old="        model.train(was_training)", new="        pass", visible=True),
    Mutant("measure_latency", "one timer around all repeats",
           old="                times.append(time.perf_counter() - start)",
           new="                times.append((time.perf_counter() - start) * (_ + 1))"),
    Mutant("measure_latency", "input without its batch dimension",
           old="x = torch.randn(input_shape, device=device)", new="x = torch.randn(tuple(input_shape)[1:], device=device)"),
]

TOPIC = "07_efficient"


def test_exercise_structure():
    check_structure(TOPIC, MUTANTS)


def test_mutants_rejected():
    check_mutants(TOPIC, MUTANTS)


def test_autograde_scores(tmp_path):
    check_autograde(TOPIC, tmp_path)


def test_release_matches_source_cells():
    check_release(TOPIC)
