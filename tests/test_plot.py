"""cnnlab.plot: every helper draws what it is given, with titles and clear errors."""

import matplotlib.pyplot as plt
import pytest
import torch

from cnnlab.plot import (
    draw_boxes,
    overlay_mask,
    plot_curves,
    plot_history,
    show_feature_maps,
    show_images,
    show_kernels,
)
from cnnlab.train import History


def teardown_function():
    plt.close("all")


def test_show_images_grid_and_titles():
    fig = show_images(torch.rand(5, 3, 8, 8), titles=list("abcde"), ncols=3, suptitle="grid")
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 5 and [ax.get_title() for ax in axes] == list("abcde")
    assert len(fig.axes) == 6  # 2 rows x 3 columns, the last one hidden
    with pytest.raises(ValueError):
        show_images(torch.rand(2, 8, 8), titles=["only one"])
    with pytest.raises(ValueError):
        show_images(torch.rand(2, 2, 2, 2, 2))


def test_show_kernels_scales_each_kernel():
    w = torch.randn(6, 3, 3, 3) * 100
    fig = show_kernels(w)
    for ax in [a for a in fig.axes if a.images]:
        arr = ax.images[0].get_array()
        assert abs(arr.min()) < 1e-6 and abs(arr.max() - 1) < 1e-4 and arr.shape == (3, 3, 3)
    fig = show_kernels(torch.randn(4, 1, 3, 3))  # one input channel: each kernel is a 3x3 gray image
    assert [a.images[0].get_array().shape for a in fig.axes if a.images] == [(3, 3)] * 4
    with pytest.raises(ValueError):
        show_kernels(torch.randn(3, 3))


def test_show_feature_maps():
    fig = show_feature_maps(torch.randn(1, 20, 6, 6), max_maps=10)
    assert len([a for a in fig.axes if a.images]) == 10
    with pytest.raises(ValueError):
        show_feature_maps(torch.randn(2, 3, 4, 4))


def test_curves_and_history():
    fig = plot_curves({"a": [1, 2, 3], "b": [3, 2, 1]}, xlabel="epoch", ylabel="loss", title="t")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "epoch" and ax.get_title() == "t" and len(ax.lines) == 2
    h = History(train_loss=[1.0, 0.5], train_acc=[0.5, 0.8], val_loss=[1.1, 0.7], val_acc=[0.4, 0.7])
    fig = plot_history(h)
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    with pytest.raises(ValueError):
        plot_curves({})


def test_boxes_and_masks():
    fig, ax = plt.subplots()
    ax.imshow(torch.rand(16, 16, 3).numpy())
    draw_boxes(ax, torch.tensor([[1, 2, 5, 6], [3, 3, 9, 9]]), labels=["circle", "square"], scores=[0.9, 0.5])
    assert len(ax.patches) == 2 and len(ax.texts) == 2
    assert ax.patches[0].get_width() == 4
    fig, ax = plt.subplots()
    mask = torch.zeros(8, 8, dtype=torch.long)
    mask[2:4, 2:4] = 2
    overlay_mask(ax, torch.rand(3, 8, 8), mask, num_classes=4)
    rgba = ax.images[1].get_array()
    assert rgba[0, 0, 3] == 0 and rgba[2, 2, 3] > 0
