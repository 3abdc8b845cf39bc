"""``gradlint check -``: the source from standard input, named by ``--stdin-filename``."""

import textwrap

from conftest import ROOT, run_cli

SIGMOID = (ROOT / "fixtures" / "models" / "deep_sigmoid_mlp.py").read_text()
LSTM = (ROOT / "fixtures" / "models" / "lstm_classifier.py").read_text()


def test_stdin_is_linted_under_the_name_it_is_given(tmp_path):
    r = run_cli(
        "check", "--output-format", "concise", "--stdin-filename", "models/net.py", "-", cwd=tmp_path, input=SIGMOID
    )
    assert r.returncode == 1
    [line] = r.stdout.splitlines()
    assert line.startswith("models/net.py:26:27: GL101 ")
    assert "1 file checked" in r.stderr
    # without a name it is `-`; the full format shows the lines it read
    r = run_cli("check", "-", cwd=tmp_path, input=SIGMOID)
    assert "-:26:27: GL101" in r.stdout and "26 |" in r.stdout


def test_stdin_uses_the_configuration_and_per_file_ignores_of_its_name(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pyproject.toml").write_text(
        textwrap.dedent("""
        [tool.gradlint]
        per-file-ignores = {"legacy/*.py" = ["GL101", "GL301"]}
        """)
    )
    r = run_cli("check", "--stdin-filename", "sub/legacy/old.py", "-", cwd=tmp_path, input=SIGMOID)
    assert r.returncode == 0 and r.stdout == "", r.stdout
    r = run_cli("check", "--stdin-filename", "sub/new.py", "-", cwd=tmp_path, input=SIGMOID)
    assert r.returncode == 1 and "sub/new.py:26:27: GL101" in r.stdout


def test_suppressions_and_fixes_work_on_stdin(tmp_path):
    quiet = SIGMOID.replace(
        "class DeepSigmoidMLP(nn.Module):", "class DeepSigmoidMLP(nn.Module):  # gradlint: ignore[GL101]"
    )
    assert quiet != SIGMOID
    r = run_cli("check", "--stdin-filename", "net.py", "-", cwd=tmp_path, input=quiet)
    assert r.returncode == 0 and "GL101" not in r.stdout, r.stdout
    # --fix prints the fixed source, whole, to stdout; the count goes to stderr
    r = run_cli(
        "check",
        "--fix",
        "--unsafe-fixes",
        "--select",
        "GL401",
        "--stdin-filename",
        "train.py",
        "-",
        cwd=tmp_path,
        input=LSTM,
    )
    assert r.returncode == 0, r.stderr
    assert "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)" in r.stdout
    assert (
        r.stdout.replace("            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n", "") == LSTM
    )
    assert "Fixed 1 finding, 0 left." in r.stderr
    r = run_cli(
        "check",
        "--diff",
        "--unsafe-fixes",
        "--select",
        "GL401",
        "--stdin-filename",
        "train.py",
        "-",
        cwd=tmp_path,
        input=LSTM,
    )
    assert (
        r.returncode == 1
        and r.stdout.startswith("--- train.py")
        and "+            torch.nn.utils.clip_grad_norm_" in r.stdout
    )


def test_stdin_errors_are_clear(tmp_path):
    r = run_cli("check", "-", "other.py", cwd=tmp_path, input="x = 1\n")
    assert r.returncode == 2 and "cannot be checked together with other paths" in r.stderr
    r = run_cli("check", "--stdin-filename", "a.py", "a.py", cwd=tmp_path)
    assert r.returncode == 2 and "give `-` as the path" in r.stderr
    r = run_cli("check", "--stdin-filename", "broken.py", "-", cwd=tmp_path, input="import torch\nx = (\n")
    assert r.returncode == 1 and "broken.py:2:5: GL001" in r.stdout and "Traceback" not in r.stderr
