"""Figures used across the lectures: image grids, kernels, feature maps, curves, boxes, masks.

Every function returns the matplotlib Figure (the notebook shows it), so tests can
inspect titles and axes without a screen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.rcParams.setdefault("figure.dpi", 90)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _to_hwc(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """Turn images into something imshow understands.

    Tensors follow torch's layout, (C, H, W) or (H, W); NumPy arrays may be (H, W, C),
    or (C, H, W) when that is unambiguous.
    """
    if isinstance(img, torch.Tensor):
        arr = img.detach().cpu().float().numpy()
        if arr.ndim == 3:
            arr = arr.transpose(1, 2, 0)
    else:
        arr = np.asarray(img, dtype=np.float32)
        if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
            arr = arr.transpose(1, 2, 0)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3):
        raise ValueError(f"expected an image (H, W), (C, H, W) or (H, W, C), got shape {arr.shape}")
    return arr


def _grid(n: int, ncols: int, cell: float = 1.6, figsize: tuple[float, float] | None = None):
    if n < 1:
        raise ValueError("nothing to plot: got 0 images")
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize or (cell * ncols, cell * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes.flat


def show_images(
    images: torch.Tensor | Sequence, titles: Sequence[str] | None = None, ncols: int = 8,
    cmap: str | None = "gray", suptitle: str | None = None, figsize: tuple[float, float] | None = None,
    vmin: float | None = None, vmax: float | None = None,
):
    """A grid of images: a batch ``(N, C, H, W)`` / ``(N, H, W)`` or a list of images."""
    items = list(images) if not isinstance(images, torch.Tensor) else list(images.unbind(0))
    if titles is not None and len(titles) != len(items):
        raise ValueError(f"got {len(items)} images but {len(titles)} titles")
    fig, axes = _grid(len(items), ncols, figsize=figsize)
    for i, (ax, img) in enumerate(zip(axes, items)):
        arr = _to_hwc(img)
        ax.imshow(np.clip(arr, 0, 1) if arr.ndim == 3 else arr, cmap=None if arr.ndim == 3 else cmap, vmin=vmin, vmax=vmax)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_kernels(weight: torch.Tensor, ncols: int = 8, title: str = "kernels", max_kernels: int = 64):
    """Show conv filters ``(C_out, C_in, k, k)``: RGB when C_in is 3, else the first input channel.

    Each kernel is min-max scaled on its own so its pattern is visible.
    """
    if weight.ndim != 4:
        raise ValueError(f"expected conv weights (C_out, C_in, k, k), got shape {tuple(weight.shape)}")
    w = weight.detach().cpu().float()[:max_kernels]
    w = w if w.shape[1] == 3 else w[:, :1]
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    w = (w - lo) / (hi - lo + 1e-8)
    return show_images(w, ncols=ncols, suptitle=title, cmap="gray")


def show_feature_maps(fmap: torch.Tensor, max_maps: int = 16, ncols: int = 8, title: str = "feature maps",
                      cmap: str = "viridis"):
    """Show the channels of one feature map ``(C, H, W)`` or ``(1, C, H, W)``, one panel each."""
    if fmap.ndim == 4:
        if fmap.shape[0] != 1:
            raise ValueError(f"pass one sample: got a batch of {fmap.shape[0]}")
        fmap = fmap[0]
    if fmap.ndim != 3:
        raise ValueError(f"expected (C, H, W) or (1, C, H, W), got shape {tuple(fmap.shape)}")
    maps = fmap.detach().cpu().float()[:max_maps]
    return show_images(maps, titles=[f"ch {i}" for i in range(len(maps))], ncols=ncols, cmap=cmap, suptitle=title)


def plot_curves(series: Mapping[str, Sequence[float]], xlabel: str = "epoch", ylabel: str = "",
                title: str = "", logy: bool = False, ax=None, x: Sequence[float] | None = None):
    """Plot named series on one axis (loss curves, accuracy vs shift, latency vs FLOPs...)."""
    if not series:
        raise ValueError("series is empty")
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 3.5))
    for name, ys in series.items():
        xs = list(x) if x is not None else list(range(1, len(ys) + 1))
        ax.plot(xs, list(ys), marker="o" if len(ys) <= 30 else None, ms=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_history(history) -> plt.Figure:
    """Loss and accuracy curves of a :class:`cnnlab.train.History`, train vs validation."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.2))
    loss = {"train": history.train_loss}
    acc = {"train": history.train_acc}
    if history.val_loss:
        loss["validation"] = history.val_loss
        acc["validation"] = history.val_acc
    plot_curves(loss, ylabel="cross-entropy", title="loss", ax=ax_loss)
    plot_curves(acc, ylabel="accuracy", title="accuracy", ax=ax_acc)
    return fig


def draw_boxes(ax, boxes: torch.Tensor, labels: Sequence[str] | None = None, scores: Sequence[float] | None = None,
               color: str = "lime", linestyle: str = "-"):
    """Draw ``(x1, y1, x2, y2)`` boxes on an existing image axis, with optional text."""
    b = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    for i, (x1, y1, x2, y2) in enumerate(b.tolist()):
        ax.add_patch(plt.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, color=color, lw=1.5, ls=linestyle))
        text = []
        if labels is not None:
            text.append(str(labels[i]))
        if scores is not None:
            text.append(f"{float(scores[i]):.2f}")
        if text:
            ax.text(x1, y1 - 1, " ".join(text), color="black", fontsize=7, va="bottom",
                    bbox={"facecolor": color, "alpha": 0.7, "pad": 1, "lw": 0})
    return ax


def overlay_mask(ax, image: torch.Tensor, mask: torch.Tensor, num_classes: int | None = None, alpha: float = 0.45):
    """Show an image with a semantic mask (0 = background, transparent) painted over it."""
    ax.imshow(np.clip(_to_hwc(image), 0, 1))
    m = mask.detach().cpu().numpy()
    k = int(num_classes or m.max() + 1)
    colours = plt.get_cmap("tab10")(np.arange(k))
    rgba = colours[m]
    rgba[..., 3] = np.where(m > 0, alpha, 0.0)
    ax.imshow(rgba)
    ax.axis("off")
    return ax
