"""cnnlab.core: seeding, device choice and the metric line that make bench reads."""

import random

import numpy as np
import pytest
import torch

from cnnlab.core import get_device, report_metric, seed_everything


def test_seed_everything_repeats_every_generator():
    gen = seed_everything(7)
    a = (random.random(), np.random.rand(), torch.rand(3), torch.rand(2, generator=gen))
    gen = seed_everything(7)
    b = (random.random(), np.random.rand(), torch.rand(3), torch.rand(2, generator=gen))
    assert a[0] == b[0] and a[1] == b[1]
    assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])
    seed_everything(8)
    assert not torch.equal(torch.rand(3), a[2])


@pytest.mark.parametrize("bad", [-1, 1.5, "0", None, True])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed"):
        seed_everything(bad)


def test_get_device():
    assert get_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert get_device().type == expected
    with pytest.raises(ValueError, match="prefer"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            get_device("cuda")


def test_report_metric_format(capsys):
    line = report_metric("held-out accuracy", 0.98765)
    assert capsys.readouterr().out.strip() == line == "[metric] held-out accuracy = 0.9877"
    with pytest.raises(ValueError):
        report_metric("a = b", 1.0)
