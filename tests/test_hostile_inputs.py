"""Inputs that once crashed, hung or blew up gradlint (issue 12), each reproduced as it was
found: every one now ends as a clear finding or an Unknown, in bounded time and memory.

The expensive reproductions run ``gradlint check`` in a child process under a memory cap
(RLIMIT_AS) and a timeout, so that a regression fails the test instead of the test machine.
"""

from __future__ import annotations

import ast
import json
import os
import re
import resource
import subprocess
import sys
import textwrap

import pytest

from gradlint.engine import analyse_source
from gradlint.files import MAX_FILE_BYTES, discover
from gradlint.graph.builder import build_graphs
from gradlint.graph.model import UnknownKind
from gradlint.run import lint_file

CAP_BYTES = 1 << 30  # 1 GiB: each reproduction took 1.1-4.9 GB before


def _check_bounded(tmp_path, *names, timeout=60):
    """``gradlint check`` on ``names`` (in ``tmp_path``) under a 1 GiB cap: (rc, stdout)."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (CAP_BYTES, CAP_BYTES))

    proc = subprocess.run(
        [sys.executable, "-m", "gradlint", "check", "--no-cache", "--output-format", "json", "-j", "1", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _codes(diags):
    return [d.code for d in diags]


def _unknowns(source, name="M"):
    graphs = {g.name: g for g in build_graphs(ast.parse(textwrap.dedent(source)), "t.py")}
    return graphs[name].unknowns


# ---------------------------------------------------------------- 1. GL002 on real code
#: the eleven lines that reproduced the crash of torch/overrides.py: a module-level function
#: that uses up the analysis budget
BUDGET_EATER = """
import torch

def step(i):
    return i + 1

def build():
    n = 0
    for i in range(500):
        for j in range(500):
            n = step(n)
    return n
"""


def test_a_module_function_that_exhausts_the_budget_is_no_internal_error():
    assert "GL002" not in _codes(analyse_source(BUDGET_EATER, "overrides.py"))


def test_an_exhausted_budget_in_a_model_is_an_unknown_naming_the_function():
    unknowns = _unknowns(
        BUDGET_EATER
        + textwrap.dedent("""
        import torch.nn as nn

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)
                self.n = build()
            def forward(self, x):
                return self.fc(x)
    """)
    )
    budget = [u for u in unknowns if u.kind is UnknownKind.BUDGET]
    # the innermost function running when the steps ran out: the loop in build() or step()
    assert budget and re.match(r"analysis budget reached in `(build|step)`: graph truncated", budget[0].reason)


def test_a_float_slice_and_a_huge_int_in_an_fstring_are_unknowns_not_crashes():
    source = textwrap.dedent("""
        import torch.nn as nn

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = nn.Sequential(*[nn.Linear(8, 8) if i % 2 == 0 else nn.Sigmoid() for i in range(40)])
                self.head = self.net[0.5:]
                self.tag = f"{1 << 20000}"
            def forward(self, x):
                return self.head(self.net(x))
    """)
    diags = analyse_source(source, "m.py")
    assert "GL002" not in _codes(diags)
    assert "GL101" in _codes(diags)  # the sigmoid stack is still judged
    reasons = [u.reason for u in _unknowns(source)]
    assert any("too large to fold: `1 << 20000`" in r for r in reasons)


def test_a_notebook_whose_json_nests_too_deep_is_gl001(tmp_path):
    cell = json.dumps({"cell_type": "code", "metadata": {}, "source": ["import torch\n"], "outputs": []})
    deep = "[" * 5000 + "]" * 5000
    nb = tmp_path / "deep.ipynb"
    nb.write_text(
        '{"cells": [' + cell[:-1] + ', "x": ' + deep + '}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    )
    diags = lint_file(str(nb)).diagnostics
    assert _codes(diags) == ["GL001"]
    assert "nests deeper" in diags[0].message


# ---------------------------------------------------------------- 2. hangs
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_named_or_walked_is_gl001_and_never_read(tmp_path):
    (tmp_path / "pkg").mkdir()
    os.mkfifo(tmp_path / "pkg" / "model.py")
    (tmp_path / "pkg" / "ok.py").write_text("import torch\nimport torch.nn as nn\n")
    for target in ("pkg", "pkg/model.py"):
        rc, out, _ = _check_bounded(tmp_path, target, timeout=30)
        found = json.loads(out)
        fifo = [d for d in found if d["path"].endswith("model.py")]
        assert rc == 1 and [d["code"] for d in fifo] == ["GL001"], (target, found)
        assert "not a regular file (a FIFO)" in fifo[0]["message"]


def test_symlinked_directories_are_not_followed_in_a_walk(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text("import torch\n")
    os.symlink(".", pkg / "again")
    os.symlink("..", pkg / "up")
    found = discover([str(pkg)])
    assert found.files == [str(pkg / "m.py")]
    # named on the command line, a symlinked directory is walked (the user asked for it)
    assert discover([str(pkg / "again")]).files == [os.path.join(str(pkg / "again"), "m.py")]


# ---------------------------------------------------------------- 3. memory from tiny sources
def test_folds_are_bounded_before_they_are_computed(tmp_path):
    (tmp_path / "blowup.py").write_text(
        textwrap.dedent("""
        import torch.nn as nn
        A = "ab" * 10**9
        B = 1 << (1 << 33)
        C = ((((3 ** 64) ** 64) ** 64) ** 64)
        D = 2 ** 64 ** 64

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = nn.Sequential(*((nn.Linear(8, 8), nn.Sigmoid()) * 10**7))
                self.sizes = (A, B, C, D)
            def forward(self, x):
                return self.net(x)
    """)
    )
    rc, out, err = _check_bounded(tmp_path, "blowup.py")
    assert rc in (0, 1), err
    assert "GL002" not in [d["code"] for d in json.loads(out)]
    reasons = [u.reason for u in _unknowns((tmp_path / "blowup.py").read_text())]
    for text in ("'ab' * 10 ** 9", "1 << (1 << 33)", "(nn.Linear(8, 8), nn.Sigmoid()) * 10 ** 7"):
        assert any(f"too large to fold: `{text}`" in r for r in reasons), (text, reasons)


def test_a_link_to_dev_zero_and_a_file_over_the_size_cap_are_gl001(tmp_path):
    os.symlink("/dev/zero", tmp_path / "zero.py")
    with open(tmp_path / "huge.py", "w") as fh:
        fh.write("import torch\nX = [" + "1, " * (MAX_FILE_BYTES // 3 + 10) + "]\n")
    rc, out, err = _check_bounded(tmp_path, "zero.py", "huge.py")
    found = {d["path"]: d for d in json.loads(out)}
    assert rc == 1, err
    assert found["zero.py"]["code"] == "GL001" and "not a regular file (a device)" in found["zero.py"]["message"]
    assert found["huge.py"]["code"] == "GL001" and "too large" in found["huge.py"]["message"]


# ---------------------------------------------------------------- 6. unreadable paths: one behaviour
def test_broken_links_and_link_loops_are_gl001_named_or_walked(tmp_path):
    os.symlink("nowhere.py", tmp_path / "dangling.py")
    os.symlink("loop.py", tmp_path / "loop.py")
    (tmp_path / "ok.py").write_text("import torch\n")
    for targets in ((".",), ("dangling.py", "loop.py", "ok.py")):
        rc, out, _ = _check_bounded(tmp_path, *targets, timeout=30)
        found = {os.path.basename(d["path"]): d["message"] for d in json.loads(out)}
        assert rc == 1
        assert "broken symbolic link" in found["dangling.py"] and "symbolic link loop" in found["loop.py"], found


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_named_on_the_command_line_is_gl001_and_the_run_goes_on(tmp_path):
    (tmp_path / "secret.py").write_text("import torch\n")
    os.chmod(tmp_path / "secret.py", 0)
    (tmp_path / "ok.py").write_text("import torch\n")
    rc, out, _ = _check_bounded(tmp_path, "secret.py", "ok.py", timeout=30)
    found = json.loads(out)
    assert rc == 1 and [d["code"] for d in found] == ["GL001"] and "Permission denied" in found[0]["message"]


# ---------------------------------------------------------------- 4. suppressions
def test_a_noqa_with_a_hundred_thousand_codes_is_linear_and_its_message_bounded(tmp_path):
    # quadratic, as a list used as a set made it, this took minutes; linear, about a second
    codes = ", ".join(f"GL{800 + i % 99:03d}" if i % 2 else f"X{i}" for i in range(100_000))
    (tmp_path / "noqa.py").write_text(f"import torch\nimport torch.nn as nn\nx = 1  # noqa: {codes}\n")
    rc, out, err = _check_bounded(tmp_path, "noqa.py", timeout=15)  # a hang guard, 20x the linear time
    found = json.loads(out)
    assert rc == 1, err
    assert [d["code"] for d in found] == ["GL003"]
    message = found[0]["message"]
    assert len(message) < 400, len(message)
    assert "and 49990 more name no rule" in message
    # the fix keeps exactly the other tools' codes
    keep = found[0]["fix"]["edits"][0]["content"]
    assert keep == "# noqa: " + ", ".join(f"X{i}" for i in range(0, 100_000, 2))


# ---------------------------------------------------------------- 5. file names that are not UTF-8
@pytest.mark.skipif(sys.platform == "darwin", reason="APFS refuses file names that are not UTF-8")
@pytest.mark.parametrize("fmt", ["json", "json-lines", "gitlab", "sarif", "github", "concise", "junit", "full"])
def test_a_file_name_that_is_not_utf8_keeps_every_format_valid(tmp_path, fmt):
    source = b"import torch\nimport torch.nn as nn\n# noqa: GL101\n"
    try:
        with open(os.path.join(os.fsencode(tmp_path), b"bad\xff.py"), "wb") as fh:
            fh.write(source)
    except OSError:
        pytest.skip("this file system refuses a name that is not UTF-8")
    proc = subprocess.run(
        [sys.executable, "-m", "gradlint", "check", "--no-cache", "--output-format", fmt, "."],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    text = proc.stdout.decode("utf-8")  # valid UTF-8, whatever the format
    shown = "bad\\xff.py"  # each undecodable byte as the four characters \\xNN
    if fmt == "json":
        assert [d["path"] for d in json.loads(text)] == [shown]
    elif fmt == "json-lines":
        assert [json.loads(line)["path"] for line in text.splitlines()] == [shown]
    elif fmt == "gitlab":
        assert [d["location"]["path"] for d in json.loads(text)] == [shown]
    elif fmt == "sarif":
        uris = [
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in json.loads(text)["runs"][0]["results"]
        ]
        assert uris == ["bad%5Cxff.py"]
    else:
        assert shown in text


# ---------------------------------------------------------------- 10-11. --diff, --show-fixes
def _crossfile_package(tmp_path):
    import shutil
    from pathlib import Path

    pkg = tmp_path / "seqpkg"
    shutil.copytree(Path(__file__).parent.parent / "fixtures" / "crossfile" / "seqpkg", pkg)
    return pkg


def test_diff_writes_nothing_not_even_the_cache(tmp_path):
    pkg = _crossfile_package(tmp_path)
    before = sorted(p.name for p in pkg.iterdir())
    proc = subprocess.run(
        [sys.executable, "-m", "gradlint", "check", "--diff", "--unsafe-fixes", "."],
        cwd=pkg,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "+++ " in proc.stdout, proc.stderr
    assert sorted(p.name for p in pkg.iterdir()) == before  # no .gradlint_cache/


def test_show_fixes_gives_the_edits_of_a_cross_file_finding(tmp_path):
    pkg = _crossfile_package(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "gradlint", "check", "--no-cache", "--show-fixes", "--output-format", "json", "."],
        cwd=pkg,
        capture_output=True,
        text=True,
        timeout=60,
    )
    gl401 = [d for d in json.loads(proc.stdout) if d["code"] == "GL401"]
    assert len(gl401) == 1 and gl401[0]["path"] == "train.py"
    edits = gl401[0]["fix"]["edits"]
    assert edits and "clip_grad_norm_(model.parameters()" in edits[0]["content"]
    # and they are the edits --fix applies
    subprocess.run(
        [sys.executable, "-m", "gradlint", "check", "--no-cache", "--fix", "--unsafe-fixes", "--select", "GL401", "."],
        cwd=pkg,
        capture_output=True,
        timeout=60,
    )
    fixed = (pkg / "train.py").read_text().splitlines()
    assert fixed[edits[0]["line"] - 1] == edits[0]["content"].rstrip("\n")


# ---------------------------------------------------------------- 9. --fix keeps the file's identity
_FIXABLE = "import torch\nimport torch.nn as nn\nx = 1  # noqa: GL101\n"  # GL003: the noqa hides nothing


def _fix(path):
    proc = subprocess.run(
        [sys.executable, "-m", "gradlint", "check", "--no-cache", "--fix", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "# noqa" not in path.read_text(), proc.stderr


def test_fix_rewrites_a_hard_linked_file_through_every_name(tmp_path):
    a = tmp_path / "a.py"
    a.write_text(_FIXABLE)
    os.link(a, tmp_path / "b.py")
    inode = a.stat().st_ino
    _fix(a)
    assert a.stat().st_ino == inode
    assert (tmp_path / "b.py").read_text() == a.read_text()


def test_fix_keeps_the_mode(tmp_path):
    a = tmp_path / "a.py"
    a.write_text(_FIXABLE)
    os.chmod(a, 0o640)
    _fix(a)
    assert a.stat().st_mode & 0o7777 == 0o640


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give a file to another user")
def test_fix_run_as_root_keeps_another_users_file_theirs(tmp_path):
    a = tmp_path / "a.py"
    a.write_text(_FIXABLE)
    os.chown(a, 65534, 65534)
    _fix(a)
    assert (a.stat().st_uid, a.stat().st_gid) == (65534, 65534)


# ---------------------------------------------------------------- 19. language server: invalid params
def _lsp_send(stdin, message: dict) -> None:
    body = json.dumps(message).encode("utf-8")
    stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    stdin.flush()


def _lsp_read(stdout) -> dict:
    length = None
    while True:
        line = stdout.readline()
        if not line:
            raise EOFError("the server closed its output")
        if line in (b"\r\n", b"\n"):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(stdout.read(length))


def test_a_request_with_invalid_params_gets_a_jsonrpc_error_response():
    pytest.importorskip("pygls", reason="the language server needs pygls (lsp extra)")
    import queue
    import threading

    proc = subprocess.Popen(
        [sys.executable, "-m", "gradlint", "server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    inbox: queue.Queue = queue.Queue()

    def read_all():
        try:
            while True:
                inbox.put(_lsp_read(proc.stdout))
        except (EOFError, ValueError, OSError):
            return

    threading.Thread(target=read_all, daemon=True).start()

    def answer(msg_id):
        while True:
            message = inbox.get(timeout=30)  # queue.Empty: no answer came
            if message.get("id") == msg_id and "method" not in message:
                return message

    try:
        _lsp_send(
            proc.stdin,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"processId": None, "rootUri": None, "capabilities": {}},
            },
        )
        assert "result" in answer(1)
        _lsp_send(
            proc.stdin,
            {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "textDocument/codeAction",
                "params": {"textDocument": 42, "bogus": True},
            },
        )
        error = answer(7)["error"]
        assert error["code"] == -32602 and "textDocument/codeAction" in error["message"]
        _lsp_send(proc.stdin, {"jsonrpc": "2.0", "id": 8, "method": "shutdown"})
        assert "error" not in answer(8)  # and the server goes on answering
    finally:
        proc.kill()
        proc.wait(timeout=10)


# ---------------------------------------------------------------- found by benchmarks/fuzz.py
def test_sizes_that_cannot_be_are_unknowns_and_counts_are_bounded():
    source = textwrap.dedent("""
        import torch
        import torch.nn as nn

        class M(nn.Module):
            def __init__(self, w=-1, depth=10 ** 9):
                super().__init__()
                self.fc = nn.Linear(w, 0)
                self.rnn = nn.GRU(16, 16, depth)
                self.layers = nn.ModuleList([nn.Linear(16, 16) for _ in range(10 ** 30)])
            def forward(self, x):
                out, h = self.rnn(self.fc(x))
                return out[-1]
    """)
    reasons = [u.reason for u in _unknowns(source)]
    assert any("nn.Linear `in_features` = -1 is not a usable size" in r for r in reasons), reasons
    assert any("nn.Linear `out_features` = 0 is not a usable size" in r for r in reasons), reasons
    assert any("nn.GRU `num_layers` = 1000000000 is not a usable size" in r for r in reasons), reasons
    rc_diags = analyse_source(source, "m.py")  # flow model and rules too (math domain errors, 500 s unrolls before)
    assert "GL002" not in _codes(rc_diags)


def test_a_notebook_with_big_outputs_is_still_read(tmp_path):
    """The 10 MB cap is for Python source; a notebook's images may make it much bigger."""
    cells = [
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": 1,
            "source": ["import torch.nn as nn\n", "net = nn.Sequential(*[nn.Sigmoid() for _ in range(30)])\n"],
            "outputs": [
                {
                    "output_type": "display_data",
                    "metadata": {},
                    "data": {"image/png": "A" * (MAX_FILE_BYTES + (1 << 20))},
                }
            ],
        }
    ]
    nb = tmp_path / "big.ipynb"
    nb.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert nb.stat().st_size > MAX_FILE_BYTES
    assert "GL001" not in _codes(lint_file(str(nb)).diagnostics)
