"""cnnlab: the small helper package behind the CNN course.

One module per concern: ``core`` (seeding, device), ``data`` (offline datasets),
``train`` (training loop with a progress bar), ``plot`` (figures), ``checks``
(tolerant comparisons for test cells), ``grading`` (self-grading), ``autograde``
(sandboxed instructor grading) and ``bench`` (notebook timings). Nothing in here is an
exercise solution.

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
