"""Topic 04_training: mutants the hidden tests must reject, plus the shared topic checks."""
from harness import Mutant, check_autograde, check_mutants, check_release, check_structure

MUTANTS = [
    # batchnorm2d_forward
    Mutant("batchnorm2d_forward", "the built-in does the normalization",
           old="out = gamma.view(1, -1, 1, 1) * x_hat + beta.view(1, -1, 1, 1)",
           new="out = F.batch_norm(x, mean, var, gamma, beta, training=False, eps=eps)", visible=True),
    Mutant("batchnorm2d_forward", "biased variance in the running update",
           old="unbiased_var = var * m / (m - 1)", new="unbiased_var = var"),
    Mutant("batchnorm2d_forward", "unbiased variance used to normalize",
           old="var = x.var(dim=(0, 2, 3), correction=0)", new="var = x.var(dim=(0, 2, 3), correction=1)"),
    Mutant("batchnorm2d_forward", "momentum weights the old running mean",
           old="new_running_mean = (1 - momentum) * running_mean + momentum * mean",
           new="new_running_mean = momentum * running_mean + (1 - momentum) * mean"),
    Mutant("batchnorm2d_forward", "eval mode normalizes with the batch statistics",
           old="mean, var = running_mean, running_var",
           new="mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), correction=0)"),
    Mutant("batchnorm2d_forward", "eps added outside the square root",
           old="torch.sqrt(var.view(1, -1, 1, 1) + eps)", new="(torch.sqrt(var.view(1, -1, 1, 1)) + eps)"),
    Mutant("batchnorm2d_forward", "running statistics updated in place",
           old="new_running_mean = (1 - momentum) * running_mean + momentum * mean",
           new="new_running_mean = running_mean.mul_(1 - momentum).add_(momentum * mean)"),
    # groupnorm_forward
    Mutant("groupnorm_forward", "the built-in does the work",
           old="    n, c, h, w = x.shape\n", new="    return F.group_norm(x, num_groups, gamma, beta, eps)\n    n, c, h, w = x.shape\n",
           visible=True),
    Mutant("groupnorm_forward", "unbiased variance",
           old="correction=0", new="correction=1"),
    Mutant("groupnorm_forward", "groups of interleaved channels",
           old="groups = x.reshape(n, num_groups, c // num_groups, h, w)",
           new="groups = x.reshape(n, c // num_groups, num_groups, h, w).transpose(1, 2)"),
    Mutant("groupnorm_forward", "statistics per channel (InstanceNorm)",
           old="dim=(2, 3, 4)", new="dim=(3, 4)"),
    Mutant("groupnorm_forward", "mean taken over the batch as well",
           old="mean = groups.mean(dim=(2, 3, 4), keepdim=True)",
           new="mean = groups.mean(dim=(0, 2, 3, 4), keepdim=True)"),
    # build_cnn
    Mutant("build_cnn", "convolutions keep their bias", old="bias=False", new="bias=True", visible=True),
    Mutant("build_cnn", "one width too many: over the budget",
           old="    return make(width)", new="    return make(width + 1)", visible=True),
    Mutant("build_cnn", "flatten head fixed to 32x32 inputs",
           old="nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, num_classes)",
           new="nn.Flatten(), nn.Linear(4 * w * 8 * 8, num_classes)", visible=True),
    Mutant("build_cnn", "ReLU before BatchNorm",
           old="nn.BatchNorm2d(c_out), nn.ReLU()]", new="nn.ReLU(), nn.BatchNorm2d(c_out)]", visible=True),
    Mutant("build_cnn", "fixed widths, budget ignored",
           old="    return make(width)", new="    return make(16)"),
    Mutant("build_cnn", "budget counts the convolutions only",
           old="return sum(p.numel() for p in net.parameters())",
           new="return sum(p.numel() for m in net.modules() if isinstance(m, nn.Conv2d) for p in m.parameters())"),
    Mutant("build_cnn", "no normalization: the network barely trains",
           old="nn.BatchNorm2d(c_out), nn.ReLU()]", new="nn.BatchNorm2d(c_out), nn.Identity()]"),
    # augment
    Mutant("augment", "one flip decision for the whole batch",
           old="flip = torch.rand(n, generator=generator) < 0.5",
           new="flip = (torch.rand(1, generator=generator) < 0.5).expand(n)"),
    Mutant("augment", "offsets miss the last position (exclusive randint bound)",
           old="torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)",
           new="torch.randint(0, 2 * pad, (n, 2), generator=generator)"),
    Mutant("augment", "vertical instead of horizontal flip",
           old="images.flip(-1)", new="images.flip(-2)"),
    Mutant("augment", "flips drawn from the global random state",
           old="flip = torch.rand(n, generator=generator) < 0.5", new="flip = torch.rand(n) < 0.5"),
    Mutant("augment", "same offset on both axes",
           old="for i, (dy, dx) in enumerate(offsets.tolist()):",
           new="for i, (dy, dx) in enumerate(offsets[:, [0, 0]].tolist()):"),
    Mutant("augment", "output cast to float32",
           old="out = torch.empty_like(images)", new="out = torch.empty_like(images, dtype=torch.float32)"),
    # train_classifier
    Mutant("train_classifier", "labels not shuffled with the images",
           old="y_train[idx]", new="y_train[i : i + batch_size]", visible=True),
    Mutant("train_classifier", "gradients never reset",
           old="optimizer.zero_grad()", new="pass", visible=True),
    Mutant("train_classifier", "optimizer never steps",
           old="optimizer.step()", new="pass", visible=True),
    Mutant("train_classifier", "learning rate 1000x too small",
           old="num_epochs, batch_size, lr = 8, 64, 3e-3", new="num_epochs, batch_size, lr = 8, 64, 3e-6", visible=True),
    Mutant("train_classifier", "trains on a fifth of the data",
           old="    net.train()\n", new="    X_train, y_train = X_train[:250], y_train[:250]\n    net.train()\n", visible=True),
]

TOPIC = "04_training"


def test_exercise_structure():
    check_structure(TOPIC, MUTANTS)


def test_mutants_rejected():
    check_mutants(TOPIC, MUTANTS)


def test_autograde_scores(tmp_path):
    check_autograde(TOPIC, tmp_path)


def test_release_matches_source_cells():
    check_release(TOPIC)
