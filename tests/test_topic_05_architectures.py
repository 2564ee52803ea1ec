"""Topic 05_architectures: mutants the hidden tests must reject, plus the shared topic checks."""
from harness import Mutant, check_autograde, check_mutants, check_release, check_structure

MUTANTS = [
    # vgg_block
    Mutant("vgg_block", "no padding: the convs shrink the map", old="kernel_size=3, padding=1", new="kernel_size=3, padding=0"),
    Mutant("vgg_block", "every conv reads in_channels", old="channels = out_channels", new="channels = in_channels"),
    Mutant("vgg_block", "pool with stride 1", old="nn.MaxPool2d(kernel_size=2, stride=2)", new="nn.MaxPool2d(kernel_size=2, stride=1)"),
    Mutant("vgg_block", "average instead of max pooling", old="nn.MaxPool2d(kernel_size=2, stride=2)", new="nn.AvgPool2d(kernel_size=2, stride=2)"),
    Mutant("vgg_block", "ReLU forgotten", old="nn.ReLU(inplace=True)", new="nn.Identity()"),
    Mutant("vgg_block", "one conv too few", old="for _ in range(num_convs):", new="for _ in range(max(1, num_convs - 1)):"),
    # InceptionModule
    Mutant("InceptionModule", "branches concatenated in the wrong order",
           old="[self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]",
           new="[self.branch2(x), self.branch1(x), self.branch3(x), self.branch4(x)]"),
    Mutant("InceptionModule", "torchvision's 3x3 quirk in the 5x5 branch",
           old="kernel_size=5, padding=2", new="kernel_size=3, padding=1"),
    Mutant("InceptionModule", "no ReLU after the 1x1 reduction of branch2",
           old="nn.Conv2d(in_channels, c2[0], kernel_size=1), nn.ReLU(),", new="nn.Conv2d(in_channels, c2[0], kernel_size=1),"),
    Mutant("InceptionModule", "average pooling in branch4",
           old="nn.MaxPool2d(kernel_size=3, stride=1, padding=1)", new="nn.AvgPool2d(kernel_size=3, stride=1, padding=1)"),
    Mutant("InceptionModule", "pool branch without padding",
           old="nn.MaxPool2d(kernel_size=3, stride=1, padding=1)", new="nn.MaxPool2d(kernel_size=3, stride=1)"),
    Mutant("InceptionModule", "concatenated along the batch axis", old="], dim=1)", new="], dim=0)"),
    # model_costs
    Mutant("model_costs", "groups ignored (depthwise conv counted as dense)",
           old="(module.in_channels // module.groups)", new="module.in_channels"),
    Mutant("model_costs", "conv MACs per image, batch forgotten",
           old="macs += output.numel() * (module.in_channels", new="macs += output[0].numel() * (module.in_channels"),
    Mutant("model_costs", "linear MACs without the batch",
           old="macs += output.numel() * module.in_features", new="macs += module.out_features * module.in_features"),
    Mutant("model_costs", "bias adds counted as MACs",
           old="* kh * kw\n", new="* kh * kw + (output.numel() if module.bias is not None else 0)\n"),
    Mutant("model_costs", "params of conv / linear layers only (BatchNorm forgotten)",
           old="params = sum(p.numel() for p in model.parameters())",
           new="params = sum(p.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) for p in m.parameters())"),
    Mutant("model_costs", "hooks never removed", old="handle.remove()", new="pass"),
    Mutant("model_costs", "linear layers not hooked",
           old="isinstance(m, (nn.Conv2d, nn.Linear))]", new="isinstance(m, nn.Conv2d)]"),
    # stage_receptive_fields
    Mutant("stage_receptive_fields", "dilation ignored", old="k_eff = d * (k - 1) + 1", new="k_eff = k", visible=True),
    Mutant("stage_receptive_fields", "padding does not move the window",
           old="start += ((k_eff - 1) / 2 - p) * jump", new="start += (k_eff - 1) / 2 * jump", visible=True),
    Mutant("stage_receptive_fields", "the layer's own stride widens its field",
           old="rf += (k_eff - 1) * jump", new="rf += (k_eff - 1) * jump * s", visible=True),
    Mutant("stage_receptive_fields", "start moved with the new jump",
           old="        start += ((k_eff - 1) / 2 - p) * jump\n        jump *= s\n",
           new="        jump *= s\n        start += ((k_eff - 1) / 2 - p) * jump\n", visible=True),
    Mutant("stage_receptive_fields", "trailing stage without downsampling dropped",
           old="    if pending:\n        stages.append((rf, jump, start))\n", new="", visible=True),
    Mutant("stage_receptive_fields", "nested blocks skipped (children instead of modules)",
           old="for m in net.modules():", new="for m in net.children():", visible=True),
    Mutant("stage_receptive_fields", "only pools close a stage (strided convs do not)",
           old="if s > 1:", new="if s > 1 and not isinstance(m, nn.Conv2d):"),
    Mutant("stage_receptive_fields", "average pooling ignored",
           old="(nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))", new="(nn.Conv2d, nn.MaxPool2d))"),
    Mutant("stage_receptive_fields", "pool dilation ignored",
           old='d = first(getattr(m, "dilation", 1))', new='d = first(m.dilation) if isinstance(m, nn.Conv2d) else 1'),
]

TOPIC = "05_architectures"


def test_exercise_structure():
    check_structure(TOPIC, MUTANTS)


def test_mutants_rejected():
    check_mutants(TOPIC, MUTANTS)


def test_autograde_scores(tmp_path):
    check_autograde(TOPIC, tmp_path)


def test_release_matches_source_cells():
    check_release(TOPIC)
