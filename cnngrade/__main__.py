"""``python -m cnngrade``: see :mod:`cnngrade.cli`."""

import sys

from cnngrade.cli import main

if __name__ == "__main__":
    sys.exit(main())
