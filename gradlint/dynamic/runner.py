"""Run one worker child per file, isolated: a hard wall-clock timeout, a memory cap, its own
session and, where the kernel allows, its own PID namespace.

The parent never imports the user's code nor torch. Whatever the child does — raise at
import, ``sys.exit``, loop forever, crash with a signal, run out of memory, start processes
in new sessions, write gigabytes to stderr, signal its parent — ends as a note on the models
it did not finish; the models it measured before are kept (the worker rewrites its result
file after each one).

How every descendant is ended:

- the child is started through :mod:`gradlint.dynamic.shim`, in a new session. Where
  ``unshare(CLONE_NEWPID)`` is allowed (root, or unprivileged user namespaces), the worker is
  PID 1 of a PID namespace of its own: it cannot see or signal gradlint, and when it ends the
  kernel ends everything it started, whatever session those joined;
- elsewhere the shim stands between gradlint and the worker (``os.kill(os.getppid(), ...)``
  reaches the shim), and gradlint makes itself a child subreaper (``PR_SET_CHILD_SUBREAPER``)
  so that processes that left the child's session are re-parented to it and swept: after each
  child, every process re-parented to gradlint that is not a running child is killed.

The timeout is a hard wall for the whole file, reading included: stderr is read by a thread
that keeps only its last :data:`STDERR_TAIL_BYTES`, and nothing waits on it. A child that has
written its complete result (the worker's ``.done`` file) is ended at once, whatever it left
running. The memory cap is RLIMIT_AS (all address space, shared mappings included) when CUDA
cannot be in use, and RLIMIT_DATA (heap and private mappings, not shared memory) when it can:
CUDA reserves far more address space than it uses.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass

#: the most of a child's stderr kept (its end), for the note when it fails
STDERR_TAIL_BYTES = 64 * 1024
#: try a PID namespace per child (tests turn it off to exercise the fallback)
USE_PID_NAMESPACE = True
_CLONE_NEWPID = 0x20000000
_CLONE_NEWUSER = 0x10000000
_PR_SET_CHILD_SUBREAPER = 36
_TMP_PREFIX = "gradlint-dyn-"
#: run as a script (``-S``, no package import): it only forks and waits
_SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim.py")

try:  # loaded here, not in the forked child (preexec_fn runs between fork and exec)
    _LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
except OSError:  # pragma: no cover - no C library to speak to
    _LIBC = None

_live_lock = threading.Lock()
_live: set[int] = set()  # pids of the children running now (the sweep spares them)
_subreaper = False


@dataclass
class ChildResult:
    data: dict  # the worker's result file (possibly partial)
    note: str | None  # why the child ended early, if it did
    stderr: str


def cuda_may_be_used(device: str) -> bool:
    """Whether the child may initialize CUDA (which needs RLIMIT_DATA rather than RLIMIT_AS)."""
    if device == "cpu":
        return False
    return device.startswith("cuda") or os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia")


def _isolate(cap_bytes: int | None, cap_address_space: bool):
    def apply():
        os.setsid()
        if cap_bytes:
            import resource

            which = resource.RLIMIT_AS if cap_address_space else resource.RLIMIT_DATA
            try:
                resource.setrlimit(which, (cap_bytes, cap_bytes))
            except (ValueError, OSError):
                pass
        if USE_PID_NAMESPACE and _LIBC is not None:
            # the shim's child (the worker) becomes PID 1 of a new PID namespace
            if _LIBC.unshare(_CLONE_NEWPID) != 0:
                _LIBC.unshare(_CLONE_NEWUSER | _CLONE_NEWPID)
    return apply


def _become_subreaper() -> None:
    global _subreaper
    if not _subreaper and _LIBC is not None:
        _subreaper = _LIBC.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _children_of(pid: int) -> list[int]:
    out = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(name))
    return out


def sweep() -> int:
    """Kill the processes re-parented to gradlint that are not a running child (what the
    user's code left behind, in sessions of its own); return how many. Never raises."""
    if not _subreaper:
        return 0
    killed = 0
    for _ in range(100):  # killing one re-parents its own children here: go round again
        with _live_lock:
            live = set(_live)
        orphans = [p for p in _children_of(os.getpid()) if p not in live]
        if not orphans:
            break
        for pid in orphans:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        for pid in orphans:
            _reap(pid)
    return killed


def _reap(pid: int, wait_s: float = 2.0) -> None:
    end = time.monotonic() + wait_s
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done or time.monotonic() > end:
            return
        time.sleep(0.005)


def remove_stale_folders() -> None:
    """Delete the temporary folders of earlier runs whose gradlint was killed before it could."""
    import shutil

    root = tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(root) if n.startswith(_TMP_PREFIX)]
    except OSError:
        return
    for name in names:
        folder = os.path.join(root, name)
        try:
            with open(os.path.join(folder, "owner.pid"), encoding="ascii") as fh:
                owner = int(fh.read().strip() or 0)
            if os.stat(folder).st_uid != os.getuid():
                continue
        except (OSError, ValueError):
            continue
        try:
            os.kill(owner, 0)
            continue  # its gradlint still runs
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(folder, ignore_errors=True)


class _Tail(threading.Thread):
    """Read a pipe to its end, keeping only the last ``limit`` bytes."""

    def __init__(self, pipe, limit: int = STDERR_TAIL_BYTES):
        super().__init__(daemon=True)
        self.pipe, self.limit = pipe, limit
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.start()

    def run(self) -> None:
        try:
            while True:
                chunk = self.pipe.read1(65536) if hasattr(self.pipe, "read1") else self.pipe.read(65536)
                if not chunk:
                    return
                self.chunks.append(chunk)
                self.size += len(chunk)
                while self.size - len(self.chunks[0]) >= self.limit:
                    self.size -= len(self.chunks.popleft())
        except (OSError, ValueError):
            return

    def text(self) -> str:
        return b"".join(self.chunks)[-self.limit:].decode("utf-8", "replace")


def _describe_exit(code: int | None, timeout: float, timed_out: bool, cap_bytes: int | None, stderr: str) -> str:
    if timed_out:
        return f"stopped after the {timeout:g} s timeout (set [tool.gradlint.dynamic] timeout or --timeout)"
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if -code == signal.SIGKILL and cap_bytes:
            return f"killed ({name}), most likely for exceeding the {cap_bytes / 2**30:.1f} GiB memory cap"
        return f"crashed with {name}"
    if "MemoryError" in stderr or "std::bad_alloc" in stderr or "DefaultCPUAllocator: can't allocate" in stderr:
        return f"ran out of memory (the {cap_bytes / 2**30:.1f} GiB memory cap)" if cap_bytes else "ran out of memory"
    tail = stderr.strip().splitlines()[-1:] if stderr.strip() else []
    return f"exited with status {code} before reporting" + (f": {tail[0][:200]}" if tail else "")


def _end(proc: subprocess.Popen) -> None:
    """SIGKILL the child's session (the shim, the worker, what stayed in their group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process SIGKILL cannot end
        pass


def run_child(job: dict, timeout: float, memory_cap: int | None) -> ChildResult:
    """Run the worker on ``job``; never raises for anything the child does."""
    _become_subreaper()
    with tempfile.TemporaryDirectory(prefix=_TMP_PREFIX) as tmp:
        with open(os.path.join(tmp, "owner.pid"), "w", encoding="ascii") as fh:
            fh.write(str(os.getpid()))
        job_path = os.path.join(tmp, "job.json")
        result_path = os.path.join(tmp, "result.json")
        env = dict(os.environ)
        env.setdefault("PYTHONHASHSEED", "0")
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        job = {**job, "memory_cap_gib": memory_cap / 2**30 if memory_cap else None}
        with open(job_path, "w", encoding="utf-8") as f:
            json.dump(job, f)
        address_space = not cuda_may_be_used(str(job.get("device", "auto")))
        with _live_lock:  # registered before the sweep of another thread can see it
            proc = subprocess.Popen(
                [sys.executable, "-S", _SHIM, sys.executable, "-m", "gradlint.dynamic.worker", job_path, result_path],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                preexec_fn=_isolate(memory_cap, address_space), env=env, cwd=job.get("cwd") or None,
            )
            _live.add(proc.pid)
        tail = _Tail(proc.stderr)
        deadline = time.monotonic() + timeout
        timed_out = finished = False
        try:
            while True:
                try:
                    proc.wait(timeout=min(0.05, max(deadline - time.monotonic(), 0.001)))
                    break
                except subprocess.TimeoutExpired:
                    pass
                if os.path.exists(result_path + ".done"):
                    finished = True  # the result is complete: whatever the child left running goes
                    break
                if time.monotonic() >= deadline:
                    timed_out = True
                    break
        finally:
            _end(proc)
            with _live_lock:
                _live.discard(proc.pid)
            sweep()
            tail.join(timeout=1.0)
        stderr = tail.text()
        data = {}
        try:
            with open(result_path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            data = {}
        note = None
        if not finished and (timed_out or proc.returncode != 0):
            note = _describe_exit(proc.returncode, timeout, timed_out, memory_cap, stderr)
        return ChildResult(data, note, stderr)


__all__ = ["ChildResult", "STDERR_TAIL_BYTES", "cuda_may_be_used", "remove_stale_folders", "run_child", "sweep"]
