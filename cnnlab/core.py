"""Reproducibility and device choice, shared by every notebook."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

METRIC_PREFIX = "[metric]"


DEVICE_ENV = "CNNLAB_DEVICE"
DEVICES = ("cpu", "cuda", "mps")
CUBLAS_WORKSPACE = ":4096:8"


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) and ask torch for deterministic kernels.

    What it sets, so a notebook reruns identically on the same machine:

    - the global generators of ``random``, NumPy and torch (every CUDA device too);
    - ``torch.use_deterministic_algorithms(True, warn_only=True)``: torch picks
      deterministic kernels where it has them and *warns* (instead of failing) on an
      operation that has none, such as some CUDA scatter/index backward passes;
    - cuDNN: ``deterministic = True`` and ``benchmark = False`` (no autotuned, run-to-run
      varying convolution algorithms);
    - ``CUBLAS_WORKSPACE_CONFIG`` (``:4096:8``), which cuBLAS needs for reproducible
      matrix products, but only while CUDA is not yet initialised in this process
      (cuBLAS reads it once); a value already in the environment is kept.

    What it cannot do: Python's string hashing (the order of a ``set`` of strings) is
    fixed when the interpreter starts, from the ``PYTHONHASHSEED`` environment variable;
    setting it here would change nothing for the running process, so it is not touched.
    ``make`` exports ``PYTHONHASHSEED=0`` for the kernels it starts. Results still
    differ between a CPU and a GPU, between GPU models and between library versions
    (different kernels sum in different orders): tests compare with tolerances.

    Returns a ``torch.Generator`` seeded with the same value, for code that wants
    its own random stream (data splits, augmentation) independent of global state.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds every CUDA device as well
    if not torch.cuda.is_initialized():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def _available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return torch.backends.mps.is_available()
    return True


def get_device(prefer: str = "auto") -> torch.device:
    """Pick the device once: the one asked for, else CUDA when present, else the CPU.

    ``prefer`` is ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"`` (Apple GPUs). With
    ``"auto"`` the environment variable ``CNNLAB_DEVICE`` (``cpu``, ``cuda`` or ``mps``)
    decides when it is set, so a whole run can be forced onto one device
    (``CNNLAB_DEVICE=cuda make test-gpu``); otherwise CUDA is used when present. MPS is
    never picked automatically: it lacks float64, which several tests use. Asking for a
    device this machine lacks is an error rather than a silent fallback.
    """
    if prefer not in ("auto", *DEVICES):
        raise ValueError(f"prefer must be 'auto', 'cpu', 'cuda' or 'mps', got {prefer!r}")
    source = f"prefer={prefer!r}"
    if prefer == "auto":
        asked = os.environ.get(DEVICE_ENV, "").strip().lower()
        if asked and asked not in DEVICES:
            raise ValueError(f"{DEVICE_ENV} must be 'cpu', 'cuda' or 'mps', got {asked!r}")
        if not asked:
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        prefer, source = asked, f"{DEVICE_ENV}={asked}"
    if not _available(prefer):
        raise RuntimeError(f"{source} but no {prefer.upper()} device is available to torch "
                           f"{torch.__version__} on this machine (use cpu, or unset {DEVICE_ENV})")
    return torch.device(prefer)


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
