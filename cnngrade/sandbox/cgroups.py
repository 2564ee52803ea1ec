"""Memory, process-count and CPU caps for one kernel's whole process tree (cgroup v1 or v2).

Used when the machine lets the grader create cgroups (root, or v2 with delegation);
without them the per-process rlimits of the boot module still apply.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


class CGroup:
    """A memory + pids cgroup for one kernel, when the machine lets us make one (v1 or v2)."""

    _counter = 0

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs

    @classmethod
    def create(cls, memory_bytes: int, pids: int, cpus: float = 1.0) -> CGroup | None:
        """A new cgroup with these caps, or None when the machine does not let us make one."""
        CGroup._counter += 1
        name = f"cnnlab-{os.getpid()}-{CGroup._counter}"
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return None
        dirs: dict[str, Path] = {}
        try:
            if Path("/sys/fs/cgroup/cgroup.controllers").exists():
                if not _create_v2(dirs, lines, name, memory_bytes, pids, cpus):
                    return None
            else:
                _create_v1(dirs, lines, name, memory_bytes, pids, cpus)
        except (OSError, StopIteration, IndexError):
            cls(dirs).remove()
            return None
        return cls(dirs)

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def oom_killed(self) -> bool:
        try:
            if "v2" in self.dirs:
                events = (self.dirs["v2"] / "memory.events").read_text()
                return any(line.split()[0] in ("oom_kill", "oom") and int(line.split()[1]) > 0
                           for line in events.splitlines())
            if "memory" in self.dirs:
                ctl = (self.dirs["memory"] / "memory.oom_control").read_text()
                kills = [int(line.split()[1]) for line in ctl.splitlines() if line.startswith("oom_kill ")]
                failcnt = int((self.dirs["memory"] / "memory.failcnt").read_text().strip() or 0)
                return bool(kills and kills[0] > 0) or failcnt > 0
        except (OSError, ValueError, IndexError):
            return False
        return False

    def kill_all(self) -> None:
        for d in self.dirs.values():
            try:
                for pid in (d / "cgroup.procs").read_text().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, PermissionError, ValueError):
                        pass
            except OSError:
                pass

    def remove(self) -> None:
        for d in self.dirs.values():
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    self.kill_all()
                    time.sleep(0.05)


def _create_v2(dirs: dict[str, Path], lines: list[str], name: str, memory_bytes: int, pids: int,
               cpus: float) -> bool:
    """cgroup v2: a child of our own cgroup, if memory and pids are delegated to it."""
    rel = next(line.split("::", 1)[1] for line in lines if line.startswith("0::"))
    parent = Path("/sys/fs/cgroup") / rel.lstrip("/")
    if not {"memory", "pids"} <= set((parent / "cgroup.subtree_control").read_text().split()):
        return False
    d = parent / name
    d.mkdir()
    dirs["v2"] = d
    (d / "memory.max").write_text(str(memory_bytes))
    if (d / "memory.swap.max").exists():
        (d / "memory.swap.max").write_text("0")
    (d / "pids.max").write_text(str(pids))
    if (d / "cpu.max").exists():
        (d / "cpu.max").write_text(f"{int(cpus * 100000)} 100000")
    return True


def _create_v1(dirs: dict[str, Path], lines: list[str], name: str, memory_bytes: int, pids: int,
               cpus: float) -> None:
    """cgroup v1: one folder per controller; the CPU cap is optional."""
    for controller in ("memory", "pids"):
        rel = next(line.split(":", 2)[2] for line in lines if line.split(":")[1] == controller)
        d = Path("/sys/fs/cgroup") / controller / rel.lstrip("/") / name
        d.mkdir()
        dirs[controller] = d
    (dirs["memory"] / "memory.limit_in_bytes").write_text(str(memory_bytes))
    (dirs["pids"] / "pids.max").write_text(str(pids))
    cpu_line = next((line for line in lines if "cpu" in line.split(":")[1].split(",")), None)
    if cpu_line is None:
        return
    ctrl = cpu_line.split(":")[1]  # one core per kernel, so a fork bomb cannot starve the others
    d = Path("/sys/fs/cgroup") / ctrl / cpu_line.split(":", 2)[2].lstrip("/") / name
    try:
        d.mkdir()
        dirs["cpu"] = d
        (d / "cpu.cfs_period_us").write_text("100000")
        (d / "cpu.cfs_quota_us").write_text(str(int(cpus * 100000)))
    except OSError:
        pass
