"""Distributed data-parallel training on the CPU: a small, complete ``torch.distributed`` demo.

A notebook cannot hand a function defined in one of its cells to new processes (they are
started fresh and import code by name), so the demo lives here, importable:

- :func:`run_ddp` starts ``world_size`` processes with the ``gloo`` backend, joined through
  a file in a private temporary folder (no ports to pick, nothing to clean up by hand);
  each wraps the same small CNN in ``DistributedDataParallel``, trains on its shard of
  every global batch and times the steps and a bare all-reduce of the model's size;
- :func:`time_single_process` times the same steps in the calling process, and
  :func:`train_single_process` trains on the whole batch, so a notebook can show that
  DDP reproduces single-process training and measure where it pays off.

Every process uses one torch thread, so 1 vs 2 processes compares one core with two.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 10
IMAGE_SIZE = 8


@dataclass(frozen=True)
class ScalingCase:
    """One configuration to time: the CNN's ``width``, the global ``batch_size`` of a step, and
    the width of an optional fully connected hidden layer (``fc_width``, 0 for none) that adds
    many parameters but little compute per parameter."""

    width: int
    batch_size: int
    fc_width: int = 0


@dataclass(frozen=True)
class StepTime:
    """Timings of one :class:`ScalingCase` with ``world_size`` processes.

    Each is the fastest of several repetitions: on a shared machine other programs only
    ever add time, so the minimum is the least disturbed measurement. ``step_seconds`` is a whole training step (forward, backward with its gradient
    all-reduce, optimizer step); ``allreduce_seconds`` is a bare all-reduce of a buffer as
    large as the model's parameters (0 for a single process, which has nothing to send).
    """

    world_size: int
    width: int
    batch_size: int
    fc_width: int
    num_params: int
    step_seconds: float
    allreduce_seconds: float

    @property
    def samples_per_second(self) -> float:
        """Training throughput: global batch size divided by the step time."""
        return self.batch_size / self.step_seconds


@dataclass(frozen=True)
class DDPRun:
    """What :func:`run_ddp` brings back: the timings and rank 0's parameters after training.

    ``allreduce_sweep`` holds ``(number of float32 values, seconds)`` for a bare all-reduce of
    each requested buffer size (fastest of several repetitions).
    """

    times: list[StepTime]
    final_params: torch.Tensor
    start_seconds: float
    allreduce_sweep: list[tuple[int, float]]


def make_net(width: int, fc_width: int = 0) -> nn.Module:
    """A small CNN for ``(N, 1, 8, 8)`` digits whose size grows as ``width**2``.

    Two 3x3 convolutions of ``width`` channels, global average pooling and a linear head:
    about ``9 * width**2`` weights, and about ``64 * 9 * width**2`` multiply-adds per image,
    so compute grows with the batch while the gradient to synchronise does not. With
    ``fc_width > 0`` the head pools to 4x4 and adds a hidden fully connected layer of that
    width: about ``16 * width * fc_width`` more weights, each used once per image, the kind
    of layer whose gradient is expensive to synchronise for the compute it costs.
    """
    if width < 1 or fc_width < 0:
        raise ValueError(f"width must be >= 1 and fc_width >= 0, got {width}, {fc_width}")
    trunk = [nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
    if fc_width == 0:
        return nn.Sequential(*trunk, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, NUM_CLASSES))
    return nn.Sequential(*trunk, nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(16 * width, fc_width), nn.ReLU(),
                         nn.Linear(fc_width, NUM_CLASSES))


def synthetic_batch(batch_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A reproducible batch ``X (N, 1, 8, 8)``, ``y (N,)``: the same on every process for a seed."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(batch_size, 1, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
    y = torch.randint(0, NUM_CLASSES, (batch_size,), generator=gen)
    return X, y


def flat_params(net: nn.Module) -> torch.Tensor:
    """All parameters of ``net`` as one detached float64 vector (for comparisons)."""
    return torch.cat([p.detach().reshape(-1).double() for p in net.parameters()])


def _check_case(case: ScalingCase, world_size: int) -> None:
    if case.width < 1 or case.batch_size < 1 or case.fc_width < 0:
        raise ValueError(f"width and batch_size must be >= 1, got {case}")
    if case.batch_size % world_size:
        raise ValueError(f"batch_size {case.batch_size} is not divisible by world_size {world_size}")


def _sgd_step(net: nn.Module, optimizer: torch.optim.Optimizer, X: torch.Tensor, y: torch.Tensor) -> None:
    optimizer.zero_grad()
    F.cross_entropy(net(X), y).backward()
    optimizer.step()


def _time_steps(net: nn.Module, X: torch.Tensor, y: torch.Tensor, num_steps: int, sync) -> float:
    """Seconds of the fastest of ``num_steps`` SGD steps (after one warm-up step)."""
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    _sgd_step(net, optimizer, X, y)
    times = []
    for _ in range(num_steps):
        sync()
        start = time.perf_counter()
        _sgd_step(net, optimizer, X, y)
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def train_single_process(width: int, batch_size: int, num_steps: int, lr: float = 0.1, seed: int = 0,
                         fc_width: int = 0) -> torch.Tensor:
    """Train ``make_net(width, fc_width)`` on the whole batch for ``num_steps`` SGD steps; return its flat parameters.

    This is the reference DDP must reproduce: with equal shards, the mean of the shard
    gradients is the gradient of the mean loss over the whole batch.
    """
    torch.manual_seed(seed)
    net = make_net(width, fc_width)
    X, y = synthetic_batch(batch_size, seed)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    for _ in range(num_steps):
        _sgd_step(net, optimizer, X, y)
    return flat_params(net)


def time_single_process(cases: list[ScalingCase], num_steps: int = 5) -> list[StepTime]:
    """Time each case in this process with one torch thread (the 1-process column of a scaling table)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = []
        for case in cases:
            _check_case(case, 1)
            torch.manual_seed(0)
            net = make_net(case.width, case.fc_width)
            X, y = synthetic_batch(case.batch_size)
            seconds = _time_steps(net, X, y, num_steps, lambda: None)
            results.append(StepTime(1, case.width, case.batch_size, case.fc_width,
                                    sum(p.numel() for p in net.parameters()), seconds, 0.0))
        return results
    finally:
        torch.set_num_threads(threads)


def _worker(rank: int, world_size: int, folder: str) -> None:
    """Body of one process: join the group, train the reference case, time every case, report.

    The configuration is read from ``folder/config.json``; rank 0 writes ``folder/result.pt``.
    """
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    config = json.loads((Path(folder) / "config.json").read_text())
    cases = [ScalingCase(**c) for c in config["cases"]]
    num_steps, train_steps, lr = config["num_steps"], config["train_steps"], config["lr"]
    sizes = config["allreduce_sizes"]
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world_size)
    try:
        # 1. The correctness run: identical replicas, each on its own shard of the same global batch.
        first = cases[0]
        torch.manual_seed(0)
        net = DistributedDataParallel(make_net(first.width, first.fc_width))
        X, y = synthetic_batch(first.batch_size, 0)
        shard = first.batch_size // world_size
        Xs, ys = X[rank * shard:(rank + 1) * shard], y[rank * shard:(rank + 1) * shard]
        optimizer = torch.optim.SGD(net.parameters(), lr=lr)
        for _ in range(train_steps):
            _sgd_step(net, optimizer, Xs, ys)
        final = flat_params(net.module)

        # 2. Timings: a whole DDP step, and a bare all-reduce of a parameter-sized buffer.
        times = []
        for case in cases:
            torch.manual_seed(0)
            net = DistributedDataParallel(make_net(case.width, case.fc_width))
            X, y = synthetic_batch(case.batch_size, 0)
            shard = case.batch_size // world_size
            seconds = _time_steps(net, X[rank * shard:(rank + 1) * shard], y[rank * shard:(rank + 1) * shard],
                                  num_steps, dist.barrier)
            num_params = sum(p.numel() for p in net.parameters())
            buffer = torch.ones(num_params)
            reduce_times = []
            for _ in range(num_steps + 1):
                dist.barrier()
                start = time.perf_counter()
                dist.all_reduce(buffer)
                reduce_times.append(time.perf_counter() - start)
            times.append(asdict(StepTime(world_size, case.width, case.batch_size, case.fc_width, num_params, seconds,
                                         min(reduce_times[1:]))))
        # 3. Communication alone: all-reduce time against buffer size.
        sweep = []
        for numel in sizes:
            buffer = torch.ones(numel)
            reduce_times = []
            for _ in range(num_steps + 1):
                dist.barrier()
                start = time.perf_counter()
                dist.all_reduce(buffer)
                reduce_times.append(time.perf_counter() - start)
            sweep.append([numel, min(reduce_times)])
        if rank == 0:
            torch.save({"times": times, "final": final, "sweep": sweep}, Path(folder) / "result.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _loopback_interface() -> str | None:
    for name in ("lo", "lo0"):
        if Path(f"/sys/class/net/{name}").exists():
            return name
    return None


def _tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.strip().splitlines()[-lines:])


def run_ddp(cases: list[ScalingCase], world_size: int = 2, num_steps: int = 5, train_steps: int = 3,
            lr: float = 0.1, allreduce_sizes: tuple[int, ...] = (), timeout: float = 120.0) -> DDPRun:
    """Start ``world_size`` gloo processes, train and time ``cases`` under DDP, and return the results.

    Each process is a fresh Python interpreter (it imports torch afresh, which costs a few
    seconds: ``start_seconds`` is the wall time of the whole run) that imports this module
    and calls its worker; they meet through a file in a new temporary folder. The first
    case is also trained for ``train_steps`` SGD steps at ``lr``; compare ``final_params``
    with :func:`train_single_process` on the same width, batch size and ``fc_width``. Each
    of ``allreduce_sizes`` (numbers of float32 values) is also all-reduced on its own. A process that
    fails or outlives ``timeout`` seconds stops the run with a ``RuntimeError`` that
    quotes the end of its error output.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not cases:
        raise ValueError("give at least one ScalingCase")
    for case in cases:
        _check_case(case, world_size)
    start = time.perf_counter()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    iface = _loopback_interface()
    if iface and "GLOO_SOCKET_IFNAME" not in env:
        env["GLOO_SOCKET_IFNAME"] = iface
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="cnnlab-ddp-") as tmp:
        folder = Path(tmp)
        config = {"cases": [asdict(c) for c in cases], "num_steps": num_steps, "train_steps": train_steps, "lr": lr,
                  "allreduce_sizes": [int(n) for n in allreduce_sizes]}
        (folder / "config.json").write_text(json.dumps(config))
        procs = []
        for rank in range(world_size):
            code = f"from cnnlab.distributed import _worker; _worker({rank}, {world_size}, {str(folder)!r})"
            with open(folder / f"stderr-{rank}.txt", "wb") as err:
                procs.append(subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                                              stderr=err, cwd=folder))
        deadline = time.monotonic() + timeout
        try:
            for p in procs:
                p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"DDP run did not finish within {timeout:.0f} s; its processes were stopped") from None
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        failed = [rank for rank, p in enumerate(procs) if p.returncode != 0]
        if failed:
            rank = failed[0]
            raise RuntimeError(f"DDP process {rank} exited with code {procs[rank].returncode}:\n"
                               + _tail(folder / f"stderr-{rank}.txt"))
        result = torch.load(folder / "result.pt", weights_only=True)
    times = [StepTime(**t) for t in result["times"]]
    sweep = [(int(n), float(t)) for n, t in result["sweep"]]
    return DDPRun(times=times, final_params=result["final"], start_seconds=time.perf_counter() - start,
                  allreduce_sweep=sweep)
