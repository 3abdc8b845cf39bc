"""Layer 1: every rule's VALID/INVALID examples, and its documented example, are tests.

An example runs with only its own rule selected (and the rules its ``also`` names); an
Invalid one must report on exactly the lines it pins, and, where the rule has a fix, give
the fixed source it pins."""

import re

import pytest
from conftest import format_diagnostics

from gradlint.apply import fix_source
from gradlint.engine import analyse_source
from gradlint.rule import Invalid, Valid, all_rules
from gradlint.settings import Settings


def _cases(kind):
    for rule in all_rules():
        if rule.measured:  # measured by tests/test_dynamic.py
            continue
        for i, source in enumerate(getattr(rule, kind)):
            yield pytest.param(rule, source, id=f"{rule.code}-{kind.lower()}-{i}")


def _codes(source):
    """A documented example, linted with the rules in preview on too (they are documented)."""
    return analyse_source(source, "example.py", Settings(preview=True))


def _alone(rule, example) -> Settings:
    return Settings(select=(rule.code, *example.also), preview=True)


@pytest.mark.parametrize("rule,example", list(_cases("INVALID")))
def test_invalid_example_reports_on_its_lines_alone(rule, example):
    assert isinstance(example, Invalid), f"{rule.code}: write INVALID examples as Invalid(..., line=N)"
    diags = analyse_source(example, "example.py", _alone(rule, example))
    lines = tuple(sorted({d.line for d in diags if d.code == rule.code}))
    assert lines == example.lines, (
        f"{rule.code} should report on line(s) {example.lines} of:\n{example}\nit reports on {lines}:\n"
        f"{format_diagnostics(diags)}"
    )


@pytest.mark.parametrize("rule,example", [c for c in _cases("INVALID") if c.values[0].fix_safety is not None])
def test_invalid_example_of_a_fixing_rule_gives_its_fixed_source(rule, example):
    outcome = fix_source(example, "example.py", _alone(rule, example), unsafe=True)
    want = example if example.fixed is None else example.fixed
    assert outcome.source == want, f"{rule.code}: the fixes give\n{outcome.source}\ninstead of\n{want}"


@pytest.mark.parametrize("rule", [r for r in all_rules() if r.fix_safety is not None], ids=lambda r: r.code)
def test_a_fixing_rule_pins_at_least_one_fixed_source(rule):
    assert any(e.fixed is not None for e in rule.INVALID), f"{rule.code} has fixes but no example pins one"


@pytest.mark.parametrize("rule,example", list(_cases("VALID")))
def test_valid_example_is_silent_alone(rule, example):
    assert isinstance(example, Valid), f"{rule.code}: write VALID examples as Valid(...)"
    diags = analyse_source(example, "example.py", _alone(rule, example))
    assert not any(d.code == rule.code for d in diags), (
        f"{rule.code} should stay silent on:\n{example}\nactual diagnostics:\n{format_diagnostics(diags)}"
    )


@pytest.mark.parametrize("rule,example", list(_cases("INVALID")))
def test_invalid_example_reports_with_every_rule_enabled_too(rule, example):
    """Switching the other rules on does not take the finding away: causes have one claimant."""
    diags = analyse_source(example, "example.py", Settings(preview=True))
    assert any(d.code == rule.code for d in diags), format_diagnostics(diags)


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
