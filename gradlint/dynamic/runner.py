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

Where it can (Linux), the children are forked from one fork server per run
(:mod:`gradlint.dynamic.zygote`) that imported torch once, instead of each starting an
interpreter that imports it (about 1.5 s a file). The forked child is isolated as above, the
server's fork standing in for the shim; the server tells gradlint over a Unix socket each
child's pid and how it ended, and gradlint passes it each child's stderr pipe. If the server
cannot start, or dies, children are started through the shim again. :func:`close` ends the
server (also at exit; it is killed with gradlint, ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import json
import os
import signal
import socket
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
#: fork each child from one server that imported torch once (tests turn it off to exercise
#: the shim path, which is also what runs where the server cannot)
USE_ZYGOTE = True
_ZYGOTE_MODULE = "gradlint.dynamic.zygote"
_ZYGOTE_READY_S = 60.0  # for the server to import torch
_ZYGOTE_FORK_S = 30.0  # for it to answer that it forked a child
_ZYGOTE_STARTS = 5  # servers started per run at most (one that dies is replaced)
#: environment variables read as an interpreter or its libraries start: a child whose
#: environment differs from the server's in one of them is started through the shim
_STARTUP_ENV = ("PYTHON", "LD_", "OMP_", "KMP_", "GOMP_", "MKL_", "OPENBLAS_", "TORCH", "CUDA_MODULE")

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
        return b"".join(self.chunks)[-self.limit :].decode("utf-8", "replace")


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


def _child_env() -> dict:
    env = dict(os.environ)
    env.setdefault("PYTHONHASHSEED", "0")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _returncode(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


class _ShimChild:
    """A child started through the shim: a new interpreter that imports torch itself."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.pid, self.stderr = proc, proc.pid, proc.stderr

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def wait(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def end(self) -> None:
        _end(self.proc)


class _ForkedChild:
    """A child forked by the fork server: its pid (its session's and group's) and its end come
    from the server's messages, or, once the server died and the child was re-parented to
    gradlint (the subreaper), from ``waitpid``."""

    def __init__(self):
        self.pid: int | None = None
        self.returncode: int | None = None
        self.error: str | None = None
        self.stderr = None
        self.orphaned = False
        self.started = threading.Event()  # the pid is known, or will never be
        self.exited = threading.Event()

    def wait(self, timeout: float) -> bool:
        if self.exited.wait(timeout):
            return True
        if not self.orphaned:
            return False
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # the server reaped it as it ended (and ended it)
            self.returncode = -signal.SIGKILL
            self.exited.set()
            return True
        if pid == 0:
            return False
        self.returncode = _returncode(status)
        self.exited.set()
        return True

    def end(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + 5
        while not self.wait(0.05) and time.monotonic() < deadline:
            pass


class _Zygote:
    """The parent's side of the fork server: started by a thread of its own, which then reads
    the server's messages for the threads that wait on their children. Thread-safe."""

    def __init__(self, env: dict):
        self.env = env
        self.lock = threading.Lock()  # alive, jobs
        self.send_lock = threading.Lock()  # the socket (sends, close)
        self.jobs: dict[int, _ForkedChild] = {}
        self.ids = itertools.count(1)
        self.alive = False
        self.proc: subprocess.Popen | None = None
        self.error: str | None = None
        self.settled = threading.Event()  # ready, or dead
        self.dead = threading.Event()
        self.sock, self._theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # the thread that starts the server outlives it: PR_SET_PDEATHSIG follows that thread
        threading.Thread(target=self._serve, name="gradlint-zygote", daemon=True).start()
        if not self.settled.wait(_ZYGOTE_READY_S):
            self.kill()
            self.dead.wait(10)

    # ---------------------------------------------------------------- the reading thread
    def _serve(self) -> None:
        fd = self._theirs.fileno()
        try:
            try:
                with _live_lock:  # registered before the sweep of another thread can see it
                    self.proc = subprocess.Popen(
                        [sys.executable, "-m", _ZYGOTE_MODULE, str(fd), str(os.getpid())],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        pass_fds=(fd,),
                        env=self.env,
                        start_new_session=True,
                    )
                    _live.add(self.proc.pid)
            finally:
                self._theirs.close()
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            self.error = str(exc)
            self._died()
            return
        try:
            while True:
                try:
                    data = self.sock.recv(1 << 16)
                except InterruptedError:  # pragma: no cover - PEP 475 retries
                    continue
                except OSError:
                    break
                if not data:
                    break
                try:
                    msg = json.loads(data)
                except ValueError:
                    continue
                self._handle(msg)
        finally:
            self._died()

    def _handle(self, msg: dict) -> None:
        op = msg.get("op")
        if op == "ready":
            with self.lock:
                self.alive = True
            self.settled.set()
            return
        if op == "error":
            self.error = msg.get("error")
            return
        with self.lock:
            child = self.jobs.get(msg.get("id"))
            if op in ("failed", "exit"):
                self.jobs.pop(msg.get("id"), None)
        if op == "started":
            pid = int(msg["pid"])
            if child is None:  # its run_child gave up waiting: end it
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                return
            with _live_lock:  # a live child, should the server die and leave it to gradlint
                _live.add(pid)
            child.pid = pid
            child.started.set()
        elif op == "failed" and child is not None:
            child.error = msg.get("error") or "the fork server could not fork"
            child.started.set()
        elif op == "exit" and child is not None:
            child.returncode = int(msg["status"])
            child.exited.set()

    def _died(self) -> None:
        with self.lock:
            self.alive = False
        proc = self.proc
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            # reaped: the children it left are gradlint's now (the subreaper)
            with _live_lock:
                _live.discard(proc.pid)
        with self.lock:
            orphans, self.jobs = list(self.jobs.values()), {}
        for child in orphans:
            child.orphaned = True
            child.started.set()
        with self.send_lock:
            self.sock.close()
        self.settled.set()
        self.dead.set()

    # ---------------------------------------------------------------- for run_child
    def start(self, request: dict, stderr_w: int) -> _ForkedChild | None:
        """Have the server fork a child; None when it cannot (then use the shim)."""
        child = _ForkedChild()
        with self.lock:
            if not self.alive:
                return None
            jid = next(self.ids)
            self.jobs[jid] = child
        try:
            with self.send_lock:
                socket.send_fds(self.sock, [json.dumps({**request, "op": "run", "id": jid}).encode()], [stderr_w])
        except (OSError, ValueError):  # the server is gone, or the message is too large
            with self.lock:
                self.jobs.pop(jid, None)
            return None
        if not child.started.wait(_ZYGOTE_FORK_S):
            with self.lock:
                self.jobs.pop(jid, None)
            self.kill()  # a server that does not answer is of no more use
            self.dead.wait(10)
        if child.pid is None:
            with self.lock:
                self.jobs.pop(jid, None)
            if self.dead.is_set():
                sweep()  # what it may have forked without saying so is gradlint's now: end it
            return None
        return child

    def kill(self) -> None:
        if self.proc is not None:
            try:
                self.proc.kill()
            except OSError:
                pass

    def close(self) -> None:
        try:
            with self.send_lock:
                self.sock.send(b'{"op": "close"}')
        except OSError:
            pass
        if not self.dead.wait(10):
            self.kill()
            self.dead.wait(10)


_zygote_lock = threading.Lock()
_zygote: _Zygote | None = None
_zygote_starts = 0
_zygote_failed = False  # a server that never became ready: not tried again until close()
_atexit_registered = False


def _zygote_now(env: dict) -> _Zygote | None:
    """The running fork server, started on first use; None where there is none to be had."""
    global _zygote, _zygote_starts, _zygote_failed, _atexit_registered
    with _zygote_lock:
        zygote = _zygote
        if zygote is not None and zygote.alive:
            return zygote
        if _zygote_failed or _zygote_starts >= _ZYGOTE_STARTS:
            return None
        if not _atexit_registered:
            atexit.register(close)
            _atexit_registered = True
        _zygote_starts += 1
        zygote = _Zygote(env)
        if not zygote.alive:
            _zygote_failed = True
            return None
        _zygote = zygote
        return zygote


def close() -> None:
    """End the fork server, and any child it still runs (at the end of a run; also at exit).
    The next :func:`run_child` starts a new one. Never raises."""
    global _zygote, _zygote_starts, _zygote_failed
    with _zygote_lock:
        zygote, _zygote = _zygote, None
        _zygote_starts, _zygote_failed = 0, False
    if zygote is not None:
        zygote.close()


def _fork_child(env, job_path, result_path, cwd, memory_cap, address_space) -> _ForkedChild | None:
    """A child forked by the fork server, or None (then the shim starts it)."""
    if not USE_ZYGOTE or _LIBC is None or not hasattr(socket, "send_fds"):
        return None
    try:
        cwd = os.path.abspath(cwd) if cwd else os.getcwd()
    except OSError:
        return None
    zygote = _zygote_now(env)
    if zygote is None:
        return None
    changed = {k for k in env.keys() | zygote.env.keys() if env.get(k) != zygote.env.get(k)}
    if any(k.startswith(_STARTUP_ENV) for k in changed):
        return None  # read when torch was imported: only a new interpreter can honour it
    request = {
        "job": job_path,
        "result": result_path,
        "cwd": cwd,
        "cap": memory_cap,
        "address_space": address_space,
        "pidns": bool(USE_PID_NAMESPACE),
        "env": env if changed else None,
    }
    read_end, write_end = os.pipe()
    try:
        child = zygote.start(request, write_end)
    finally:
        os.close(write_end)  # the server has its copy (or none is needed)
    if child is None:
        os.close(read_end)
        return None
    child.stderr = os.fdopen(read_end, "rb")
    return child


def run_child(job: dict, timeout: float, memory_cap: int | None) -> ChildResult:
    """Run the worker on ``job``; never raises for anything the child does."""
    _become_subreaper()
    with tempfile.TemporaryDirectory(prefix=_TMP_PREFIX) as tmp:
        with open(os.path.join(tmp, "owner.pid"), "w", encoding="ascii") as fh:
            fh.write(str(os.getpid()))
        job_path = os.path.join(tmp, "job.json")
        result_path = os.path.join(tmp, "result.json")
        env = _child_env()
        job = {**job, "memory_cap_gib": memory_cap / 2**30 if memory_cap else None}
        with open(job_path, "w", encoding="utf-8") as f:
            json.dump(job, f)
        address_space = not cuda_may_be_used(str(job.get("device", "auto")))
        child = _fork_child(env, job_path, result_path, job.get("cwd"), memory_cap, address_space)
        if child is None:
            with _live_lock:  # registered before the sweep of another thread can see it
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-S",
                        _SHIM,
                        sys.executable,
                        "-m",
                        "gradlint.dynamic.worker",
                        job_path,
                        result_path,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    preexec_fn=_isolate(memory_cap, address_space),
                    env=env,
                    cwd=job.get("cwd") or None,
                )
                _live.add(proc.pid)
            child = _ShimChild(proc)
        tail = _Tail(child.stderr)
        deadline = time.monotonic() + timeout
        timed_out = finished = False
        try:
            while True:
                if child.wait(min(0.05, max(deadline - time.monotonic(), 0.001))):
                    break
                if os.path.exists(result_path + ".done"):
                    finished = True  # the result is complete: whatever the child left running goes
                    break
                if time.monotonic() >= deadline:
                    timed_out = True
                    break
        finally:
            child.end()
            with _live_lock:
                _live.discard(child.pid)
            sweep()
            tail.join(timeout=1.0)
            if isinstance(child, _ForkedChild) and not tail.is_alive():
                child.stderr.close()
        stderr = tail.text()
        data = {}
        try:
            with open(result_path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            data = {}
        note = None
        if not finished and (timed_out or child.returncode != 0):
            note = _describe_exit(child.returncode, timeout, timed_out, memory_cap, stderr)
        return ChildResult(data, note, stderr)


__all__ = [
    "ChildResult",
    "STDERR_TAIL_BYTES",
    "close",
    "cuda_may_be_used",
    "remove_stale_folders",
    "run_child",
    "sweep",
]
