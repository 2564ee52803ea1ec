"""Shared pytest setup: headless matplotlib, one torch thread per worker, the course under test."""

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# the course tooling finds the course from the working directory or this variable
os.environ.setdefault("CNN_COURSE_ROOT", str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
