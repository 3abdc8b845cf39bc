"""Exit codes that can be tuned: --fail-level (and the config key), refuted findings."""

from conftest import ROOT, run_cli

RNN = str(ROOT / "fixtures" / "models" / "rnn_tanh.py")  # one GL102, severity info
SIGMOID = str(ROOT / "fixtures" / "models" / "deep_sigmoid_mlp.py")  # one GL101, an error
LSTM = str(ROOT / "fixtures" / "models" / "lstm_classifier.py")  # one GL401, a warning


def test_the_default_fail_level_is_warning_info_findings_do_not_fail():
    r = run_cli("check", "--output-format", "concise", RNN)
    assert r.returncode == 0 and "GL102" in r.stdout
    assert run_cli("check", LSTM).returncode == 1
    assert run_cli("check", SIGMOID).returncode == 1


def test_fail_level_flag():
    assert run_cli("check", "--fail-level", "info", RNN).returncode == 1
    assert run_cli("check", "--fail-level", "error", LSTM).returncode == 0
    assert run_cli("check", "--fail-level", "error", SIGMOID).returncode == 1
    r = run_cli("check", "--fail-level", "fatal", RNN)
    assert r.returncode == 2 and "'fatal' is not one of 'info', 'warning', 'error'" in r.stderr


def test_fail_level_config_key(tmp_path):
    (tmp_path / "m.py").write_text((ROOT / "fixtures" / "models" / "lstm_classifier.py").read_text())
    (tmp_path / "pyproject.toml").write_text('[tool.gradlint]\nfail-level = "error"\n')
    assert run_cli("check", "m.py", cwd=tmp_path).returncode == 0
    assert run_cli("check", "--fail-level", "warning", "m.py", cwd=tmp_path).returncode == 1  # the flag wins
    (tmp_path / "pyproject.toml").write_text('[tool.gradlint]\nfail-level = "errors"\n')
    r = run_cli("check", "m.py", cwd=tmp_path)
    assert r.returncode == 2 and "fail-level must be one of info, warning, error, not 'errors'" in r.stderr


def test_fail_level_applies_to_stdin_too():
    source = (ROOT / "fixtures" / "models" / "rnn_tanh.py").read_text()
    assert run_cli("check", "-", input=source).returncode == 0
    assert run_cli("check", "--fail-level", "info", "-", input=source).returncode == 1
