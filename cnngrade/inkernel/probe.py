"""Import check run in a sandbox before grading: ``python probe.py MODULE...``.

Exits 0 when every module imports; otherwise prints one line naming the first module
that does not (and why) and exits 1. Standard library only.
"""

import importlib
import sys


def main(names: list[str]) -> int:
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - any failure is the answer
            print(f"cannot import {name} ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})")
            return 1
    return 0


if __name__ == "__main__":
    if sys.path and sys.path[0].endswith("inkernel"):
        sys.path.pop(0)
    sys.exit(main(sys.argv[1:]))
