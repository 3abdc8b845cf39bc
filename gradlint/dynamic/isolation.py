"""How a child of ``--dynamic`` is isolated, and how everything it started is ended: its own
session, a memory cap and, where the kernel allows, its own PID namespace; the subreaper and
the sweep of what it left behind. Used by :mod:`gradlint.dynamic.runner` (the shim path) and
:mod:`gradlint.dynamic.zygote_client` (the fork server path); it imports neither torch nor
the user's code.

How every descendant is ended:

- the child is started through :mod:`gradlint.dynamic.shim`, in a new session. Where
  ``unshare(CLONE_NEWPID)`` is allowed (root, or unprivileged user namespaces), the worker is
  PID 1 of a PID namespace of its own: it cannot see or signal gradlint, and when it ends the
  kernel ends everything it started, whatever session those joined;
- elsewhere the shim stands between gradlint and the worker (``os.kill(os.getppid(), ...)``
  reaches the shim), and gradlint makes itself a child subreaper (``PR_SET_CHILD_SUBREAPER``)
  so that processes that left the child's session are re-parented to it and swept: after each
  child, every process re-parented to gradlint that is not a running child is killed.

The memory cap is RLIMIT_AS (all address space, shared mappings included) when CUDA
cannot be in use, and RLIMIT_DATA (heap and private mappings, not shared memory) when it can:
CUDA reserves far more address space than it uses.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

#: try a PID namespace per child (tests turn it off to exercise the fallback)
USE_PID_NAMESPACE = True
_CLONE_NEWPID = 0x20000000
_CLONE_NEWUSER = 0x10000000
_PR_SET_CHILD_SUBREAPER = 36

try:  # loaded here, not in the forked child (preexec_fn runs between fork and exec)
    _LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
except OSError:  # pragma: no cover - no C library to speak to
    _LIBC = None

_live_lock = threading.Lock()
_live: set[int] = set()  # pids of the children running now (the sweep spares them)
_subreaper = False


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
        with _live_lock:  # listed under the lock: a child started meanwhile is live already
            orphans = [p for p in _children_of(os.getpid()) if p not in _live]
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


__all__ = ["cuda_may_be_used", "sweep"]
