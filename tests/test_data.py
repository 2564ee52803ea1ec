"""cnnlab.data: digits, photos and generated shapes, checked against independent computations."""

import pytest
import torch
import torch.nn.functional as F

from cnnlab.data import PHOTOS, SHAPE_CLASSES, load_digits_split, load_photo, make_shapes


def test_digits_split_is_stratified_and_complete():
    split = load_digits_split()
    X_train, y_train, X_test, y_test = split
    assert X_train.shape[1:] == (1, 8, 8) and X_train.dtype == torch.float32
    assert len(X_train) + len(X_test) == 1797
    assert 0.0 <= float(X_train.min()) and float(X_train.max()) <= 1.0
    assert torch.unique(y_test).tolist() == list(range(10))
    for label in range(10):  # each class keeps ~25% in test
        n_test, n_all = int((y_test == label).sum()), int((y_test == label).sum() + (y_train == label).sum())
        assert abs(n_test / n_all - 0.25) < 0.02


def test_digits_split_is_deterministic_and_seeded():
    a, b, c = load_digits_split(seed=1), load_digits_split(seed=1), load_digits_split(seed=2)
    assert torch.equal(a.X_test, b.X_test) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.X_test, c.X_test)


def test_digits_upsampling_matches_torch_interpolate():
    small, big = load_digits_split(size=8), load_digits_split(size=16)
    expected = F.interpolate(small.X_test, size=(16, 16), mode="bilinear", align_corners=False).clamp(0, 1)
    assert big.X_test.shape[1:] == (1, 16, 16)
    torch.testing.assert_close(big.X_test, expected)


def test_digits_class_subset():
    split = load_digits_split(classes=(0, 1, 2))
    assert set(split.y_train.tolist()) == {0, 1, 2}


@pytest.mark.parametrize("kwargs", [{"size": 3}, {"size": 8.0}, {"test_fraction": 0}, {"test_fraction": 1.5},
                                    {"classes": (11,)}, {"classes": ()}])
def test_digits_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        load_digits_split(**kwargs)


@pytest.mark.parametrize("name", PHOTOS)
def test_every_photo_loads_offline(name):
    img = load_photo(name)
    assert img.ndim == 3 and img.shape[0] == 3 and img.dtype == torch.float32
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0 and float(img.std()) > 0.01


def test_photo_gray_and_resize():
    rgb = load_photo("astronaut")
    gray = load_photo("astronaut", gray=True)
    assert gray.shape == (1, 512, 512)
    torch.testing.assert_close(gray[0], 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])
    assert load_photo("camera", size=64).shape == (3, 64, 64)
    assert load_photo("coins", gray=True, size=(30, 40)).shape == (1, 30, 40)


@pytest.mark.parametrize("kwargs", [{"name": "lena"}, {"name": "camera", "size": 0}, {"name": "camera", "size": (1, 2, 3)}])
def test_photo_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        load_photo(**kwargs)


def test_shapes_labels_boxes_and_masks_agree():
    data = make_shapes(40, size=48, min_objects=1, max_objects=3, seed=3)
    assert data.images.shape == (40, 3, 48, 48) and data.masks.shape == (40, 48, 48)
    assert len(data) == 40 and data.classes == SHAPE_CLASSES
    for i in range(40):
        labels, boxes, inst = data.labels[i], data.boxes[i], data.instance_masks[i]
        assert 1 <= len(labels) <= 3 and boxes.shape == (len(labels), 4) and inst.shape == (len(labels), 48, 48)
        for k in range(len(labels)):
            ys, xs = torch.nonzero(inst[k], as_tuple=True)
            assert boxes[k].tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
            assert bool((data.masks[i][inst[k]] == labels[k] + 1).all())
        assert int((data.masks[i] > 0).sum()) == int(inst.sum())  # objects do not overlap
    assert set(torch.cat(data.labels).tolist()) == {0, 1, 2}
    assert data.targets.shape == (40,)


def test_shapes_deterministic_from_seed():
    a, b, c = make_shapes(5, seed=1), make_shapes(5, seed=1), make_shapes(5, seed=2)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, c.images)


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"n": 2, "size": 8}, {"n": 2, "min_objects": 3, "max_objects": 2},
                                    {"n": 2, "min_radius": 1}, {"n": 1, "size": 16, "max_objects": 30, "min_objects": 30}])
def test_shapes_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        make_shapes(**kwargs)
