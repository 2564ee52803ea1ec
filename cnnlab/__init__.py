"""cnnlab: the small helper package behind the CNN course.

One module per concern: ``core`` (seeding, device), ``data`` (offline datasets),
``train`` (training loop with a progress bar), ``plot`` (figures), ``checks``
(tolerant comparisons for test cells), ``grading`` (self-grading) and ``bench``
(notebook timings). Nothing in here is an exercise solution.
"""

from cnnlab.core import get_device, report_metric, seed_everything

__all__ = ["get_device", "report_metric", "seed_everything"]
__version__ = "0.1.0"
