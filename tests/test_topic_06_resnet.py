"""Topic 06_resnet: mutants the hidden tests must reject, plus the shared topic checks."""
from harness import Mutant, check_autograde, check_mutants, check_release, check_structure

MUTANTS = [
    # BasicBlock
    Mutant("BasicBlock", "projection only when the channel count changes, not on a stride change",
           old="if stride != 1 or in_channels != out_channels:", new="if in_channels != out_channels:", visible=True),
    Mutant("BasicBlock", "stride on the second 3x3 convolution instead of the first",
           old="3, stride=stride, padding=1, bias=False)\n        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1,",
           new="3, stride=1, padding=1, bias=False)\n        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=stride,", visible=True),
    Mutant("BasicBlock", "ReLU before the addition (shortcut added after the activation)",
           old="out = self.bn2(self.conv2(out))", new="out = self.relu(self.bn2(self.conv2(out)))", visible=True),
    Mutant("BasicBlock", "no ReLU after the addition",
           old="return self.relu(out + identity)", new="return out + identity", visible=True),
    Mutant("BasicBlock", "projection without its BatchNorm",
           old="nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)",
           new="nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)", visible=True),
    # Bottleneck
    Mutant("Bottleneck", "stride on the first 1x1 convolution (the original v1 placement)",
           old="1, bias=False)\n        self.conv2 = nn.Conv2d(mid_channels, mid_channels, 3, stride=stride, padding=1",
           new="1, stride=stride, bias=False)\n        self.conv2 = nn.Conv2d(mid_channels, mid_channels, 3, padding=1", visible=True),
    Mutant("Bottleneck", "no ReLU after the 3x3 convolution",
           old="out = self.relu(self.bn2(self.conv2(out)))", new="out = self.bn2(self.conv2(out))", visible=True),
    Mutant("Bottleneck", "ReLU after bn3, before the addition",
           old="out = self.bn3(self.conv3(out))", new="out = self.relu(self.bn3(self.conv3(out)))", visible=True),
    Mutant("Bottleneck", "projection only on a stride change (ignores in_channels != 4 * mid_channels)",
           old="if stride != 1 or in_channels != out_channels:", new="if stride != 1:", visible=True),
    # DenseBlock
    Mutant("DenseBlock", "out_channels forgets the block input",
           old="self.out_channels = in_channels + num_layers * growth_rate",
           new="self.out_channels = num_layers * growth_rate", visible=True),
    Mutant("DenseBlock", "returns only the new features, not the input",
           old="return torch.cat(features, dim=1)", new="return torch.cat(features[1:], dim=1)", visible=True),
    Mutant("DenseBlock", "concatenates newest features first",
           old="return torch.cat(features, dim=1)", new="return torch.cat(features[::-1], dim=1)", visible=True),
    Mutant("DenseBlock", "bottleneck width k instead of 4k",
           old="4 * growth_rate", new="growth_rate", visible=True),
    Mutant("DenseBlock", "3x3 convolution without padding",
           old="3, padding=1, bias=False)", new="3, bias=False)", visible=True),
    # conv_grad_norms
    Mutant("conv_grad_norms", "stale gradients not zeroed (backward accumulates)",
           old="    net.zero_grad()\n", new="", visible=True),
    Mutant("conv_grad_norms", "summed instead of mean cross-entropy",
           old="F.cross_entropy(net(X), y)", new="F.cross_entropy(net(X), y, reduction=\"sum\")", visible=True),
    Mutant("conv_grad_norms", "norm of the weights instead of their gradients",
           old="m.weight.grad.norm()", new="m.weight.norm()", visible=True),
    Mutant("conv_grad_norms", "squared norm",
           old="m.weight.grad.norm()", new="m.weight.grad.pow(2).sum()", visible=True),
    Mutant("conv_grad_norms", "linear layers counted too",
           old="isinstance(m, nn.Conv2d)", new="isinstance(m, (nn.Conv2d, nn.Linear))", visible=True),
    # SmallResNet
    Mutant("SmallResNet", "no down-sampling blocks",
           old=", stride=2)", new=")", visible=True),
    Mutant("SmallResNet", "returns softmax probabilities instead of logits",
           old="return self.fc(self.pool(x).flatten(1))", new="return self.fc(self.pool(x).flatten(1)).softmax(dim=1)", visible=True),
    Mutant("SmallResNet", "flatten instead of global average pooling (fixed input size)",
           old="self.pool = nn.AdaptiveAvgPool2d(1)\n        self.fc = nn.Linear(4 * width, num_classes)",
           new="self.pool = nn.Identity()\n        self.fc = nn.Linear(4 * width * 2 * 2, num_classes)", visible=True),
    # train_small_resnet
    Mutant("train_small_resnet", "learning rate typo, 1000x too small",
           old="lr=1e-3", new="lr=1e-6", visible=True),
    Mutant("train_small_resnet", "a single epoch",
           old="num_epochs=5", new="num_epochs=1", visible=True),
    Mutant("train_small_resnet", "returns a fresh, untrained network",
           old="    return net\n", new="    return SmallResNet(num_classes=10).to(device)\n", visible=True),
]

TOPIC = "06_resnet"


def test_exercise_structure():
    check_structure(TOPIC, MUTANTS)


def test_mutants_rejected():
    check_mutants(TOPIC, MUTANTS)


def test_autograde_scores(tmp_path):
    check_autograde(TOPIC, tmp_path)


def test_release_matches_source_cells():
    check_release(TOPIC)
