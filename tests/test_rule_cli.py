"""`gradlint rules` and `gradlint rule CODE`: the levels a rule's findings can have (and when),
markdown off a terminal, rendered and paged on one, as git pages."""

import json
import os
import pty
import select
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.cli import cli
from gradlint.docs import render_markdown, rule_markdown
from gradlint.rule import all_rules, rule_by_code
from gradlint.run import lint_paths

ROOT = Path(__file__).resolve().parent.parent


def test_every_finding_has_a_level_its_rule_declares():
    """The levels `gradlint rules` shows are the ones findings get: over the fixtures and every
    rule's invalid examples."""
    from gradlint.engine import analyse_source
    from gradlint.settings import Settings

    seen = {}
    for d in lint_paths([str(ROOT / "fixtures")], Settings(preview=True)).diagnostics:
        seen.setdefault(d.code, set()).add(d.severity)
    for rule in all_rules():
        for k, example in enumerate(rule.INVALID if not rule.measured else ()):
            for d in analyse_source(example, f"example_{k}.py", Settings(preview=True)):
                seen.setdefault(d.code, set()).add(d.severity)
    for code, levels in seen.items():
        declared = set(rule_by_code(code).levels())
        assert levels <= declared, f"{code} reports {levels - declared}, not declared in its severities"
    # several levels really occur: the table is not decoration
    assert {"error", "warning"} <= seen["GL101"] and {"error", "warning", "info"} <= seen["GL401"]


def test_rules_lists_each_rules_levels_and_why_they_differ():
    result = CliRunner().invoke(cli, ["rules"])
    assert result.exit_code == 0
    line = next(l for l in result.stdout.splitlines() if l.startswith("GL101"))
    assert "error/warning" in line
    assert next(l for l in result.stdout.splitlines() if l.startswith("GL302")).split()[2] == "warning"
    assert "gives each finding the one its numbers call for" in result.stdout and "--fail-level" in result.stdout
    data = json.loads(CliRunner().invoke(cli, ["rules", "--output-format", "json"]).stdout)
    gl401 = next(r for r in data if r["code"] == "GL401")
    assert list(gl401["severities"]) == ["error", "warning", "info"] and gl401["severity"] == "warning"


def test_rule_off_a_terminal_is_markdown():
    result = CliRunner().invoke(cli, ["rule", "GL201"])
    assert result.exit_code == 0
    out = result.stdout
    assert out.startswith("# GL201 constant-weight-init\n")
    assert "- **warning**: a constant init whose random biases" in out and "## Why is this bad?" in out
    assert "\x1b[" not in out


def test_rendered_markdown_has_no_markup_left():
    text = render_markdown(rule_markdown(rule_by_code("GL101")), width=80, color=True)
    assert "\x1b[1m" in text  # bold
    assert "## " not in text and "**" not in text and "```" not in text
    plain = render_markdown(rule_markdown(rule_by_code("GL101")), width=80, color=False)
    assert "\x1b[" not in plain and "What it does" in plain
    assert max(len(line) for line in plain.splitlines()) <= 80  # wrapped to the terminal


def _in_a_terminal(args, env, seconds=30) -> str:
    """Run gradlint in a pseudo-terminal; what the terminal shows."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: gradlint, with the pty as its terminal
        os.execve(sys.executable, [sys.executable, "-m", "gradlint", *args], env)
    out, end = b"", time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif os.waitpid(pid, os.WNOHANG) != (0, 0):
                break
    finally:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return out.decode("utf-8", "replace")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a pseudo-terminal")
def test_rule_on_a_terminal_is_rendered_and_paged(tmp_path):
    paged = tmp_path / "paged.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADLINT_PAGER": f"tee {paged}", "COLUMNS": "90", "LINES": "30"}
    env.pop("NO_COLOR", None)
    shown = _in_a_terminal(["rule", "GL101"], env)
    text = paged.read_text(encoding="utf-8")
    assert "What it does" in text and "## What it does" not in text  # rendered, through the pager
    assert "\x1b[" in text  # in colour: the pager is told to keep it (LESS=FRX, as git)
    assert "What it does" in shown
    # --no-pager prints it rendered, without the pager
    paged.unlink()
    shown = _in_a_terminal(["rule", "--no-pager", "GL101"], env)
    assert not paged.exists() and "What it does" in shown and "## What it does" not in shown
