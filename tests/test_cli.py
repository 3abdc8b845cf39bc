"""Layer 5: the real `gradlint` command line, run as a user runs it."""

import json
import re

import pytest
from conftest import run_cli

SIGMOID_STACK = """import torch.nn as nn

class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(*[m for _ in range(10) for m in (nn.Linear(8, 8), nn.Sigmoid())]){noqa}

    def forward(self, x):
        return self.net(x)
"""
CLEAN = """import torch.nn as nn

class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x):
        return self.net(x)
"""
CONSTANT = """import torch.nn as nn

class C(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 1)
        nn.init.zeros_(self.a.weight){noqa}

    def forward(self, x):
        return self.b(self.a(x).relu())
"""


@pytest.fixture
def project(tmp_path):
    def write(name, text, mode="w"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    write.root = tmp_path
    return write


def test_exit_codes_clean_findings_missing(project):
    project("clean.py", CLEAN)
    project("bad.py", SIGMOID_STACK.format(noqa=""))
    r = run_cli("check", "clean.py", cwd=project.root)
    assert r.returncode == 0 and r.stdout == "" and "No findings" in r.stderr
    r = run_cli("check", "--output-format", "concise", "bad.py", cwd=project.root)
    assert r.returncode == 1
    assert re.match(r"bad\.py:6:\d+: GL101 \[error\] 10 stacked sigmoid layers", r.stdout)
    assert "Found 1 error in 1 file" in r.stderr
    r = run_cli("check", "--output-format", "concise", "missing_dir/", "bad.py", cwd=project.root)
    assert r.returncode == 2
    assert "gradlint: error: path does not exist: missing_dir/" in r.stderr
    assert "GL101" in r.stdout  # the other path was still checked
    assert "Traceback" not in r.stderr
    r = run_cli("check", "--exit-zero", "bad.py", cwd=project.root)
    assert r.returncode == 0


def test_json_output_has_stable_keys(project):
    project("bad.py", SIGMOID_STACK.format(noqa=""))
    project("c.py", CONSTANT.format(noqa=""))
    r = run_cli("check", "--output-format", "json", ".", cwd=project.root)
    data = json.loads(r.stdout)
    assert [d["code"] for d in data] == ["GL101", "GL201"]
    keys = {
        "path",
        "line",
        "column",
        "end_line",
        "end_column",
        "code",
        "name",
        "severity",
        "confidence",
        "message",
        "help",
        "related",
        "fix",
        "evidence",
        "cell",
        "hazard",
        "prediction",
    }
    assert all(set(d) == keys for d in data)
    assert data[0]["hazard"] == "vanishing" and data[0]["prediction"]["ratio"] < 1e-3
    gl201 = data[1]
    assert gl201["fix"]["applicability"] == "unsafe"
    assert gl201["related"][0]["message"].startswith("a = nn.Linear")
    assert gl201["name"] == "constant-weight-init"


def test_full_output_shows_source_and_help(project):
    project("bad.py", SIGMOID_STACK.format(noqa=""))
    r = run_cli("check", "bad.py", cwd=project.root)
    assert "GL101 [error]" in r.stdout
    assert "6 |         self.net = nn.Sequential(" in r.stdout
    assert "^" in r.stdout
    assert "= help: use a ReLU-family activation" in r.stdout
    assert "= docs: gradlint rule GL101" in r.stdout
    assert "\x1b[" not in r.stdout  # no colour when piped


def test_noqa_suppression(project):
    project("a.py", SIGMOID_STACK.format(noqa="  # noqa: GL101"))
    project("b.py", SIGMOID_STACK.format(noqa="  # noqa: GL201"))
    project("c.py", CONSTANT.format(noqa="  # noqa"))
    r = run_cli("check", "--output-format", "concise", ".", cwd=project.root)
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("b.py:") and "GL101" in lines[0]
    assert lines[1].startswith("b.py:") and "GL003 [warning] unused suppression `# noqa: GL201`" in lines[1]


def test_select_and_ignore(project):
    project("bad.py", SIGMOID_STACK.format(noqa=""))
    project("c.py", CONSTANT.format(noqa=""))
    r = run_cli("check", "--output-format", "concise", "--select", "GL2", ".", cwd=project.root)
    assert [l.split(": ")[1].split()[0] for l in r.stdout.splitlines()] == ["GL201"]
    r = run_cli("check", "--output-format", "concise", "--ignore", "GL201,GL001", ".", cwd=project.root)
    assert [l.split(": ")[1].split()[0] for l in r.stdout.splitlines()] == ["GL101"]
    r = run_cli("check", "--select", "GL8", ".", cwd=project.root)
    assert r.returncode == 2 and "unknown rule selector `GL8`" in r.stderr


def test_unreadable_inputs_become_gl001_and_the_run_goes_on(project):
    project("syntax.py", "import torch\nclass M(torch.nn.Module:\n    pass\n")
    project("latin1.py", b"import torch\nx = '\xe9t\xe9'\n")
    project("nul.py", b"import torch\nx = 1\x00\n")
    project("cookie.py", "# -*- coding: latin-1 -*-\nimport torch\nname = 'caf\xe9'\n".encode("latin-1"))
    (project.root / "pkg.py").mkdir()  # a directory that looks like a file
    project("pkg.py/inner.py", SIGMOID_STACK.format(noqa=""))
    project("ok.py", SIGMOID_STACK.format(noqa=""))
    r = run_cli("check", "--output-format", "concise", ".", cwd=project.root)
    assert "Traceback" not in r.stderr
    out = r.stdout
    assert re.search(r"^syntax\.py:2:\d+: GL001 \[error\] cannot parse: .* — file skipped$", out, re.M)
    assert re.search(r"^latin1\.py:2:\d+: GL001 \[error\] cannot decode: invalid continuation byte", out, re.M)
    assert re.search(r"^nul\.py:2:6: GL001 \[error\] cannot parse: source contains a NUL byte", out, re.M)
    assert "cookie.py" not in out  # a declared encoding is honoured
    assert re.search(r"^pkg\.py/inner\.py:6:\d+: GL101", out, re.M)
    assert re.search(r"^ok\.py:6:\d+: GL101", out, re.M)
    assert r.returncode == 1


def test_directory_passed_where_a_file_is_expected(project):
    (project.root / "model.py").mkdir()
    r = run_cli("graph", "model.py", cwd=project.root)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "gradlint" in r.stderr


def test_columns_count_characters_not_bytes(project):
    src = CONSTANT.format(noqa="").replace(
        "        nn.init.zeros_(self.a.weight)", "        é = 1; nn.init.zeros_(self.a.weight)"
    )
    project("u.py", src)
    r = run_cli("check", "--output-format", "json", "u.py", cwd=project.root)
    d = json.loads(r.stdout)[0]
    line = src.splitlines()[d["line"] - 1]
    assert line[d["column"] - 1 :].startswith("nn.init.zeros_")
    assert line[d["end_column"] - 2] == ")"


def test_gitignore_and_excludes(project):
    project(".gitignore", "generated/\n")
    project("generated/bad.py", SIGMOID_STACK.format(noqa=""))
    project("vendor/bad.py", SIGMOID_STACK.format(noqa=""))
    project(".venv/lib/bad.py", SIGMOID_STACK.format(noqa=""))
    project("src/bad.py", SIGMOID_STACK.format(noqa=""))
    r = run_cli("check", "--output-format", "concise", ".", cwd=project.root)
    files = {l.split(":")[0] for l in r.stdout.splitlines()}
    assert files == {"src/bad.py", "vendor/bad.py"}
    r = run_cli("check", "--output-format", "concise", "--extend-exclude", "vendor/", ".", cwd=project.root)
    assert {l.split(":")[0] for l in r.stdout.splitlines()} == {"src/bad.py"}
    r = run_cli("check", "--output-format", "concise", "--no-respect-gitignore", ".", cwd=project.root)
    assert "generated/bad.py" in r.stdout


def test_files_without_torch_are_skipped(project):
    project("other.py", "def f(:\n")  # a syntax error, but not model code
    r = run_cli("check", "other.py", cwd=project.root)
    assert r.returncode == 0


def test_parallel_and_serial_runs_agree(project):
    for i in range(20):
        project(f"m{i:02d}.py", SIGMOID_STACK.format(noqa="") if i % 2 else CONSTANT.format(noqa=""))
    serial = run_cli("check", "--output-format", "json", "-j", "1", ".", cwd=project.root)
    parallel = run_cli("check", "--output-format", "json", "-j", "2", ".", cwd=project.root)
    assert json.loads(serial.stdout) == json.loads(parallel.stdout)
    assert len(json.loads(serial.stdout)) == 20


def test_rule_and_rules_commands():
    r = run_cli("rule", "GL101")
    assert r.returncode == 0
    assert "# GL101 saturating-activation-stack" in r.stdout and "## Why is this bad?" in r.stdout
    r = run_cli("rule", "saturating-activation-stack")
    assert r.returncode == 0 and "GL101" in r.stdout
    r = run_cli("rule", "GL10")
    assert r.returncode == 2 and "unknown rule `GL10`" in r.stderr
    r = run_cli("rules")
    codes = [l.split()[0] for l in r.stdout.splitlines() if l.startswith("GL")]
    assert codes == sorted(codes) and {"GL001", "GL101", "GL201"} <= set(codes)
    data = json.loads(run_cli("rules", "--output-format", "json").stdout)
    assert {d["code"] for d in data} >= {"GL101", "GL201"}


def test_graph_command_formats():
    text = run_cli("graph", "fixtures/styles/s03_sequential_loop_append.py")
    assert text.returncode == 0
    assert "model Tower" in text.stdout and "net.0: Linear(in_features=32, out_features=64)" in text.stdout
    data = json.loads(run_cli("graph", "--format", "json", "fixtures/styles/s03_sequential_loop_append.py").stdout)
    assert data[0]["summary"]["activations"] == ["sigmoid"] * 7
    dot = run_cli("graph", "--format", "dot", "fixtures/styles/s03_sequential_loop_append.py").stdout
    assert dot.startswith("digraph gradlint {") and "->" in dot
    again = run_cli("graph", "--format", "dot", "fixtures/styles/s03_sequential_loop_append.py").stdout
    assert dot == again
    r = run_cli("graph", "fixtures/models/broken_syntax.py")
    assert r.returncode == 2 and "cannot parse" in r.stderr


def test_version_and_module_entry_point():
    r = run_cli("--version")
    assert r.returncode == 0 and re.search(r"gradlint, version \d+\.\d+", r.stdout)


def test_usage_error_exit_code():
    r = run_cli("check", "--output-format", "xml")
    assert r.returncode == 2


def test_a_missing_path_is_not_followed_by_no_findings_and_an_empty_folder_is_named(tmp_path):
    r = run_cli("check", "nosuch.py", cwd=tmp_path)
    assert r.returncode == 2 and "path does not exist: nosuch.py" in r.stderr and "No findings" not in r.stderr
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("not python\n")
    r = run_cli("check", "docs", cwd=tmp_path)
    assert r.returncode == 0
    assert "gradlint: warning: no Python files found under docs" in r.stderr
    (tmp_path / "docs" / "m.py").write_text("x = 1\n")
    assert "no Python files found" not in run_cli("check", "docs", cwd=tmp_path).stderr


def test_concise_carries_the_severity(project):
    project("bad.py", SIGMOID_STACK.format(noqa=""))
    r = run_cli("check", "--output-format", "concise", "bad.py", cwd=project.root)
    [line] = r.stdout.splitlines()
    assert re.match(r"bad\.py:6:\d+: GL101 \[error\] ", line)


def test_quiet_silent_verbose_and_color(project):
    project("bad.py", SIGMOID_STACK.format(noqa=""))
    normal = run_cli("check", "--output-format", "concise", "bad.py", cwd=project.root)
    quiet = run_cli("check", "-q", "--output-format", "concise", "bad.py", cwd=project.root)
    assert (
        quiet.returncode == 1
        and quiet.stdout == normal.stdout
        and quiet.stderr == ""
        and "Found 1 error" in normal.stderr
    )
    silent = run_cli("check", "--silent", "bad.py", "missing.py", cwd=project.root)
    assert silent.returncode == 2 and silent.stdout == "" and silent.stderr == ""
    assert run_cli("check", "-s", "bad.py", cwd=project.root).returncode == 1
    verbose = run_cli("check", "-v", "--no-cache", "bad.py", cwd=project.root)
    assert "gradlint: configuration: " in verbose.stderr and "gradlint: cache: off" in verbose.stderr
    assert "gradlint: checked bad.py" in verbose.stderr
    always = run_cli("check", "--color", "always", "bad.py", cwd=project.root)  # NO_COLOR is set by run_cli
    assert "\x1b[" in always.stdout
    never = run_cli("check", "--color", "never", "bad.py", cwd=project.root, env={"FORCE_COLOR": "1"})
    assert "\x1b[" not in never.stdout and "GL101" in never.stdout


def test_text_output_shows_paths_relative_to_the_working_directory(project):
    bad = project("bad.py", SIGMOID_STACK.format(noqa=""))
    absolute = str(project.root / "bad.py")
    r = run_cli("check", "--output-format", "concise", absolute, cwd=project.root)
    assert r.stdout.startswith("bad.py:6:"), r.stdout
    full = run_cli("check", absolute, cwd=project.root)
    assert full.stdout.startswith("bad.py:6:") and "6 |" in full.stdout  # the source lines still found
    # machine formats keep the path as given; outside the working directory it stays absolute
    assert f'"path": "{absolute}"' in run_cli("check", "--output-format", "json", absolute, cwd=project.root).stdout
    elsewhere = project.root / "elsewhere"
    elsewhere.mkdir()
    assert run_cli("check", "--output-format", "concise", absolute, cwd=elsewhere).stdout.startswith(absolute)
    del bad
