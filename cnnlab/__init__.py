"""cnnlab: the small library learners import in the CNN course's notebooks.

One module per concern: ``core`` (seeding, device, metric lines), ``data`` (offline
datasets), ``train`` (training loop with a progress bar), ``plot`` (figures) and
``checks`` (tolerant comparisons and rules for test cells). Nothing in here is an
exercise solution, and nothing here imports nbgrader or the grader: the course's
tooling lives in ``cnncourse`` and the instructor's grading service in ``cnngrade``.

The re-exports below are lazy, so ``python -m cnnlab.<module>`` does not pay for
importing torch unless it needs it.
"""

from importlib import import_module
from typing import Any

__all__ = ["get_device", "report_metric", "seed_everything"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("cnnlab.core"), name)
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
