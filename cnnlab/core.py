"""Reproducibility and device choice, shared by every notebook."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

METRIC_PREFIX = "[metric]"


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) so a notebook reruns identically.

    Returns a ``torch.Generator`` seeded with the same value, for code that wants
    its own random stream (data splits, augmentation) independent of global state.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    return torch.Generator().manual_seed(seed)


def get_device(prefer: str = "auto") -> torch.device:
    """Pick the device once: CUDA when present (or asked for), else the CPU.

    ``prefer`` is ``"auto"``, ``"cpu"`` or ``"cuda"``; asking for CUDA on a machine
    without it is an error rather than a silent fallback.
    """
    if prefer not in ("auto", "cpu", "cuda"):
        raise ValueError(f"prefer must be 'auto', 'cpu' or 'cuda', got {prefer!r}")
    if prefer == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if prefer == "cuda":
        raise ValueError("prefer='cuda' but no CUDA device is available")
    return torch.device("cpu")


def report_metric(name: str, value: float, fmt: str = ".4f") -> str:
    """Print a metric in the one format ``make bench`` collects from notebook outputs.

    Example: ``report_metric("held-out accuracy", 0.987)`` prints
    ``[metric] held-out accuracy = 0.9870``.
    """
    if not name or "=" in name:
        raise ValueError(f"metric name must be non-empty and contain no '=', got {name!r}")
    line = f"{METRIC_PREFIX} {name} = {float(value):{fmt}}"
    print(line)
    return line
