"""The notebook metadata every stored course notebook carries.

JupyterLab writes the kernel's ``language_info`` into a notebook when it opens it; storing
the same values keeps a freshly opened lecture from showing as modified.
"""

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                 "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                 "pygments_lexer": "ipython3", "version": "3.11.7"}
METADATA = {"kernelspec": KERNELSPEC, "language_info": LANGUAGE_INFO}


def normalise(path) -> bool:
    """Give a stored notebook the course's kernelspec and language_info; return whether it changed."""
    import json
    from pathlib import Path

    path = Path(path)
    raw = path.read_text()
    nb = json.loads(raw)
    if all(nb["metadata"].get(k) == v for k, v in METADATA.items()):
        return False
    nb["metadata"].update(METADATA)
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    return True


def main() -> int:
    """``python -m cnncourse.nbmeta``: normalise every lecture and exercise source notebook."""
    from cnncourse.paths import course_root

    root = course_root()
    for path in sorted((root / "notebooks").glob("*.ipynb")) + sorted((root / "source").glob("*/*.ipynb")):
        if normalise(path):
            print(f"{path.relative_to(root)}: metadata normalised")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
