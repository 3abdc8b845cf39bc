"""The fork server of ``--dynamic``: torch imported once per gradlint run, not once per file.

Run as ``python -m gradlint.dynamic.zygote FD PARENT_PID`` by :mod:`gradlint.dynamic.runner`,
never imported by the parent. It imports torch, ``torch.nn`` and :mod:`gradlint.dynamic.worker`
(imports only: no tensor is made, CUDA is never initialized, so a forked child can still use
CUDA and OpenMP), then serves the parent over the Unix socket ``FD`` (``SOCK_SEQPACKET``, one
JSON object a message), in one thread, with a ``select`` loop:

- ``{"op": "run", "id", "job", "result", "cwd", "cap", "address_space", "pidns", "env"}``
  with the write end of the child's stderr pipe attached (``SCM_RIGHTS``): fork a child
  isolated as the shim path isolates one (:mod:`gradlint.dynamic.shim`): a session of its own,
  the memory cap, its own PID namespace where the kernel allows, stdin and stdout on
  ``/dev/null``, stderr on the pipe. That child forks once more, like the shim: the grandchild
  runs :func:`gradlint.dynamic.worker.main` (PID 1 of the namespace, when there is one), and
  the child waits for it and ends as it ended. Answered ``{"op": "started", "id", "pid"}``
  (``pid``: the child's, which is also its session's and process group's) or
  ``{"op": "failed", "id", "error"}``;
- each child's end, reaped with ``waitpid(..., WNOHANG)`` when ``SIGCHLD`` wakes the loop, is
  sent as ``{"op": "exit", "id", "status"}`` (``status`` as :attr:`subprocess.Popen.returncode`
  has it: ``-N`` for signal ``N``);
- ``{"op": "close"}``, or the socket's end (gradlint ended), ends the server, and the children
  still running with it. ``PR_SET_PDEATHSIG`` ends it if gradlint is killed.

The user's file is imported in the grandchild only, so its changes to ``sys.path``,
``sys.modules`` or torch never reach the server or the next file.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import traceback

_CLONE_NEWPID = 0x20000000
_CLONE_NEWUSER = 0x10000000
_PR_SET_PDEATHSIG = 1


def _libc():
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no C library to speak to
        return None


def _send(sock: socket.socket, msg: dict) -> None:
    sock.send(json.dumps(msg).encode())


def _returncode(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


def _exit_code(exc: SystemExit) -> int:
    """The status ``sys.exit(code)`` ends an interpreter with."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except Exception:  # noqa: BLE001
        pass
    return 1


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or replaced stream
            pass


def _die_by(sig: int) -> None:
    """End this process by signal ``sig``, so that its parent can name it. Never returns."""
    _flush()
    try:
        signal.signal(sig, signal.SIG_DFL)
    except (OSError, ValueError):  # SIGKILL and SIGSTOP cannot be caught anyway
        pass
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
    except (OSError, ValueError):
        pass
    try:  # the worker dumped its core if it was to: not this copy of the server's memory too
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    except (ImportError, ValueError, OSError):
        pass
    os.kill(os.getpid(), sig)
    os._exit(128 + sig)  # a signal whose default is not to end the process


def _end_like(status: int) -> None:
    """End this process as the one whose wait status is ``status`` ended (what the shim does)."""
    if os.WIFSIGNALED(status):
        _die_by(os.WTERMSIG(status))
    _flush()
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


class _Server:
    def __init__(self, sock: socket.socket, worker, libc):
        self.sock, self.worker, self.libc = sock, worker, libc
        self.start_cwd = os.getcwd()
        self.devnull = os.open(os.devnull, os.O_RDWR)
        self.children: dict[int, int] = {}  # pid -> the parent's id of the job
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    # ------------------------------------------------------------------ the server
    def serve(self) -> None:
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # a handler, so the wakeup fd is written
        signal.set_wakeup_fd(self.wake_w)
        try:
            while True:
                self._reap()
                try:
                    ready, _, _ = select.select([self.sock, self.wake_r], [], [], 1.0)
                except InterruptedError:  # pragma: no cover - PEP 475 retries select
                    continue
                if self.wake_r in ready:
                    try:
                        while os.read(self.wake_r, 4096):
                            pass
                    except (BlockingIOError, InterruptedError):
                        pass
                if self.sock in ready and not self._message():
                    return
        finally:
            self._end_children()

    def _message(self) -> bool:
        """Handle one message; False when the server should end."""
        try:
            data, fds, _flags, _ = socket.recv_fds(self.sock, 1 << 20, 4)
        except InterruptedError:  # pragma: no cover
            return True
        except OSError:
            return False
        if not data:
            return False  # gradlint closed its end, or ended
        try:
            msg = json.loads(data)
        except ValueError:
            msg = {}
        try:
            op = msg.get("op")
            if op == "close":
                return False
            if op == "run":
                self._run(msg, fds)
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        return True

    def _run(self, msg: dict, fds: list[int]) -> None:
        jid = msg.get("id")
        if len(fds) != 1:
            _send(self.sock, {"op": "failed", "id": jid, "error": "no stderr pipe was passed"})
            return
        _flush()
        try:
            pid = os.fork()
        except OSError as exc:
            _send(self.sock, {"op": "failed", "id": jid, "error": str(exc)})
            return
        if pid == 0:
            self._child(msg, fds[0])  # never returns
        self.children[pid] = jid
        _send(self.sock, {"op": "started", "id": jid, "pid": pid})

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            jid = self.children.pop(pid, None)
            if jid is not None:
                _send(self.sock, {"op": "exit", "id": jid, "status": _returncode(status)})

    def _end_children(self) -> None:
        for pid in list(self.children):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in list(self.children):
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass

    # ------------------------------------------------------------------ the forked child
    def _child(self, msg: dict, err_fd: int) -> None:
        """The shim's part: isolate, fork the worker, end as it ended. Never returns."""
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self.sock.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            os.dup2(self.devnull, 0)
            os.dup2(self.devnull, 1)
            os.dup2(err_fd, 2)
            os.close(self.devnull)
            os.close(err_fd)
            if msg.get("env") is not None:
                os.environ.clear()
                os.environ.update(msg["env"])
            os.chdir(msg["cwd"])
            os.setsid()
            cap = msg.get("cap")
            if cap:
                import resource

                which = resource.RLIMIT_AS if msg.get("address_space") else resource.RLIMIT_DATA
                try:
                    resource.setrlimit(which, (cap, cap))
                except (ValueError, OSError):
                    pass
            if msg.get("pidns") and self.libc is not None:
                # the next fork (the worker) becomes PID 1 of a new PID namespace
                if self.libc.unshare(_CLONE_NEWPID) != 0:
                    self.libc.unshare(_CLONE_NEWUSER | _CLONE_NEWPID)
            pid = os.fork()
        except BaseException:  # noqa: BLE001
            try:
                traceback.print_exc()
                _flush()
            finally:
                os._exit(127)
        if pid == 0:
            self._worker(msg)  # never returns
        try:
            while True:
                try:
                    _, status = os.waitpid(pid, 0)
                    break
                except InterruptedError:  # pragma: no cover
                    continue
        except BaseException:  # noqa: BLE001
            os._exit(1)
        _end_like(status)

    def _worker(self, msg: dict) -> None:
        """What ``python -m gradlint.dynamic.worker JOB RESULT`` does. Never returns."""
        code = 1
        try:
            job, result = msg["job"], msg["result"]
            if sys.path and sys.path[0] == self.start_cwd:
                sys.path[0] = os.getcwd()  # ``-m`` puts the working folder first
            sys.argv = [self.worker.__file__, job, result]
            sys.orig_argv = [sys.executable, "-m", "gradlint.dynamic.worker", job, result]
            sys.modules["__main__"] = self.worker
            status = self.worker.main([job, result])
            # the result is complete: gradlint ends this process now (worker's ``__main__``)
            with open(result + ".done", "w", encoding="ascii"):
                pass
            code = 0 if status is None else int(status) & 0xFF
        except SystemExit as exc:
            code = _exit_code(exc)
        except KeyboardInterrupt:
            traceback.print_exc()
            _flush()
            _die_by(signal.SIGINT)  # as an interpreter ends on an uncaught KeyboardInterrupt
        except BaseException:  # noqa: BLE001
            try:
                traceback.print_exc()
            except BaseException:  # noqa: BLE001
                pass
        finally:
            _flush()
            os._exit(code)


def _single_threaded(timeout: float = 2.0) -> bool:
    import time

    end = time.monotonic() + timeout
    while True:
        try:
            if len(os.listdir("/proc/self/task")) == 1:
                return True
        except OSError:
            import threading

            return threading.active_count() == 1
        if time.monotonic() > end:
            return False
        time.sleep(0.01)


def main(argv: list[str]) -> int:
    fd, parent = int(argv[0]), int(argv[1])
    libc = _libc()
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # gradlint ended before the line above
        return 1
    sock = socket.socket(fileno=fd)
    try:
        import torch  # noqa: F401 - imported once, here, for every child

        # what an optimizer's first step imports (about 1 s): the probes' SGD steps need it
        import torch._dynamo  # noqa: F401
        import torch.nn  # noqa: F401
        import torch.optim  # noqa: F401

        from gradlint.dynamic import worker
    except BaseException as exc:  # noqa: BLE001
        _send(sock, {"op": "error", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    # a first fork: libraries that run threads from their import (OpenBLAS, under numpy) stop
    # them in their fork handlers, so the server is single-threaded when it forks children
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    if not _single_threaded():
        _send(sock, {"op": "error", "error": "threads run in the fork server after importing torch"})
        return 1
    server = _Server(sock, worker, libc)
    _send(sock, {"op": "ready", "pid": os.getpid(), "torch": torch.__version__})
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
