"""The course's own pretrained backbone, and the optional ImageNet path.

Transfer learning needs a network trained on *something else*. Offline, the course
trains its own: :class:`DigitsNet`, a 24K-parameter CNN trained on the handwritten
digits 0-4 (scikit-learn's digits at 16x16). The lecture and the exercises transfer it
to the digits 5-9, which it has never seen.

The checkpoint ``cnnlab/weights/digits_backbone.pt`` (about 100 kB) ships with the
package, and this module reproduces it bit for bit from a seed::

    python -m cnnlab.pretrained            # retrain and rewrite the shipped file
    python -m cnnlab.pretrained --check    # retrain and compare with the shipped file

Training runs on the CPU with one thread and a fixed order of operations, so the same
machine gives the same bits every time.

:func:`imagenet_resnet18` is the path to real ImageNet weights through torchvision:
it uses them when they are cached or downloadable, and says in one line why not when
there is no network (no traceback, no long timeout).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "digits_backbone.pt"
SOURCE_CLASSES: tuple[int, ...] = (0, 1, 2, 3, 4)
TARGET_CLASSES: tuple[int, ...] = (5, 6, 7, 8, 9)
IMAGE_SIZE = 16
SEED = 0
NUM_EPOCHS = 12
BATCH_SIZE = 32
LR = 3e-3


class DigitsNet(nn.Module):
    """Three conv-BN-ReLU stages, global average pooling, one linear layer ``fc``.

    ``features`` maps ``(N, 1, H, W)`` to ``(N, 64)`` for any ``H, W >= 4``; ``fc`` is the
    head, named like torchvision's ResNets so the same fine-tuning code works on both.
    """

    def __init__(self, num_classes: int = len(SOURCE_CLASSES), width: int = 16) -> None:
        super().__init__()

        def stage(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.features = nn.Sequential(
            *stage(1, width, 1), *stage(width, 2 * width, 2), *stage(2 * width, 4 * width, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def source_data(size: int = IMAGE_SIZE):
    """The pretraining task: digits 0-4 (labels 0-4), the course's fixed split."""
    from cnnlab.data import load_digits_split

    return load_digits_split(size=size, seed=SEED, classes=SOURCE_CLASSES)


def target_split(labels_per_class: int | None = 10, seed: int = 0, size: int = IMAGE_SIZE):
    """The transfer task: digits 5-9 relabelled 0-4, with few labelled training images.

    The held-out part is the course's stratified split of the digits 5-9 (``seed``
    chooses it); ``labels_per_class`` training images per class are then drawn from the
    training part with the same seed (``None`` keeps all of them, about 134 per class).
    """
    from cnnlab.data import Split, load_digits_split

    full = load_digits_split(size=size, seed=seed, classes=TARGET_CLASSES)
    y_train, y_test = full.y_train - TARGET_CLASSES[0], full.y_test - TARGET_CLASSES[0]
    if labels_per_class is None:
        return Split(full.X_train, y_train, full.X_test, y_test)
    if labels_per_class < 1:
        raise ValueError(f"labels_per_class must be >= 1 or None, got {labels_per_class!r}")
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for label in range(len(TARGET_CLASSES)):
        idx = (y_train == label).nonzero().flatten()
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:labels_per_class]])
    keep = torch.cat(picks)
    return Split(full.X_train[keep], y_train[keep], full.X_test, y_test)


def _shift(X: torch.Tensor, gen: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (zero fill): a cheap, seeded augmentation."""
    pad = F.pad(X, (max_shift,) * 4)
    n, _, h, w = X.shape
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=gen)
    return torch.stack([pad[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets.tolist())])


def train_backbone(seed: int = SEED, num_epochs: int = NUM_EPOCHS) -> DigitsNet:
    """Train :class:`DigitsNet` on digits 0-4 from ``seed``, deterministically, on the CPU.

    One torch thread and a generator of our own make the result depend only on the
    seed (and on the CPU's arithmetic). Returns the network in eval mode.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        X, y, _, _ = source_data()
        net = DigitsNet()
        optimizer = torch.optim.Adam(net.parameters(), lr=LR)
        steps = num_epochs * -(-len(X) // BATCH_SIZE)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=steps)
        net.train()
        for _ in range(num_epochs):
            perm = torch.randperm(len(X), generator=gen)
            for start in range(0, len(X), BATCH_SIZE):
                idx = perm[start:start + BATCH_SIZE]
                loss = F.cross_entropy(net(_shift(X[idx], gen)), y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval()


def load_backbone(device: torch.device | str | None = None, path: Path = WEIGHTS_PATH) -> DigitsNet:
    """The shipped checkpoint in a fresh :class:`DigitsNet` (5-way head for digits 0-4), eval mode."""
    net = DigitsNet()
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.to(device or "cpu").eval()


def save_backbone(net: nn.Module, path: Path = WEIGHTS_PATH) -> Path:
    """Write a state dict of contiguous CPU tensors (what :func:`load_backbone` reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    torch.save(state, path)
    return path


def state_differences(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Every way two state dicts differ (names, shapes, dtypes, any bit); empty when identical."""
    problems = [f"only in one: {k}" for k in sorted(set(a) ^ set(b))]
    for k in sorted(set(a) & set(b)):
        x, y = a[k], b[k]
        if x.shape != y.shape or x.dtype != y.dtype:
            problems.append(f"{k}: {tuple(x.shape)} {x.dtype} vs {tuple(y.shape)} {y.dtype}")
        elif not torch.equal(x, y):
            diff = (x.double() - y.double()).abs().max().item()
            problems.append(f"{k}: values differ (max |difference| {diff:.3g})")
    return problems


# --------------------------------------------------------------------------- ImageNet


@dataclass
class ImagenetModel:
    """The outcome of asking for ImageNet weights: a model, or the one-line reason there is none."""

    model: nn.Module | None
    categories: list[str]
    message: str


def imagenet_resnet18(allow_download: bool | None = None, timeout: float = 3.0) -> ImagenetModel:
    """torchvision's ResNet-18 with ImageNet weights, if they are cached or can be downloaded.

    ``allow_download=None`` downloads unless the environment sets ``CNNLAB_OFFLINE=1``.
    The server is probed first with a ``timeout``-second connection, so a machine without
    a network learns it in a moment; any failure becomes ``message``, never a traceback.
    """
    from torchvision.models import ResNet18_Weights, resnet18

    weights = ResNet18_Weights.IMAGENET1K_V1
    categories = list(weights.meta["categories"])
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    if allow_download is None:
        allow_download = os.environ.get("CNNLAB_OFFLINE", "") != "1"
    if not cached.is_file():
        if not allow_download:
            return ImagenetModel(None, categories, "ImageNet weights not cached and downloads are off (CNNLAB_OFFLINE=1)")
        host = urlparse(weights.url).hostname or ""
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
        except OSError as exc:
            return ImagenetModel(None, categories, f"ImageNet weights unavailable: no connection to {host} ({exc})")
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(max(timeout, 30.0))
    try:
        model = resnet18(weights=weights).eval()
    except Exception as exc:  # any download or file problem: one line, no traceback
        return ImagenetModel(None, categories, f"ImageNet weights unavailable: {type(exc).__name__}: {exc}")
    finally:
        socket.setdefaulttimeout(old_timeout)
    return ImagenetModel(model, categories, f"ImageNet ResNet-18 loaded from {cached}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnlab.pretrained", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="retrain and compare with the shipped file; write nothing")
    args = parser.parse_args(argv)
    net = train_backbone()
    from cnnlab.train import evaluate

    _, _, X_test, y_test = source_data()
    _, acc = evaluate(net, (X_test, y_test))
    print(f"DigitsNet on digits 0-4: held-out accuracy {acc:.4f}, "
          f"{sum(p.numel() for p in net.parameters())} parameters")
    if args.check:
        problems = state_differences(net.state_dict(), torch.load(WEIGHTS_PATH, weights_only=True))
        print("identical to the shipped file" if not problems else "\n".join(problems))
        return 1 if problems else 0
    path = save_backbone(net)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
