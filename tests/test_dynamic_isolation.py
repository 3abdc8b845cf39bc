"""--dynamic isolation (issue 12, items 12-18): hostile model files that once outlived the
timeout, left processes running, filled the parent's memory, escaped the memory cap or killed
gradlint. Each file does its hostile thing when imported, after an 8-layer sigmoid tower that
the static pass reports (so that --dynamic has a model to measure).

Every case runs where it matters with the PID namespace the kernel allows here, and with the
fallback (child subreaper + sweep) that machines without one get; and each of those with the
children forked by the fork server (``zygote``) and with each child a new interpreter started
through the shim (what runs where the server cannot).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("torch")

from conftest import SIGMOID_TOWER  # noqa: E402

from gradlint.dynamic import DynamicOptions, confirm, runner, zygote_client  # noqa: E402
from gradlint.dynamic.isolation import cuda_may_be_used  # noqa: E402
from gradlint.run import lint_paths  # noqa: E402
from gradlint.settings import Settings  # noqa: E402

MODEL = SIGMOID_TOWER


@pytest.fixture(params=["zygote", "shim"])
def launch(request, monkeypatch):
    if request.param == "shim":
        monkeypatch.setattr(zygote_client, "USE_ZYGOTE", False)
    return request.param


@pytest.fixture(params=["namespace", "fallback"])
def isolation(request, monkeypatch, launch):
    if request.param == "fallback":
        monkeypatch.setattr("gradlint.dynamic.isolation.USE_PID_NAMESPACE", False)
    return request.param


def _run(tmp_path, hostile: str, timeout: float = 60, memory_limit: float | None = 2.0, files=("model.py",), jobs=0):
    for name in files:
        (tmp_path / name).write_text(MODEL + textwrap.dedent(hostile))
    static = lint_paths([str(tmp_path / name) for name in files], Settings()).diagnostics
    assert [d.code for d in static] == ["GL101"] * len(files)
    options = DynamicOptions(device="cpu", seeds=1, timeout=timeout, memory_limit=memory_limit, jobs=jobs)
    start = time.monotonic()
    outcome = confirm(static, options)
    return outcome, time.monotonic() - start


def _running(marker: str) -> list[int]:
    """Processes whose command line holds ``marker`` (zombies are not running)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker.encode() in cmdline and state != b"Z":
            out.append(int(name))
    return out


def _sleeper(marker: str, session: bool) -> str:
    """Code that starts a process sleeping 120 s, holding the child's stderr open."""
    return f"""
    import subprocess, sys
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "{marker}"],
                     start_new_session={session}, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    """


# ---------------------------------------------------------------- 12, 13: hard timeout, no survivors
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to find the survivors")
def test_a_grandchild_in_its_own_session_holding_stderr_neither_delays_nor_survives(tmp_path, isolation):
    marker = f"gradlint-test-{uuid.uuid4().hex}"
    outcome, elapsed = _run(tmp_path, _sleeper(marker, session=True) + "\nimport time\ntime.sleep(120)\n", timeout=8)
    assert elapsed < 8 + 10, elapsed  # was 93.6 s under --timeout 10
    assert any("8 s timeout" in n for n in outcome.notes), outcome.notes
    assert _running(marker) == []


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to find the survivors")
def test_processes_a_finished_measurement_leaves_are_ended_at_once(tmp_path, isolation):
    """17: forked children, same-group and new-session processes and a non-daemon thread used
    to keep the parent waiting the full timeout although the result was written."""
    marker = f"gradlint-test-{uuid.uuid4().hex}"
    hostile = (
        _sleeper(marker, session=True)
        + _sleeper(marker, session=False)
        + """
    import os, threading, time
    threading.Thread(target=time.sleep, args=(120,)).start()
    if os.fork() == 0:
        time.sleep(120)
        os._exit(0)
    """
    )
    outcome, elapsed = _run(tmp_path, hostile, timeout=100)
    assert elapsed < 60, elapsed
    assert [dict(d.evidence)["verdict"] for d in outcome.diagnostics] == ["confirmed"]
    assert _running(marker) == []


# ---------------------------------------------------------------- 14: bounded reading
def test_a_child_writing_hundreds_of_megabytes_to_stderr_costs_the_parent_only_a_tail(tmp_path, isolation):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hostile = """
    import os
    block = b"x" * (1 << 20)
    for _ in range(300):
        os.write(2, block)
    raise RuntimeError("after the flood")
    """
    outcome, _ = _run(tmp_path, hostile)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, grown_mb  # 300 MB were written (the parent once held them all)
    assert any("after the flood" in n for n in outcome.notes), outcome.notes


# ---------------------------------------------------------------- 15: the cap covers shared memory
@pytest.mark.skipif(cuda_may_be_used("cpu"), reason="RLIMIT_AS applies where CUDA is not in use")
def test_the_memory_cap_counts_shared_memory_on_cpu(tmp_path, launch):
    hostile = """
    import mmap
    m = mmap.mmap(-1, 3 << 30, flags=mmap.MAP_SHARED)
    for i in range(0, 3 << 30, 4096):
        m[i] = 1
    """
    outcome, _ = _run(tmp_path, hostile, memory_limit=1.0)
    assert [dict(d.evidence)["verdict"] for d in outcome.diagnostics] == ["not-run"]
    note = " ".join(outcome.notes)
    assert "memory" in note.lower(), outcome.notes


# ---------------------------------------------------------------- 16: the child cannot end gradlint
def test_a_model_file_that_kills_its_parent_ends_only_its_own_measurement(tmp_path, isolation):
    hostile = """
    import os, signal
    os.kill(os.getppid(), signal.SIGKILL)
    import time
    time.sleep(5)
    """
    outcome, elapsed = _run(tmp_path, hostile, timeout=30)
    # this process (the parent) is alive to read the outcome
    assert [dict(d.evidence)["verdict"] for d in outcome.diagnostics] == ["not-run"]
    assert outcome.notes and elapsed < 30


def test_temporary_folders_of_a_killed_gradlint_are_removed_by_the_next_run(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / "gradlint-dyn-stale"
    stale.mkdir()
    (stale / "owner.pid").write_text(str(dead.pid))
    alive = tmp_path / "gradlint-dyn-alive"
    alive.mkdir()
    (alive / "owner.pid").write_text(str(os.getpid()))
    runner.remove_stale_folders()
    assert not stale.exists() and alive.exists()


# ---------------------------------------------------------------- 18: said once per run
def test_dynamic_says_once_on_stderr_that_it_runs_the_code(tmp_path):
    (tmp_path / "model.py").write_text(MODEL)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gradlint",
            "check",
            "--no-cache",
            "--dynamic",
            "--device",
            "cpu",
            "--seeds",
            "1",
            "--output-format",
            "json",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.stderr.count("--dynamic imports and runs the checked files' code") == 1, proc.stderr
    assert proc.stdout.lstrip().startswith("[")  # stdout stays the report
    # off a terminal: one line per measured model with its time; the summary times --dynamic apart
    import re

    assert re.search(r"gradlint --dynamic: .*model\.py::Tower measured in \d+\.\d s \(1 seed on cpu\)", proc.stderr), (
        proc.stderr
    )
    assert re.search(r"1 file checked in \d+\.\d\d s, measured by --dynamic in \d+\.\d s\.", proc.stderr), proc.stderr


def test_the_stderr_reader_keeps_only_a_bounded_tail():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os\nfor i in range(40): os.write(2, bytes([65 + i % 26]) * (1 << 18))\nos.write(2, b'END')",
        ],
        stderr=subprocess.PIPE,
    )
    tail = runner._Tail(proc.stderr)
    proc.wait(timeout=60)
    tail.join(timeout=10)
    text = tail.text()
    assert len(text) == runner.STDERR_TAIL_BYTES  # 10 MB written, 64 KiB kept
    assert text.endswith("END") and tail.size - len(tail.chunks[0]) < runner.STDERR_TAIL_BYTES


# ---------------------------------------------------------------- the fork server
def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])


def _verdicts(outcome) -> list[str]:
    return [dict(d.evidence)["verdict"] for d in outcome.diagnostics]


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to follow the parents")
def test_children_are_forked_by_one_fork_server_that_stays_clean(tmp_path, monkeypatch):
    """Without a PID namespace the worker can see its parents: the shim's stand-in, then the
    server, which imported torch once. What the first file does to torch, sys.path and
    sys.modules at import is undone for the second (each fork starts from the clean server)."""
    monkeypatch.setattr("gradlint.dynamic.isolation.USE_PID_NAMESPACE", False)
    spoiler = MODEL + textwrap.dedent("""
        import os, sys, torch
        open(os.path.join(os.path.dirname(__file__), "a.ppid"), "w").write(str(os.getppid()))
        _grand = open(f"/proc/{os.getppid()}/stat", "rb").read().rsplit(b")", 1)[1].split()[1].decode()
        open(os.path.join(os.path.dirname(__file__), "a.server"), "wb").write(
            _grand.encode() + b" " + open(f"/proc/{_grand}/cmdline", "rb").read())
        torch.nn.Sigmoid.forward = lambda self, x: x  # the tower is linear now: nothing vanishes
        sys.modules["gradlint_user_b"] = None
        """)
    (tmp_path / "a.py").write_text(spoiler)
    (tmp_path / "b.py").write_text(
        MODEL + "import os\nopen(os.path.join(os.path.dirname(__file__), 'b.ppid'), 'w').write(str(os.getppid()))\n"
    )
    static = lint_paths([str(tmp_path)], Settings()).diagnostics
    outcome = confirm(static, DynamicOptions(device="cpu", seeds=1, timeout=60, jobs=1))
    by_file = {Path(d.path).name: dict(d.evidence)["verdict"] for d in outcome.diagnostics}
    assert by_file == {"a.py": "refuted", "b.py": "confirmed"}, outcome.notes
    # the file saw its stand-in's parent: the server (the run's end has closed it since)
    pid, _, cmdline = (tmp_path / "a.server").read_bytes().partition(b" ")
    server = int(pid)
    assert b"gradlint.dynamic.zygote" in cmdline and server != os.getpid()
    assert zygote_client._zygote is None  # confirm() ends its server
    stand_ins = {int((tmp_path / f"{n}.ppid").read_text()) for n in "ab"}
    assert len(stand_ins) == 2 and server not in stand_ins and os.getpid() not in stand_ins


def test_files_measured_at_once_share_the_fork_server(tmp_path, isolation):
    outcome, _ = _run(tmp_path, "", files=("m1.py", "m2.py", "m3.py", "m4.py"), jobs=3)
    assert _verdicts(outcome) == ["confirmed"] * 4, outcome.notes


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to find the server")
def test_a_model_file_that_kills_the_fork_server_is_still_measured_and_the_next_one_too(tmp_path, monkeypatch):
    """The server's children outlive it (re-parented to gradlint, the subreaper), and what
    gradlint measures next is forked by a new server, or started through the shim."""
    monkeypatch.setattr("gradlint.dynamic.isolation.USE_PID_NAMESPACE", False)
    hostile = """
    import os, signal, time
    from pathlib import Path
    server = int(Path(f"/proc/{os.getppid()}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])
    if b"gradlint.dynamic.zygote" in Path(f"/proc/{server}/cmdline").read_bytes():
        os.kill(server, signal.SIGKILL)
    time.sleep(0.5)
    """
    first = zygote_client._zygote_now(runner._child_env())
    outcome, _ = _run(tmp_path, hostile, files=("k1.py", "k2.py"), jobs=1)
    assert _verdicts(outcome) == ["confirmed"] * 2, outcome.notes
    assert first.proc.poll() == -9 and not first.alive
    assert os.getpid() not in [_parent_of(p) for p in _running("gradlint.dynamic.worker")]


def test_where_the_fork_server_cannot_start_the_shim_runs_the_children(tmp_path, monkeypatch):
    zygote_client.close()
    monkeypatch.setattr(zygote_client, "_ZYGOTE_MODULE", "gradlint.dynamic.no_such_module")
    monkeypatch.setattr("gradlint.dynamic.isolation.USE_PID_NAMESPACE", False)
    # the model file records who started it: the shim, when no server could
    spy = (
        "import os\nopen(os.path.join(os.path.dirname(__file__), 'parent'), 'wb').write("
        "open(f'/proc/{os.getppid()}/cmdline', 'rb').read())\n"
    )
    try:
        outcome, _ = _run(tmp_path, spy)
        assert _verdicts(outcome) == ["confirmed"], outcome.notes
        assert b"shim.py" in (tmp_path / "parent").read_bytes()
    finally:
        zygote_client.close()


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to find the server")
def test_the_fork_server_ends_with_close_and_with_gradlint(tmp_path):
    zygote_client._zygote_now(runner._child_env())
    server = zygote_client._zygote.proc
    zygote_client.close()
    assert server.poll() is not None and zygote_client._zygote is None
    script = (
        "import os, signal\nfrom gradlint.dynamic import runner, zygote_client\n"
        "z = zygote_client._zygote_now(runner._child_env())\n"
        "print(z.proc.pid, flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    pid = int(proc.stdout.split()[0])
    end = time.monotonic() + 10
    while time.monotonic() < end and pid in _running("gradlint.dynamic.zygote"):
        time.sleep(0.05)
    assert pid not in _running("gradlint.dynamic.zygote")
