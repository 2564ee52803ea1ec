"""Moved: the converter is ``python -m cnncourse.nbsrc to-py|to-ipynb`` (this forwards to it)."""

import sys

from cnncourse.nbsrc import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
