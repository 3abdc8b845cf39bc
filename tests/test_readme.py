"""The README shows real output: its example lines must be what gradlint prints now."""

import re

from conftest import ROOT, run_cli

README = (ROOT / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    first_block = README.split("```", 2)[1]
    assert "make run" in first_block and "make test" in first_block


def test_readme_finding_lines_are_real_output():
    full = run_cli("check", "fixtures/")
    concise = run_cli("check", "--output-format", "concise", "fixtures/")
    shown = re.findall(r"^(fixtures/\S+:\d+:\d+: GL\d{3} .*)$", README, re.M)
    assert len(shown) >= 4
    actual = set(full.stdout.splitlines()) | set(concise.stdout.splitlines())
    for line in shown:
        assert line in actual, f"README line is not what gradlint prints now:\n{line}"
    # the source excerpts and notes shown under the findings are real too
    for block in re.findall(r"```\n(fixtures/models/.*?)```", README, re.S):
        for line in block.splitlines():
            if line.strip() in ("...",) or line.startswith("Found "):
                continue
            assert line in full.stdout.splitlines(), f"README excerpt line not in output: {line!r}"
    summary = re.search(r"^Found .* files checked in [\d.]+ s\.$", README, re.M).group(0)
    expected = re.sub(r"in [\d.]+ s\.$", "", summary)
    assert full.stderr.strip().startswith(expected), full.stderr
