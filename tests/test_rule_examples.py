"""Layer 1: every rule's VALID/INVALID examples, and its documented example, are tests."""

import re

import pytest
from conftest import format_diagnostics

from gradlint.engine import lint_source
from gradlint.rule import all_rules


def _cases(kind):
    for rule in all_rules():
        if rule.measured:  # measured by tests/test_dynamic.py
            continue
        for i, source in enumerate(getattr(rule, kind)):
            yield pytest.param(rule, source, id=f"{rule.code}-{kind.lower()}-{i}")


def _codes(source):
    return lint_source(source, "example.py")


@pytest.mark.parametrize("rule,source", list(_cases("INVALID")))
def test_invalid_example_reports(rule, source):
    diags = _codes(source)
    assert any(d.code == rule.code for d in diags), (
        f"{rule.code} should report on:\n{source}\nactual diagnostics:\n{format_diagnostics(diags)}"
    )


@pytest.mark.parametrize("rule,source", list(_cases("VALID")))
def test_valid_example_is_silent(rule, source):
    diags = _codes(source)
    assert not any(d.code == rule.code for d in diags), (
        f"{rule.code} should stay silent on:\n{source}\nactual diagnostics:\n{format_diagnostics(diags)}"
    )


def _doc_blocks(rule):
    sections = rule.doc_sections()
    example = sections.get("Example", "")
    blocks = re.findall(r"```python\n(.*?)```", example, re.S)
    before, _, after = example.partition("Use instead:")
    bad = re.findall(r"```python\n(.*?)```", before, re.S)
    good = re.findall(r"```python\n(.*?)```", after, re.S)
    return blocks, bad, good


# a measured rule's (GL9xx) examples are measured by tests/test_dynamic.py instead
@pytest.mark.parametrize("rule", [r for r in all_rules() if r.code != "GL002" and not r.measured], ids=lambda r: r.code)
def test_doc_example_fires_and_use_instead_does_not(rule):
    _, bad, good = _doc_blocks(rule)
    assert bad, f"{rule.code} documents no example"
    for source in bad:
        diags = _codes(source)
        assert any(d.code == rule.code for d in diags), (
            f"doc example of {rule.code} does not fire:\n{source}\n{format_diagnostics(diags)}"
        )
    assert good, f"{rule.code} documents no 'Use instead:' example"
    for source in good:
        diags = _codes(source)
        assert not any(d.code == rule.code for d in diags), (
            f"'Use instead' of {rule.code} fires:\n{source}\n{format_diagnostics(diags)}"
        )
