"""The CLI as a CI step and a fixer: output files, statistics, --fix/--diff/--show-fixes."""

import json

import pytest
from click.testing import CliRunner
from test_cli import CONSTANT, SIGMOID_STACK

from gradlint.cli import cli

LSTM_LOOP = """import torch as T
import torch.nn as nn


class Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(8, 32)  # the recurrent core
        self.out = nn.Linear(32, 1)

    def forward(self, x):
        return self.out(self.rnn(x)[0][-1])


model = Seq()
opt = T.optim.SGD(model.parameters(), lr=0.1)
for x, y in []:
    opt.zero_grad()
    loss = (model(x) - y).pow(2).mean()
    loss.backward()   # keep this comment
    opt.step()
"""


@pytest.fixture
def proj(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GRADLINT_OUTPUT_FORMAT", raising=False)
    (tmp_path / "tower.py").write_text(SIGMOID_STACK.format(noqa=""))
    (tmp_path / "seq.py").write_text(LSTM_LOOP)
    return tmp_path


def run(*args):
    return CliRunner().invoke(cli, ["check", "--no-cache", "-j", "1", *args])


def test_output_file_gets_the_report_and_stdout_stays_empty(proj):
    r = run("--output-format", "sarif", "-o", "gradlint.sarif", ".")
    assert r.exit_code == 1 and r.stdout == ""
    doc = json.loads((proj / "gradlint.sarif").read_text())
    assert {res["ruleId"] for res in doc["runs"][0]["results"]} == {"GL101", "GL401"}
    assert "Found 1 error, 1 warning in 2 files" in r.stderr


def test_output_file_that_cannot_be_written_exits_2(proj):
    r = run("-o", str(proj / "missing" / "dir" / "x.txt"), ".")
    assert r.exit_code == 2 and "cannot write" in r.stderr


def test_statistics(proj):
    r = run("--statistics", ".")
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    # GL401's fix is unsafe: marked only when --unsafe-fixes would apply it
    assert len(lines) == 2 and "GL101" in lines[0] + lines[1] and "[*]" not in r.stdout
    lines = run("--statistics", "--unsafe-fixes", ".").stdout.splitlines()
    assert "[*]" in next(l for l in lines if "GL401" in l)


def test_exit_zero(proj):
    assert run("--exit-zero", ".").exit_code == 0


def test_diff_writes_nothing_and_exits_1(proj):
    before = (proj / "seq.py").read_text()
    r = run("--diff", "--unsafe-fixes", ".")
    assert r.exit_code == 1
    assert (proj / "seq.py").read_text() == before
    assert "+    T.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)" in r.stdout
    assert r.stdout.startswith("--- seq.py\n+++ seq.py\n")
    assert "Would fix 1 finding in 1 file." in r.stderr


def test_diff_without_unsafe_fixes_has_nothing_to_show(proj):
    r = run("--diff", ".")
    assert r.exit_code == 0 and r.stdout == "" and "No fixes available." in r.stderr


def test_fix_applies_unsafe_fixes_only_when_asked(proj):
    before = (proj / "seq.py").read_text()
    r = run("--fix", ".")
    assert (proj / "seq.py").read_text() == before  # GL401's fix is unsafe
    assert "1 fixable with --unsafe-fixes" in r.stderr and r.exit_code == 1
    r = run("--fix", "--unsafe-fixes", "--show-fixes", ".")
    after = (proj / "seq.py").read_text()
    assert (
        "    loss.backward()   # keep this comment\n    T.nn.utils.clip_grad_norm_(model.parameters(),"
        " max_norm=1.0)\n    opt.step()\n" in after
    )
    assert "import torch\n" not in after  # the alias is used, no import added
    assert "Fixed 1 finding:" in r.stderr and "1 × GL401" in r.stderr
    assert r.exit_code == 1  # the sigmoid stack has no fix and is still reported
    assert "GL401" not in r.stdout


def test_fix_converges_to_a_clean_file_and_exit_0(proj):
    (proj / "tower.py").unlink()
    (proj / "const.py").write_text(CONSTANT.format(noqa="  # noqa: GL101"))
    r = run("--fix", "--unsafe-fixes", ".")
    assert r.exit_code == 0, r.output
    text = (proj / "const.py").read_text()
    assert "kaiming_normal_(self.a.weight" in text and "noqa" not in text
    assert run(".").exit_code == 0


def test_fix_config_key(proj):
    (proj / "gradlint.toml").write_text("fix = true\nunsafe-fixes = true\n")
    run(".")
    assert "clip_grad_norm_" in (proj / "seq.py").read_text()


def test_a_file_changed_on_disk_while_fixing_is_left_alone(proj, monkeypatch):
    import gradlint.apply

    real = gradlint.apply.fix_source

    def racing(text, path, *a, **kw):
        outcome = real(text, path, *a, **kw)
        with open(path, "a") as fh:  # someone saves the file meanwhile
            fh.write("# edited in the editor\n")
        return outcome

    monkeypatch.setattr(gradlint.apply, "fix_source", racing)
    r = run("--fix", "--unsafe-fixes", "seq.py")
    text = (proj / "seq.py").read_text()
    assert text.endswith("# edited in the editor\n") and "clip_grad_norm_" not in text
    assert "changed on disk while it was being fixed" in r.stderr


def test_server_without_pygls_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pygls(name, *args, **kwargs):
        if name == "pygls" or name.startswith("pygls."):
            raise ImportError("No module named 'pygls'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pygls)
    r = CliRunner().invoke(cli, ["server"])
    assert r.exit_code == 2 and "pip install 'torch-gradlint[lsp]'" in r.stderr


def test_diff_on_a_missing_path_is_an_error(proj):
    r = run("--diff", "missing.py")
    assert r.exit_code == 2 and "path does not exist: missing.py" in r.stderr
