"""The grader's side of a sandboxed kernel: start it under bubblewrap, talk to it, kill it.

Only the kernel that executes student code runs in the sandbox; everything else of
the grading (nbgrader, the gradebook, the feedback) runs outside it, as trusted code.
The sandbox (:mod:`cnngrade.sandbox.bwrap`) gives the kernel a read-only view of the
system and the Python installation and nothing of the course; a private, size-limited
``/tmp`` and home whose working directory holds a copy of the student's own submission
folder; no network; its own PID / IPC / UTS namespaces; death with the grading process;
rlimits (set by :mod:`cnngrade.inkernel.boot`) and, when the machine offers one, a
cgroup (:mod:`cnngrade.sandbox.cgroups`). The kernel is reached over Unix sockets
(ZeroMQ ``ipc`` transport) in a private directory: it cannot reach any TCP port.

When the grader runs as root, ``bwrap`` runs privileged (no user namespace) with only
CAP_SETUID / CAP_SETGID kept; the boot module drops to a dedicated uid (one per live
worker process), so the kernel owns nothing on the host, ``RLIMIT_NPROC`` applies, and
``no_new_privs`` stops any setuid binary from giving privileges back. Without root,
``bwrap`` runs unprivileged in a user namespace (``--unshare-user --disable-userns``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cnngrade.sandbox import bwrap
from cnngrade.sandbox.cgroups import CGroup
from cnngrade.sandbox.limits import GiB, SandboxSettings

SUBMISSION_MOUNT = "/run/submission"
IPC_MOUNT = "/run/kernel"
UID_BASE = 2_000_000_000  # + the worker's pid: an unprivileged uid of its own (no passwd entry needed)
PORTS = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}


class KernelStartError(RuntimeError):
    """The sandboxed kernel could not be started (an instructor-side problem)."""


@dataclass
class ExecResult:
    """Outcome of one execute request."""

    status: str                    # ok | error | timeout | dead
    outputs: list = field(default_factory=list)
    execution_count: int | None = None
    ename: str = ""
    evalue: str = ""
    truncated: bool = False        # outputs dropped by the output budget
    lost: bool = False             # the end-of-cell message never came (e.g. an oversized message)
    expressions: dict = field(default_factory=dict)  # user_expressions: name -> (status, text)


class SandboxKernel:
    """One sandboxed IPython kernel, reached over Unix sockets."""

    def __init__(self, settings: SandboxSettings, workdir: Path, files: Path | None, cwd_name: str = "work") -> None:
        self.settings = settings
        self.limits = settings.limits
        self.workdir = Path(workdir)
        self.files = files
        self.cwd = f"{bwrap.SANDBOX_HOME}/{cwd_name}"
        self.proc: subprocess.Popen | None = None
        self.kc = None
        self.cgroup: CGroup | None = None
        self.kernel_info: dict = {}
        self._ipc: str | None = None
        self._log = bytearray()
        self._log_thread: threading.Thread | None = None
        self.output_bytes_total = 0
        # one uid per live worker process, machine-wide: RLIMIT_NPROC counts per uid, so two sandboxes
        # (of this run or of another run on the same machine) never share a process budget
        self.uid = UID_BASE + os.getpid() if os.geteuid() == 0 else os.getuid()
        self.gid = self.uid if os.geteuid() == 0 else os.getgid()

    # ---- start / stop --------------------------------------------------------------
    def command(self, ipc: Path, binds: list[bwrap.Bind]) -> list[str]:
        """The bwrap command line that starts the boot module in the sandbox."""
        exe = bwrap.bwrap_path()
        if not exe:
            raise KernelStartError("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
        args = [exe, *bwrap.namespace_args(self.uid, self.gid), *bwrap.system_args(self.limits.tmpfs_bytes)]
        args += ["--ro-bind", str(ipc / "passwd"), "/etc/passwd", "--ro-bind", str(ipc / "group"), "/etc/group",
                 "--bind", str(ipc), IPC_MOUNT]
        args += bwrap.bind_args(binds)
        if self.files is not None:
            args += ["--ro-bind", str(self.files), SUBMISSION_MOUNT]
        args += bwrap.env_args(bwrap.kernel_env())
        if self.limits.gpu:
            args += bwrap.gpu_args()
        args += ["--chdir", "/", "--remount-ro", "/"]
        return args + [bwrap.interpreter(), str(bwrap.INKERNEL_DIR / "boot.py"), f"{IPC_MOUNT}/config.json"]

    def _write_ipc(self, ipc: Path, binds: list[bwrap.Bind]) -> dict:
        """Connection file, passwd / group and the boot module's config, in the private ipc folder."""
        conn = {**PORTS, "ip": f"{IPC_MOUNT}/k", "key": secrets.token_hex(16), "transport": "ipc",
                "signature_scheme": "hmac-sha256", "kernel_name": "python3"}
        (ipc / "kernel.json").write_text(json.dumps(conn))
        (ipc / "passwd").write_text(f"student:x:{self.uid}:{self.gid}:student:{bwrap.SANDBOX_HOME}:/bin/sh\n")
        (ipc / "group").write_text(f"student:x:{self.gid}:\n")
        cfg = {"uid": self.uid if os.geteuid() == 0 else None, "gid": self.gid, "limits": asdict(self.limits),
               "preload": self.settings.preload, "cwd": self.cwd, "connection_file": f"{IPC_MOUNT}/kernel.json",
               "trusted_prefixes": bwrap.trusted_prefixes(binds),
               "debug": bool(os.environ.get("CNNLAB_SANDBOX_DEBUG"))}
        (ipc / "config.json").write_text(json.dumps(cfg))
        for f in ipc.iterdir():
            f.chmod(0o644)
        if os.geteuid() == 0:
            os.chown(ipc, self.uid, self.gid)
        return conn

    def start(self, startup_timeout: float = 180) -> None:
        """Start the sandboxed kernel and wait for its kernel_info reply; KernelStartError if it cannot."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Unix socket paths are limited to ~107 bytes: keep the directory short.
        self._ipc = tempfile.mkdtemp(prefix="cnnlab-k-", dir="/tmp")
        ipc = Path(self._ipc)
        ipc.chmod(0o755)
        binds = bwrap.current_python_binds()
        conn = self._write_ipc(ipc, binds)
        if self.files is not None:
            make_world_readable(self.files)
        self.cgroup = CGroup.create(self.limits.memory_bytes, self.limits.nproc) if self.settings.use_cgroup else None
        cmd = self.command(ipc, binds)
        if self.cgroup is not None:
            script = 'while [ "$1" != "--" ]; do echo $$ > "$1" || exit 97; shift; done; shift; exec "$@"'
            cmd = ["/bin/sh", "-c", script, "sh", *self.cgroup.procs_files, "--", *cmd]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                                     env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        self._log_thread = threading.Thread(target=self._read_log, daemon=True)
        self._log_thread.start()
        deadline = time.monotonic() + startup_timeout
        self._wait_for_sockets(ipc, deadline, startup_timeout)
        self._connect(dict(conn, ip=f"{ipc}/k"))
        self._handshake(deadline, startup_timeout)

    def _check_starting(self, deadline: float, startup_timeout: float) -> None:
        if self.proc.poll() is not None:
            raise KernelStartError(f"the sandboxed kernel exited during startup (code {self.proc.returncode}): "
                                   f"{self.log_tail(800)}")
        if time.monotonic() > deadline:
            self.kill()
            raise KernelStartError(f"the sandboxed kernel did not start within {startup_timeout:g} s")

    def _wait_for_sockets(self, ipc: Path, deadline: float, startup_timeout: float) -> None:
        """Connect only once the kernel has bound its sockets (ZeroMQ does not retry a missing ipc path)."""
        while not all((ipc / f"k-{port}").exists() for port in (1, 2, 4)):
            self._check_starting(deadline, startup_timeout)
            time.sleep(0.02)
        if os.geteuid() == 0:
            # the kernel has bound its sockets: from now on it may not create files in this host directory
            os.chown(ipc, 0, 0)
            ipc.chmod(0o755)

    def _connect(self, info: dict) -> None:
        import zmq
        from jupyter_client.blocking.client import BlockingKernelClient

        ctx = zmq.Context()
        ctx.setsockopt(zmq.MAXMSGSIZE, int(self.limits.message_bytes))
        ctx.setsockopt(zmq.LINGER, 0)
        self._ctx = ctx
        kc = BlockingKernelClient(context=ctx)
        kc.load_connection_info(info)
        kc.start_channels(hb=False, stdin=False)
        self.kc = kc

    def _handshake(self, deadline: float, startup_timeout: float) -> None:
        """kernel_info until the kernel answers, then drain its start-up status messages."""
        kc = self.kc
        sent: set[str] = set()
        last_sent = 0.0
        while True:
            self._check_starting(deadline, startup_timeout)
            if time.monotonic() - last_sent > 5:
                sent.add(kc.kernel_info())
                last_sent = time.monotonic()
            try:
                reply = kc.get_shell_msg(timeout=0.5)
            except Exception:  # noqa: BLE001 - queue.Empty: not up yet
                continue
            if reply["parent_header"].get("msg_id") in sent and reply["msg_type"] == "kernel_info_reply":
                self.kernel_info = reply["content"]
                break
        while True:
            try:
                kc.get_iopub_msg(timeout=0.2)
            except Exception:  # noqa: BLE001
                break

    def _read_log(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
            self._log += chunk
            if len(self._log) > 65536:
                del self._log[:-32768]

    def log_tail(self, n: int = 2000) -> str:
        return bytes(self._log[-n:]).decode("utf-8", "replace").strip()

    def keep_files(self, dest: Path) -> list[str]:
        """Copy the files the notebook left in its working directory to ``dest`` (as nbgrader keeps them).

        Read through the sandbox's init process (``/proc/<pid>/root``), never following a link.
        """
        from cnngrade.files import copy_out_nofollow

        if not self.alive():
            return []
        try:
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            root_fd = os.open(f"/proc/{kids[0]}/root", os.O_RDONLY | os.O_DIRECTORY)
        except (OSError, IndexError):
            return []
        try:
            return copy_out_nofollow(root_fd, tuple(Path(self.cwd).relative_to("/").parts), dest)
        finally:
            os.close(root_fd)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """Stop the kernel and everything it started, at once."""
        if self.proc is not None:
            kill_group(self.proc.pid)
            if self.cgroup is not None:
                self.cgroup.kill_all()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.kc is not None:
            try:
                self.kc.stop_channels()
            except Exception:  # noqa: BLE001
                pass
            self.kc = None
            try:
                self._ctx.destroy(linger=0)
            except Exception:  # noqa: BLE001
                pass
        if self.cgroup is not None:
            self.cgroup.remove()
        if self._ipc:
            shutil.rmtree(self._ipc, ignore_errors=True)
            self._ipc = None

    def death_reason(self) -> str:
        """A one-line cause for a kernel that is gone."""
        if self.proc is None or self.proc.returncode is None:
            return "the kernel stopped responding"
        if self.cgroup is not None and self.cgroup.oom_killed():
            return f"memory limit ({self.limits.memory_bytes / GiB:g} GiB) exceeded: the kernel was killed"
        rc = self.proc.returncode
        sig = rc - 128 if rc > 128 else -rc if rc < 0 else 0
        if sig == signal.SIGXCPU:
            return f"CPU-time limit ({self.limits.cpu_seconds} s) exceeded: the kernel was killed"
        if sig == signal.SIGKILL:
            return "the kernel was killed (SIGKILL: memory or CPU limit, or a crash)"
        if sig == signal.SIGSEGV:
            return "the kernel crashed (segmentation fault)"
        if sig:
            return f"the kernel died (signal {signal.Signals(sig).name})"
        return f"the kernel exited (exit code {rc})"

    # ---- execution -----------------------------------------------------------------
    def _reconnect_iopub(self) -> None:
        """After an oversized message ZeroMQ drops the subscription for good: open a new one."""
        kc = self.kc
        try:
            kc.iopub_channel.stop()
        except Exception:  # noqa: BLE001
            pass
        kc._iopub_channel = None
        kc.iopub_channel.start()
        time.sleep(0.2)

    def execute(self, code: str, timeout: float, silent: bool = False,
                user_expressions: dict[str, str] | None = None, keep: str = "") -> ExecResult:
        """Run ``code``; collect its outputs (within the output budget) until the kernel is idle.

        ``user_expressions`` are evaluated by the kernel after the code, directly (IPython's
        input transformers do not touch them); their values come back in ``res.expressions``.
        ``keep`` is a line (the test cell's nonce) kept even when the output is truncated.
        """
        kc = self.kc
        if kc is None or not self.alive():
            return ExecResult("dead")
        msg_id = kc.execute(code, silent=silent, store_history=not silent, allow_stdin=False, stop_on_error=False,
                            user_expressions=user_expressions or {})
        res = ExecResult("ok")
        collect = _Collector(self, res, msg_id, keep)
        deadline = time.monotonic() + timeout
        while not (collect.reply is not None and collect.idle):
            now = time.monotonic()
            if now > deadline:
                res.status = "timeout"
                return res
            if not self.alive():
                res.status = "dead"
                return res
            if collect.reply is not None and now - collect.reply_at > 5:
                res.lost = True
                self._reconnect_iopub()
                break
            collect.poll()
        _finish(res, collect.reply["content"] if collect.reply is not None else {}, self.limits.cell_output_bytes)
        return res

    def add_output(self, res: ExecResult, mtype: str, content: dict, cell_bytes: int, keep: str = "") -> int:
        """Append one output message within the per-cell and per-notebook budgets; the bytes now used."""
        if mtype == "error":
            tb = [str(line)[:10000] for line in (content.get("traceback") or [])[:100]]
            res.outputs.append({"output_type": "error", "ename": str(content.get("ename", ""))[:1000],
                                "evalue": str(content.get("evalue", ""))[:10000], "traceback": tb})
            return cell_bytes
        if mtype == "stream":
            text = str(content.get("text", ""))
            size = len(text)
        else:
            data = content.get("data") or {}
            size = sum(len(str(v)) for v in data.values())
        budget = min(self.limits.cell_output_bytes - cell_bytes,
                     self.limits.total_output_bytes - self.output_bytes_total)
        if size > budget:
            res.truncated = True
            if mtype != "stream":
                return cell_bytes
            kept = f"{keep}\n" if keep and keep in text[max(budget, 0):] else ""
            text = text[:max(budget, 0)] + kept
            size = len(text)
            if not text:
                return cell_bytes
        self.output_bytes_total += size
        if mtype == "stream":
            _append_stream(res.outputs, content.get("name", "stdout"), text)
        else:
            out = {"output_type": mtype, "data": content.get("data") or {}, "metadata": content.get("metadata") or {}}
            if mtype == "execute_result":
                out["execution_count"] = content.get("execution_count")
            res.outputs.append(out)
        return cell_bytes + size


class _Collector:
    """The messages of one execute request: iopub outputs and the shell reply."""

    def __init__(self, kernel: SandboxKernel, res: ExecResult, msg_id: str, keep: str) -> None:
        self.kernel, self.res, self.msg_id, self.keep = kernel, res, msg_id, keep
        self.reply: dict | None = None
        self.reply_at = 0.0
        self.idle = False
        self.cell_bytes = 0
        self.clear_pending = False

    def poll(self) -> None:
        from queue import Empty

        kc = self.kernel.kc
        try:
            msg = kc.get_iopub_msg(timeout=0.05)
        except Empty:
            msg = None
        if msg is not None and msg.get("parent_header", {}).get("msg_id") == self.msg_id:
            self.on_iopub(msg["msg_type"], msg["content"])
        while self.reply is None:
            try:
                shell = kc.get_shell_msg(timeout=0)
            except Empty:
                break
            if shell.get("parent_header", {}).get("msg_id") == self.msg_id:
                self.reply = shell
                self.reply_at = time.monotonic()

    def on_iopub(self, mtype: str, content: dict) -> None:
        res = self.res
        if mtype == "status":
            self.idle = self.idle or content.get("execution_state") == "idle"
        elif mtype == "clear_output":
            if content.get("wait"):
                self.clear_pending = True
            else:
                res.outputs.clear()
        elif mtype == "execute_input":
            res.execution_count = content.get("execution_count")
        elif mtype in ("stream", "display_data", "execute_result", "error"):
            if self.clear_pending:
                res.outputs.clear()
                self.clear_pending = False
            self.cell_bytes = self.kernel.add_output(res, mtype, content, self.cell_bytes, self.keep)


def _finish(res: ExecResult, content: dict, cell_output_bytes: int) -> None:
    """Status, error, execution count and user expressions from the shell reply."""
    if content.get("status") == "error":
        res.status = "error"
        res.ename = content.get("ename", "")
        res.evalue = content.get("evalue", "")
        if not any(o.get("output_type") == "error" for o in res.outputs):
            res.outputs.append({"output_type": "error", "ename": res.ename, "evalue": res.evalue,
                                "traceback": list(content.get("traceback") or [])[:100]})
    if content.get("execution_count") is not None:
        res.execution_count = content["execution_count"]
    for key, value in (content.get("user_expressions") or {}).items():
        if isinstance(value, dict):
            ok = value.get("status") == "ok"
            text = str((value.get("data") or {}).get("text/plain", ""))[:4000] if ok else str(value.get("evalue", ""))[:400]
            res.expressions[key] = (value.get("status"), text)
    if res.truncated:
        res.outputs.append({"output_type": "stream", "name": "stdout",
                            "text": f"\n[grader: output truncated: more than {cell_output_bytes} "
                                    "bytes in this cell or the notebook]\n"})


def _append_stream(outputs: list, name: str, text: str) -> None:
    last = outputs[-1] if outputs else None
    if last is not None and last.get("output_type") == "stream" and last.get("name") == name:
        last["text"] += text
    else:
        outputs.append({"output_type": "stream", "name": name, "text": text})


def kill_group(pid: int) -> None:
    """SIGKILL a whole process group (a worker or a kernel and everything they started)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def make_world_readable(root: Path) -> None:
    """The submission copy must be readable by the sandbox's own uid."""
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                os.chmod(p, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
