"""cnnlab.core: seeding, device choice and the metric line that make bench reads."""

import os
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


def test_seed_everything_asks_for_deterministic_kernels(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
        seed_everything(0)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2:]


def test_seed_everything_leaves_cublas_alone_once_cuda_started(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    seed_everything(0)
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    seed_everything(0)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_seed_everything_does_not_pretend_to_set_the_hash_seed(monkeypatch):
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    seed_everything(3)
    assert "PYTHONHASHSEED" not in os.environ
    assert "PYTHONHASHSEED" in seed_everything.__doc__


def _machine(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


def test_get_device_defaults(monkeypatch):
    monkeypatch.delenv("CNNLAB_DEVICE", raising=False)
    assert get_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert get_device().type == expected
    _machine(monkeypatch, cuda=False, mps=True)
    assert get_device().type == "cpu", "MPS is only used when asked for"
    assert get_device("mps").type == "mps"
    _machine(monkeypatch, cuda=True, mps=True)
    assert get_device().type == "cuda"
    with pytest.raises(ValueError, match="prefer"):
        get_device("tpu")


@pytest.mark.parametrize("asked", ["cpu", "cuda", "mps", " CUDA "])
def test_get_device_honours_the_environment(monkeypatch, asked):
    _machine(monkeypatch, cuda=True, mps=True)
    monkeypatch.setenv("CNNLAB_DEVICE", asked)
    assert get_device().type == asked.strip().lower()
    assert get_device("cpu").type == "cpu", "an explicit prefer wins over the environment"


@pytest.mark.parametrize("asked", ["cuda", "mps"])
def test_get_device_refuses_a_missing_device_in_one_line(monkeypatch, asked):
    _machine(monkeypatch, cuda=False, mps=False)
    monkeypatch.setenv("CNNLAB_DEVICE", asked)
    with pytest.raises(RuntimeError, match=f"CNNLAB_DEVICE={asked} but no {asked.upper()} device") as err:
        get_device()
    assert "\n" not in str(err.value)
    monkeypatch.delenv("CNNLAB_DEVICE")
    with pytest.raises(RuntimeError, match=f"prefer='{asked}' but no {asked.upper()}"):
        get_device(asked)


def test_get_device_rejects_an_unknown_environment_value(monkeypatch):
    monkeypatch.setenv("CNNLAB_DEVICE", "tpu")
    with pytest.raises(ValueError, match="CNNLAB_DEVICE must be"):
        get_device()


def test_report_metric_format(capsys):
    line = report_metric("held-out accuracy", 0.98765)
    assert capsys.readouterr().out.strip() == line == "[metric] held-out accuracy = 0.9877"
    with pytest.raises(ValueError):
        report_metric("a = b", 1.0)
