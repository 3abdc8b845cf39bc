"""--watch: checks again when a checked file or a configuration file changes, through the
cache (only the changed files are analysed again), and Ctrl-C ends it with exit 0."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_cli import CONSTANT, SIGMOID_STACK

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 60


class Watcher:
    def __init__(self, folder: Path, *args):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("GRADLINT_OUTPUT_FORMAT", None)
        # started with SIGINT ignored, as a background job of a shell is: Ctrl-C must still stop it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gradlint", "check", "--watch", "--output-format", "concise", *args, "."],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, text: str) -> list[str]:
        """The lines printed up to the one that holds ``text``."""
        seen, end = [], time.monotonic() + DEADLINE
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=max(0.1, end - time.monotonic()))
            except queue.Empty:
                break
            seen.append(line)
            if text in line:
                return seen
        raise AssertionError(f"{text!r} never came; got {seen}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=DEADLINE)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "tower.py").write_text(SIGMOID_STACK.format(noqa=""), encoding="utf-8")
    return tmp_path


def findings(lines):
    return sorted(l.split(": ")[1].split(" ")[0] + ":" + l.split(":")[0] for l in lines if ": GL" in l)


def test_watch_checks_again_on_each_change_and_stops_on_ctrl_c(folder):
    w = Watcher(folder, "--no-cache")
    try:
        first = w.until("Watching for changes")
        assert findings(first) == ["GL101:tower.py"]
        # a new file
        (folder / "const.py").write_text(CONSTANT.format(noqa=""), encoding="utf-8")
        w.until("File change detected")
        assert findings(w.until("Watching for changes")) == ["GL101:tower.py", "GL201:const.py"]
        # a changed file
        (folder / "tower.py").write_text(
            SIGMOID_STACK.format(noqa="").replace("range(10)", "range(2)"), encoding="utf-8"
        )
        w.until("File change detected")
        assert findings(w.until("Watching for changes")) == ["GL201:const.py"]
        # a configuration file that appears
        (folder / "pyproject.toml").write_text('[tool.gradlint]\nignore = ["GL2"]\n', encoding="utf-8")
        w.until("File change detected")
        assert "No findings." in "\n".join(w.until("Watching for changes"))
        # ... and changes
        (folder / "pyproject.toml").write_text('[tool.gradlint]\nignore = ["GL1"]\n', encoding="utf-8")
        w.until("File change detected")
        assert findings(w.until("Watching for changes")) == ["GL201:const.py"]
    finally:
        code = w.stop()
    assert code == 0


def test_watch_goes_through_the_cache(folder):
    """The second run analyses only the changed file: the cache folder holds one entry per
    file, and the unchanged file's entry is not rewritten."""
    (folder / "const.py").write_text(CONSTANT.format(noqa=""), encoding="utf-8")
    old = time.time() - 3600
    for name in ("tower.py", "const.py"):
        os.utime(folder / name, (old, old))
    w = Watcher(folder)
    try:
        w.until("Watching for changes")
        entries = {
            p: p.stat().st_mtime_ns
            for p in (folder / ".gradlint_cache").rglob("*")
            if p.is_file() and len(p.name) == 64
        }
        assert len(entries) == 2
        time.sleep(0.05)
        (folder / "const.py").write_text(CONSTANT.format(noqa="") + "\n# changed\n", encoding="utf-8")
        w.until("File change detected")
        w.until("Watching for changes")
        after = {p: p.stat().st_mtime_ns for p in entries}
        changed = [p for p in entries if after[p] != entries[p]]
        assert len(changed) == 1  # const.py's entry only
    finally:
        assert w.stop() == 0


def test_watch_refuses_what_it_cannot_repeat(folder):
    r = subprocess.run(
        [sys.executable, "-m", "gradlint", "check", "--watch", "--fix", "."],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert r.returncode == 2 and "--watch checks again on every change" in r.stderr
