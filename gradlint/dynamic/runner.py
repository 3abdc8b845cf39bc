"""Run one worker child per file, isolated: a hard wall-clock timeout, a memory cap, its own
session and, where the kernel allows, its own PID namespace.

The parent never imports the user's code nor torch. Whatever the child does — raise at
import, ``sys.exit``, loop forever, crash with a signal, run out of memory, start processes
in new sessions, write gigabytes to stderr, signal its parent — ends as a note on the models
it did not finish; the models it measured before are kept (the worker rewrites its result
file after each one).

The child is forked by the fork server where there is one (:mod:`gradlint.dynamic.zygote_client`),
else started through :mod:`gradlint.dynamic.shim`; how it is isolated and how everything it
started is ended is :mod:`gradlint.dynamic.isolation`. This module supervises it.

The timeout is a hard wall for the whole file, reading included: stderr is read by a thread
that keeps only its last :data:`STDERR_TAIL_BYTES`, and nothing waits on it. A child that has
written its complete result (the worker's ``.done`` file) is ended at once, whatever it left
running.
"""

from __future__ import annotations

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

from gradlint.dynamic.isolation import _become_subreaper, _isolate, _live, _live_lock, cuda_may_be_used, sweep
from gradlint.dynamic.zygote_client import _fork_child, _ForkedChild

#: the most of a child's stderr kept (its end), for the note when it fails
STDERR_TAIL_BYTES = 64 * 1024


_TMP_PREFIX = "gradlint-dyn-"
#: run as a script (``-S``, no package import): it only forks and waits
_SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim.py")


@dataclass
class ChildResult:
    data: dict  # the worker's result file (possibly partial)
    note: str | None  # why the child ended early, if it did
    stderr: str


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
    "remove_stale_folders",
    "run_child",
]
