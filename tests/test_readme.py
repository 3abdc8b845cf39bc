"""The README shows real output: its example lines must be what gradlint prints now."""

import re

from conftest import ROOT, run_cli

README = (ROOT / "README.md").read_text()
#: the README and the reference pages it points to: what they show is real output too
DOCS = README + "".join(
    p.read_text(encoding="utf-8")
    for p in sorted((ROOT / "docs").glob("*.md"))
    if p.name not in ("rules.md", "calibration.md")
)


def test_readme_opens_with_the_two_commands():
    first_block = README.split("```", 2)[1]
    assert "make run" in first_block and "make test" in first_block


def test_the_readme_is_for_users_first():
    """After the two commands: what it finds (a real finding), install, pre-commit, CI and
    editors come before the reference material."""
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert headings[:5] == ["What it finds", "Install", "pre-commit", "In CI", "Editors"], headings
    first = README.split("## Install")[0]
    assert re.search(r"^fixtures/\S+:\d+:\d+: GL\d{3} ", first, re.M)
    # reference material lives in docs/, linked from the README
    for page in ("output-formats.md", "dynamic.md", "internals.md", "benchmarks.md"):
        assert (ROOT / "docs" / page).is_file() and f"(docs/{page})" in README
    # the rule docs speak to an installed user: no make targets of this repository
    from gradlint.rule import all_rules

    for rule in all_rules():
        assert "make calibrate" not in rule.documentation() and "make accuracy" not in rule.documentation(), rule.code


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


def _blocks():
    return re.findall(r"```(\w*)\n(.*?)```", DOCS, re.S)


def test_readme_commands_print_what_is_shown():
    """Every ``$ gradlint check ...`` block (static) prints exactly what the README shows."""
    import shlex

    checked = 0
    for _, block in _blocks():
        first, _, shown = block.partition("\n")
        if not first.startswith("$ gradlint check") or "--dynamic" in first:
            continue
        result = run_cli(*shlex.split(first)[2:], "--no-cache")
        assert result.stdout == shown, f"`{first}` prints something else now:\n{result.stdout}"
        checked += 1
    assert checked >= 3


def test_readme_github_annotations_are_real_output():
    actual = set(run_cli("check", "--output-format", "github", "fixtures/").stdout.splitlines())
    shown = re.findall(r"^(::(?:error|warning|notice) .*)$", DOCS, re.M)
    assert len(shown) >= 2
    for line in shown:
        assert line in actual, line


def test_readme_sarif_sample_is_a_result_of_a_document_that_validates():
    import json

    from test_reporters import sarif_schema_validator

    doc = json.loads(run_cli("check", "--output-format", "sarif", "fixtures/").stdout)
    sarif_schema_validator().validate(doc)
    shown = [json.loads(block) for lang, block in _blocks() if lang == "json" and '"ruleId"' in block]
    assert len(shown) == 1 and shown[0] in doc["runs"][0]["results"]


def test_the_readme_rules_table_lists_every_rule_with_its_levels():
    from gradlint.rule import all_rules

    rows = {m.group(1): m for m in re.finditer(r"^\| (GL\d{3}) \| ([a-z-]+) \| ([a-z/]+) \| .+ \|$", README, re.M)}
    for rule in all_rules():
        if rule.preview:  # documented in docs/rules.md; the README lists a rule once it is stable
            assert rule.code not in rows, f"{rule.code} is in preview and in the README's rules table"
            continue
        assert rule.code in rows, f"{rule.code} is not in the README's rules table"
        assert rows[rule.code].group(2) == rule.name and rows[rule.code].group(3) == "/".join(rule.levels()), rule.code
