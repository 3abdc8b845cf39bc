"""The parent's side of the fork server of ``--dynamic`` (:mod:`gradlint.dynamic.zygote`).

Where it can (Linux), the children are forked from one fork server per run that imported
torch once, instead of each starting an interpreter that imports it (about 1.5 s a file).
The forked child is isolated as the shim path isolates one (:mod:`gradlint.dynamic.isolation`),
the server's fork standing in for the shim; the server tells gradlint over a Unix socket each
child's pid and how it ended, and gradlint passes it each child's stderr pipe. If the server
cannot start, or dies, :func:`_fork_child` answers None and
:func:`gradlint.dynamic.runner.run_child` starts the child through the shim again.
:func:`close` ends the server (also at exit; it is killed with gradlint,
``PR_SET_PDEATHSIG``). This module imports neither torch nor the user's code.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from gradlint.dynamic import isolation
from gradlint.dynamic.isolation import _LIBC, _live, _live_lock, sweep

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


def _returncode(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


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
        "pidns": bool(isolation.USE_PID_NAMESPACE),
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


__all__ = ["close"]
