"""Run one worker child per file, isolated: wall-clock timeout, memory cap, own session.

The parent never imports the user's code nor torch. Whatever the child does — raise at
import, ``sys.exit``, loop forever, crash with a signal, run out of memory — ends as a note
on the models it did not finish; the models it measured before are kept (the worker rewrites
its result file after each one).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass


@dataclass
class ChildResult:
    data: dict  # the worker's result file (possibly partial)
    note: str | None  # why the child ended early, if it did
    stderr: str


def _limit_memory(cap_bytes: int | None):
    def apply():
        os.setsid()
        if cap_bytes:
            import resource

            # RLIMIT_DATA counts heap and private writable mappings (what tensors use) but not
            # the PROT_NONE address space CUDA reserves, so it caps CPU memory on GPU runs too
            try:
                resource.setrlimit(resource.RLIMIT_DATA, (cap_bytes, cap_bytes))
            except (ValueError, OSError):
                pass
    return apply


def _describe_exit(code: int, timeout: float, timed_out: bool, cap_bytes: int | None, stderr: str) -> str:
    if timed_out:
        return f"stopped after the {timeout:g} s timeout (set [tool.gradlint.dynamic] timeout or --timeout)"
    if code < 0:
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


def run_child(job: dict, timeout: float, memory_cap: int | None) -> ChildResult:
    """Run the worker on ``job``; never raises for anything the child does."""
    with tempfile.TemporaryDirectory(prefix="gradlint-dyn-") as tmp:
        job_path = os.path.join(tmp, "job.json")
        result_path = os.path.join(tmp, "result.json")
        env = dict(os.environ)
        env.setdefault("PYTHONHASHSEED", "0")
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        job = {**job, "memory_cap_gib": memory_cap / 2**30 if memory_cap else None}
        with open(job_path, "w", encoding="utf-8") as f:
            json.dump(job, f)
        proc = subprocess.Popen(
            [sys.executable, "-m", "gradlint.dynamic.worker", job_path, result_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=_limit_memory(memory_cap), env=env, cwd=job.get("cwd") or None,
        )
        timed_out = False
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _, err = b"", b""
        finally:
            # the child's whole session: anything the user's code started goes with it
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if timed_out:
            _, err = proc.communicate()
        stderr = err.decode("utf-8", "replace") if err else ""
        data = {}
        try:
            with open(result_path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            data = {}
        note = None
        if timed_out or proc.returncode != 0:
            note = _describe_exit(proc.returncode, timeout, timed_out, memory_cap, stderr)
        return ChildResult(data, note, stderr)
