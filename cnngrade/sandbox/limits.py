"""Resource limits and the settings a worker needs to start sandboxed kernels (plain JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

GiB = 2**30
MiB = 2**20


@dataclass
class Limits:
    """Resource limits of one sandboxed kernel (and of every process it starts)."""

    memory_bytes: int = 6 * GiB       # RLIMIT_AS per process, and the cgroup's total memory
    cpu_seconds: int = 900            # RLIMIT_CPU (per process)
    nproc: int = 128                  # RLIMIT_NPROC: threads and processes of the sandbox uid
    fsize_bytes: int = 256 * MiB      # RLIMIT_FSIZE: largest file the kernel may write
    nofile: int = 1024                # RLIMIT_NOFILE
    tmpfs_bytes: int = 512 * MiB      # size of each of /tmp, the home and /dev/shm
    cell_output_bytes: int = 1 * MiB  # outputs kept per cell (errors are always kept)
    total_output_bytes: int = 8 * MiB  # outputs kept per notebook
    message_bytes: int = 32 * MiB     # largest single kernel message read (ZMQ_MAXMSGSIZE)
    # --gpu: the NVIDIA devices are visible and RLIMIT_AS is not set (CUDA reserves far more
    # address space than it uses); the cgroup still caps the memory where cgroups are available.
    gpu: bool = False


@dataclass
class SandboxSettings:
    """Everything a worker needs to start sandboxed kernels (JSON-serialisable)."""

    limits: Limits = field(default_factory=Limits)
    preload: list[str] = field(default_factory=list)
    use_cgroup: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SandboxSettings:
        data = dict(data)
        data["limits"] = Limits(**data.get("limits", {}))
        return cls(**data)
