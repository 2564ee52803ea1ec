"""Offline datasets: real handwriting, real photos and generated shapes.

Nothing here touches the network. Digits come from scikit-learn, photos from the
images bundled with scikit-image and scikit-learn, and the shapes are drawn from a
seed, so every notebook sees the same data on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------- digits


@dataclass
class Split:
    """A train / test split of image tensors ``(N, C, H, W)`` and integer labels ``(N,)``."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor

    def __iter__(self):
        return iter((self.X_train, self.y_train, self.X_test, self.y_test))


def load_digits_split(
    size: int = 8, test_fraction: float = 0.25, seed: int = 0, classes: tuple[int, ...] | None = None
) -> Split:
    """Load scikit-learn's 1,797 handwritten digits as a stratified train / test split.

    Images are float32 in [0, 1], shape ``(N, 1, size, size)``; ``size`` above 8
    upsamples bilinearly (16 or 28 make the digits MNIST-like). ``classes`` keeps only
    those digits (labels keep their digit value). The split is stratified by label and
    depends only on ``seed``.
    """
    from sklearn.datasets import load_digits

    if not isinstance(size, int) or size < 4:
        raise ValueError(f"size must be an int >= 4, got {size!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    digits = load_digits()
    X = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    if classes is not None:
        bad = [c for c in classes if c not in range(10)]
        if bad or not classes:
            raise ValueError(f"classes must be a non-empty subset of 0..9, got {classes!r}")
        keep = torch.isin(y, torch.tensor(list(classes)))
        X, y = X[keep], y[keep]
    if size != 8:
        X = F.interpolate(X, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    rng = np.random.default_rng(seed)
    test_idx = []
    for label in torch.unique(y).tolist():
        idx = np.flatnonzero(y.numpy() == label)
        rng.shuffle(idx)
        test_idx.extend(idx[: max(1, round(len(idx) * test_fraction))].tolist())
    is_test = torch.zeros(len(y), dtype=torch.bool)
    is_test[test_idx] = True
    return Split(X[~is_test], y[~is_test], X[is_test], y[is_test])


# --------------------------------------------------------------------------- photos

_SKIMAGE_PHOTOS = (
    "astronaut", "brick", "camera", "cat", "chelsea", "coffee", "coins", "grass",
    "gravel", "immunohistochemistry", "moon", "page", "rocket", "text",
)
_SKLEARN_PHOTOS = ("china", "flower")
PHOTOS: tuple[str, ...] = tuple(sorted(_SKIMAGE_PHOTOS + _SKLEARN_PHOTOS))


def load_photo(name: str, gray: bool = False, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """Return a bundled real photo as a float32 tensor ``(C, H, W)`` in [0, 1].

    ``name`` is one of :data:`PHOTOS` (scikit-image's camera, astronaut, coffee, ...
    and scikit-learn's china and flower). ``gray=True`` gives one channel (ITU-R 601
    luma); ``size`` resizes to ``(size, size)`` or ``(H, W)`` with antialiasing.
    """
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose one of {', '.join(PHOTOS)}")
    if name in _SKLEARN_PHOTOS:
        from sklearn.datasets import load_sample_image

        arr = load_sample_image(f"{name}.jpg")
    else:
        import skimage.data

        arr = getattr(skimage.data, name)()
    img = torch.tensor(np.asarray(arr), dtype=torch.float32) / 255.0
    img = img.unsqueeze(0) if img.ndim == 2 else img.permute(2, 0, 1)
    if gray and img.shape[0] == 3:
        img = (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]).unsqueeze(0)
    elif not gray and img.shape[0] == 1:
        img = img.expand(3, -1, -1).clone()
    if size is not None:
        hw = (size, size) if isinstance(size, int) else tuple(size)
        if len(hw) != 2 or min(hw) < 1:
            raise ValueError(f"size must be a positive int or (H, W), got {size!r}")
        img = F.interpolate(img[None], size=hw, mode="bilinear", antialias=True, align_corners=False)[0]
    return img.clamp(0, 1).contiguous()


# --------------------------------------------------------------------------- shapes

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle")


@dataclass
class Shapes:
    """Generated shapes on textured backgrounds, with every kind of label.

    - ``images``: float32 ``(N, 3, S, S)`` in [0, 1]
    - ``labels``: one int64 tensor per image, the class (0 circle, 1 square,
      2 triangle) of each object
    - ``boxes``: one float32 tensor ``(k, 4)`` per image, ``(x1, y1, x2, y2)`` in
      pixels, tight around each object (x2, y2 exclusive)
    - ``masks``: int64 ``(N, S, S)`` semantic masks, 0 = background and
      ``label + 1`` for an object pixel
    - ``instance_masks``: one bool tensor ``(k, S, S)`` per image
    - ``targets``: int64 ``(N,)``, the class of each image's first object (the
      classification label when there is one object per image)
    """

    images: torch.Tensor
    labels: list[torch.Tensor]
    boxes: list[torch.Tensor]
    masks: torch.Tensor
    instance_masks: list[torch.Tensor]
    classes: tuple[str, ...] = field(default=SHAPE_CLASSES)

    @property
    def targets(self) -> torch.Tensor:
        return torch.stack([lab[0] for lab in self.labels])

    def __len__(self) -> int:
        return self.images.shape[0]


def _shape_mask(kind: int, cx: float, cy: float, r: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Boolean mask of one shape of 'radius' r centred at (cx, cy)."""
    if kind == 0:  # circle
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
    if kind == 1:  # axis-aligned square
        return (np.abs(xx - cx) <= r * 0.85) & (np.abs(yy - cy) <= r * 0.85)
    # upright triangle: apex on top, base at the bottom
    top, bottom = cy - r, cy + r
    t = np.clip((yy - top) / (bottom - top), 0, None)
    return (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= t * r)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth coloured texture: a gradient plus low-frequency noise, (S, S, 3)."""
    coarse = rng.uniform(0, 1, size=(3, 6, 6)).astype(np.float32)
    smooth = F.interpolate(torch.from_numpy(coarse)[None], size=(size, size), mode="bicubic", align_corners=False)[0]
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    direction = rng.uniform(-1, 1, size=2)
    grad = direction[0] * ramp[None, :] + direction[1] * ramp[:, None]
    base = rng.uniform(0.25, 0.55, size=3).astype(np.float32)
    bg = base[:, None, None] + 0.12 * (smooth.numpy() - 0.5) + 0.08 * grad[None]
    bg += rng.normal(0, 0.02, size=bg.shape).astype(np.float32)
    return bg.transpose(1, 2, 0)


def make_shapes(
    n: int,
    size: int = 64,
    min_objects: int = 1,
    max_objects: int = 1,
    min_radius: float | None = None,
    max_radius: float | None = None,
    seed: int = 0,
) -> Shapes:
    """Draw ``n`` images of circles, squares and triangles with boxes and masks.

    Each image has between ``min_objects`` and ``max_objects`` non-overlapping
    objects on a textured background; colours contrast with the background. The
    output depends only on the arguments (``seed`` included).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an int >= 16, got {size!r}")
    if not 1 <= min_objects <= max_objects:
        raise ValueError(f"need 1 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
    lo = size * 0.10 if min_radius is None else min_radius
    hi = size * 0.22 if max_radius is None else max_radius
    if not 2 <= lo <= hi < size / 2:
        raise ValueError(f"need 2 <= min_radius <= max_radius < size/2, got {lo}, {hi}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    images = np.empty((n, size, size, 3), dtype=np.float32)
    masks = np.zeros((n, size, size), dtype=np.int64)
    all_labels, all_boxes, all_inst = [], [], []
    for i in range(n):
        img = _background(rng, size)
        k = int(rng.integers(min_objects, max_objects + 1))
        labels, boxes, inst = [], [], []
        occupied = np.zeros((size, size), dtype=bool)
        attempts = 0
        while len(labels) < k:
            attempts += 1
            if attempts > 200:
                raise ValueError(f"could not place {k} objects in a {size}x{size} image; use fewer or smaller")
            kind = int(rng.integers(0, 3))
            r = float(rng.uniform(lo, hi))
            cx, cy = rng.uniform(r + 1, size - r - 1, size=2)
            m = _shape_mask(kind, cx, cy, r, yy, xx)
            if m.sum() < 4 or (m & occupied).any():
                continue
            grown = F.max_pool2d(torch.from_numpy(m.astype(np.float32))[None, None], 5, 1, 2)[0, 0].numpy() > 0
            occupied |= grown
            colour = np.clip(img[m].mean(0) + rng.choice([-1, 1], size=3) * rng.uniform(0.3, 0.45, size=3), 0, 1)
            img[m] = colour + rng.normal(0, 0.015, size=(int(m.sum()), 3))
            masks[i][m] = kind + 1
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            labels.append(kind)
            inst.append(m)
        images[i] = img
        all_labels.append(torch.tensor(labels, dtype=torch.int64))
        all_boxes.append(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        all_inst.append(torch.from_numpy(np.stack(inst)))
    return Shapes(
        images=torch.from_numpy(images).permute(0, 3, 1, 2).clamp(0, 1).contiguous(),
        labels=all_labels,
        boxes=all_boxes,
        masks=torch.from_numpy(masks),
        instance_masks=all_inst,
    )
