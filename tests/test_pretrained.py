"""The course's pretrained backbone: the shipped file is what the script produces, bit for bit."""

from __future__ import annotations

import time

import pytest
import torch

from cnnlab import pretrained
from cnnlab.pretrained import (
    WEIGHTS_PATH,
    DigitsNet,
    imagenet_resnet18,
    load_backbone,
    state_differences,
    target_split,
    train_backbone,
)
from cnnlab.train import evaluate


def test_script_reproduces_the_shipped_file_bit_for_bit():
    shipped = torch.load(WEIGHTS_PATH, map_location="cpu", weights_only=True)
    problems = state_differences(train_backbone().state_dict(), shipped)
    assert not problems, "retrain with `python -m cnnlab.pretrained`:\n" + "\n".join(problems)


def test_state_differences_sees_a_single_changed_bit():
    state = {k: v.clone() for k, v in DigitsNet().state_dict().items()}
    changed = {k: v.clone() for k, v in state.items()}
    w = changed["fc.weight"].view(torch.int32)
    w[0, 0] ^= 1  # flip the lowest mantissa bit of one weight
    assert state_differences(state, state) == []
    assert [p.split(":")[0] for p in state_differences(state, changed)] == ["fc.weight"]
    assert state_differences(state, {k: v for k, v in state.items() if k != "fc.bias"}) == ["only in one: fc.bias"]


def test_shipped_checkpoint_is_small_and_classifies_its_source_digits():
    assert WEIGHTS_PATH.stat().st_size < 1_000_000
    net = load_backbone()
    assert not net.training
    _, _, X_test, y_test = pretrained.source_data()
    _, acc = evaluate(net, (X_test, y_test))
    assert acc >= 0.95, f"held-out accuracy on digits 0-4 is {acc:.3f}"


def test_target_split_relabels_5_to_9_and_draws_few_labels_per_class():
    split = target_split(labels_per_class=3, seed=1)
    assert tuple(split.X_train.shape) == (15, 1, 16, 16)
    assert sorted(split.y_train.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert set(split.y_test.tolist()) == {0, 1, 2, 3, 4}
    full = target_split(labels_per_class=None, seed=1)
    assert len(full.X_train) > 600 and torch.equal(full.X_test, split.X_test)
    with pytest.raises(ValueError):
        target_split(labels_per_class=0)


def test_imagenet_path_says_why_in_one_line_without_downloading(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty cache
    monkeypatch.delenv("CNNLAB_OFFLINE", raising=False)

    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(pretrained.socket, "create_connection", no_network)
    start = time.perf_counter()
    result = imagenet_resnet18()
    assert result.model is None and "network unreachable" in result.message and "\n" not in result.message
    assert len(result.categories) == 1000
    off = imagenet_resnet18(allow_download=False)
    assert off.model is None and "downloads are off" in off.message
    assert time.perf_counter() - start < 5
