"""File operations on untrusted folders: copy regular files only, hash a folder, swap a folder in."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

MAX_EXTRA_FILES = 200
MAX_EXTRA_BYTES = 100 * 2**20


def copy_regular_files(src: Path, dest: Path, skip_notebooks: bool = False, names: set[str] | None = None,
                       limit_files: int = MAX_EXTRA_FILES, limit_bytes: int = MAX_EXTRA_BYTES) -> list[str]:
    """Copy regular files only (no symlinks, devices, fifos); return one-line notes on what was skipped."""
    notes: list[str] = []
    count = size = 0
    if not src.is_dir() or src.is_symlink():
        return notes
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d != ".ipynb_checkpoints"
                             and not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(src)
            if (skip_notebooks and name.endswith(".ipynb")) or (names is not None and str(rel) in names):
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                notes.append(f"skipped {rel} (not a regular file)")
                continue
            if count >= limit_files or size + st.st_size > limit_bytes:
                notes.append(f"skipped {rel} (more than {limit_files} files or {limit_bytes // 2**20} MiB)")
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "rb") as fi, open(target, "wb") as fo:
                shutil.copyfileobj(fi, fo)
            count += 1
            size += st.st_size
    return notes


def hash_dir(path: Path) -> str:
    """SHA-256 of a folder's names and contents (links by their target, never followed)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            h.update(str(p.relative_to(path)).encode("utf-8", "surrogateescape") + b"\0")
            if p.is_symlink():
                h.update(b"link:" + os.readlink(p).encode("utf-8", "surrogateescape"))
            elif p.is_file():
                with open(p, "rb") as fh:
                    for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        h.update(chunk)
            h.update(b"\0")
    return h.hexdigest()


def install_dir(src: Path, dest: Path, mode: int | None = None) -> None:
    """Replace ``dest`` by a copy of ``src`` (regular files only, chmod ``mode``), swapping at the end."""
    tmp = dest.with_name(f".{dest.name}.new-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    copy_regular_files(src, tmp, limit_files=10_000, limit_bytes=2**40)
    if mode is not None:
        for dirpath, _dirs, filenames in os.walk(tmp):
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), mode)
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    if dest.exists() or dest.is_symlink():
        if dest.is_symlink() or not dest.is_dir():
            dest.unlink()
        else:
            dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


class _Budget:
    def __init__(self, files: int, size: int) -> None:
        self.files, self.size, self.notes = files, size, []


def _open_dir(name: str, dir_fd: int | None = None) -> int:
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)


def copy_out_nofollow(root_fd: int, parts: tuple[str, ...], dest: Path, limit_files: int = MAX_EXTRA_FILES,
                      limit_bytes: int = MAX_EXTRA_BYTES) -> list[str]:
    """Copy the regular files under ``parts`` of an untrusted tree (``root_fd``: a directory fd).

    Every path component is opened relative to its parent with ``O_NOFOLLOW``, so no link
    planted in the tree (even one swapped in while copying) is ever followed; notebooks,
    links, devices and fifos are skipped; at most ``limit_files`` files and ``limit_bytes``.
    """
    fds = [root_fd]
    try:
        for part in parts:
            fds.append(_open_dir(part, fds[-1]))
        budget = _Budget(limit_files, limit_bytes)
        _copy_level(fds[-1], dest, Path(), budget, depth=0)
        return budget.notes
    except OSError:
        return ["files written by the notebook could not be read"]
    finally:
        for fd in fds[1:]:
            os.close(fd)


def _copy_level(dir_fd: int, dest: Path, rel: Path, budget: _Budget, depth: int) -> None:
    for name in sorted(os.listdir(dir_fd)):
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode) and name != ".ipynb_checkpoints" and depth < 20:
            sub = _open_dir(name, dir_fd)
            try:
                _copy_level(sub, dest, rel / name, budget, depth + 1)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode) and not name.endswith(".ipynb"):
            _copy_file(dir_fd, name, dest / rel / name, budget)


def _copy_file(dir_fd: int, name: str, target: Path, budget: _Budget) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return
        if budget.files <= 0 or st.st_size > budget.size:
            budget.notes.append(f"file {target.name} written by the notebook not kept (over "
                                f"{MAX_EXTRA_FILES} files or {MAX_EXTRA_BYTES // 2**20} MiB)")
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.dup(fd), "rb") as fi, open(target, "wb") as fo:
            budget.size -= fo.write(fi.read(budget.size))
        budget.files -= 1
    finally:
        os.close(fd)
