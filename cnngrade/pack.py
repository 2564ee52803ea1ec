"""Folders as bytes: what a job on another machine receives (a submission, the template) and sends back.

A :class:`Tree` is a list of entries read without following any link: regular files
with their bytes, symbolic links with their target, anything else (a fifo, a device)
as "other". Unpacked on a worker, it rebuilds the folder as the job would have seen it
on the instructor's machine (a link stays a link, so preflight reports it the same
way), but never writes outside the destination. The bytes shipped are those the job
reads: the notebooks at the top (up to preflight's size limit each, 200 MiB together) and
the other files the job would copy (100 MiB, taken greedily in the same order as
:func:`~cnngrade.files.copy_regular_files`); any other file keeps its size but not its
contents (a sparse file), so the job reports it exactly as it would locally.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cnngrade.files import MAX_EXTRA_BYTES
from cnngrade.preflight.read import MAX_NOTEBOOK_BYTES

NOTEBOOK_BYTES = 200 * 2**20   # top-level notebooks' contents shipped per folder
MAX_ENTRIES = 20_000           # entries past this are dropped (the job copies at most 200 extra files)


class PackError(ValueError):
    """A tree entry that would land outside its folder."""


@dataclass
class Entry:
    path: str            # relative, POSIX separators
    kind: str            # file | link | other
    data: bytes = b""
    size: int = 0        # a file's size (``data`` is shorter when the budget ran out)
    target: str = ""     # a link's target, never followed


@dataclass
class Tree:
    entries: list[Entry] = field(default_factory=list)
    link: bool = False   # the folder itself is a symbolic link (the job ignores such a submission)

    @property
    def nbytes(self) -> int:
        return sum(len(e.data) for e in self.entries)


@dataclass
class Budget:
    """Bytes of contents still to ship: top-level notebooks, and every other file."""

    notebooks: int = NOTEBOOK_BYTES
    others: int = MAX_EXTRA_BYTES
    notebook_limit: int = MAX_NOTEBOOK_BYTES

    @classmethod
    def unlimited(cls) -> Budget:
        """For the grader's own output (already size-limited by the job): everything is shipped."""
        return cls(2**62, 2**62, 2**62)

    def take(self, rel: str, size: int) -> bool:
        """Ship this file's contents? (and count them)."""
        if "/" not in rel and rel.endswith(".ipynb"):
            if size > min(self.notebooks, self.notebook_limit):
                return False
            self.notebooks -= size
        else:
            if size > self.others:
                return False
            self.others -= size
        return True


def _entry(path: Path, rel: str, budget: Budget) -> Entry:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return Entry(rel, "link", target=os.readlink(path))
    if not stat.S_ISREG(st.st_mode):
        return Entry(rel, "other")
    data = b""
    if budget.take(rel, st.st_size):
        with open(path, "rb") as fh:
            data = fh.read(st.st_size)
    return Entry(rel, "file", data, st.st_size)


def pack_tree(folder: Path, budget: Budget | None = None, max_entries: int = MAX_ENTRIES) -> Tree:
    """The folder's entries, sorted as ``os.walk`` visits them; links (to folders too) are not followed."""
    folder = Path(folder)
    if folder.is_symlink():
        return Tree(link=True)
    tree, left = Tree(), budget or Budget()
    if not folder.is_dir():
        return tree
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        linked = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = sorted(d for d in dirnames if d not in linked)
        for name in sorted(filenames + linked):
            if len(tree.entries) >= max_entries:
                return tree
            path = Path(dirpath) / name
            try:
                tree.entries.append(_entry(path, path.relative_to(folder).as_posix(), left))
            except OSError:
                continue
    return tree


def _safe(dest: Path, rel: str, links: set[str]) -> Path:
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or any(p in ("..", ".", "") for p in parts):
        raise PackError(f"unsafe entry {rel!r}")
    if any("/".join(parts[:i]) in links for i in range(1, len(parts))):
        raise PackError(f"entry {rel!r} lies under a link")
    return dest.joinpath(*parts)


def unpack_tree(tree: Tree, dest: Path) -> Path:
    """Rebuild the folder at ``dest`` (which must not exist yet); ``dest``."""
    dest = Path(dest)
    if tree.link:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.symlink("/nonexistent-link-target", dest)
        return dest
    dest.mkdir(parents=True)
    links: set[str] = set()
    for entry in tree.entries:
        path = _safe(dest, entry.path, links)
        path.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "link":
            os.symlink(entry.target, path)
            links.add(entry.path)
        elif entry.kind == "other":
            os.mkfifo(path)
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as fh:
                fh.write(entry.data)
                if entry.size > len(entry.data):
                    fh.truncate(entry.size)
    return dest
