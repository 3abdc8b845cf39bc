"""Layer 3: fixes parse, converge, and carry the safety their rule declares."""

import ast

import libcst
import pytest
from conftest import FIXTURES

from gradlint.apply import fix_source
from gradlint.engine import analyse_source
from gradlint.fixes import apply_edits, lint_with_edits
from gradlint.rule import all_rules, rule_by_code
from gradlint.settings import Settings

FIXES = Settings(fixes=True)
SOURCES = [pytest.param(s, id=f"{r.code}-invalid-{i}") for r in all_rules() for i, s in enumerate(r.INVALID)]
SOURCES += [
    pytest.param(p.read_text(), id=p.name) for p in sorted(FIXTURES.rglob("*.py")) if p.name != "broken_syntax.py"
]


def _fixable(diags):
    return [d for d in diags if d.fix is not None]


@pytest.mark.parametrize("source", SOURCES)
def test_fixes_parse_converge_and_declare_safety(source):
    text = source
    for _ in range(12):
        fixable = _fixable(lint_with_edits(text, "f.py", FIXES))
        if not fixable:
            break
        for d in fixable:
            assert d.fix.applicability == rule_by_code(d.code).fix_safety, d
            assert d.fix.title and d.fix.edits, d
        # one fix per round: later spans may move
        text = apply_edits(text, fixable[0].fix.edits)
        ast.parse(text)
        libcst.parse_module(text)  # the edit engine accepts it too
    else:
        pytest.fail(f"fixes do not converge:\n{text}")
    assert not _fixable(lint_with_edits(text, "f.py", FIXES))


@pytest.mark.parametrize("source", SOURCES)
def test_fix_source_converges_to_a_parsing_file(source):
    outcome = fix_source(source, "f.py", unsafe=True)
    assert outcome.converged, outcome.source
    try:
        ast.parse(source)
    except SyntaxError:
        assert outcome.source == source  # a file that does not parse is left alone
        return
    ast.parse(outcome.source)
    libcst.parse_module(outcome.source)
    assert not _fixable(outcome.remaining), outcome.remaining
    # what is fixed is fixed for good: a second run changes nothing
    assert fix_source(outcome.source, "f.py", unsafe=True).source == outcome.source


def test_fix_declaration_without_fixes_asked_has_no_edits():
    """The static path declares fixes (title, safety, data) but computes no edits."""
    src = (FIXTURES / "models" / "constant_init_mlp.py").read_text()
    d = _fixable(analyse_source(src, "f.py"))[0]
    assert d.fix.edits == () and d.fix.data


def test_some_fix_is_exercised():
    fixed = set()
    for param in SOURCES:
        fixed |= {d.code for d in _fixable(lint_with_edits(param.values[0], "f.py", FIXES))}
    assert {"GL201", "GL401", "GL402"} <= fixed


def test_every_fixing_rule_declares_its_safety_and_fixer():
    for rule in all_rules():
        if callable(getattr(rule, "fix", None)):
            assert rule.fix_safety in ("safe", "unsafe"), rule.code
            assert "Fix safety" in rule.doc_sections(), rule.code


def test_constant_init_fix_matches_the_activation():
    src = (FIXTURES / "models" / "constant_init_mlp.py").read_text()
    d = [x for x in _fixable(lint_with_edits(src, "f.py", FIXES)) if x.code == "GL201"][0]
    new = apply_edits(src, d.fix.edits)
    assert 'nn.init.kaiming_normal_(m.weight, nonlinearity="relu")' in new
    assert "constant_(m.bias, 0.0)" in new  # biases untouched
    assert not [x for x in analyse_source(new, "f.py") if x.code == "GL201"]


def test_apply_edits_rejects_overlaps():
    from gradlint.diagnostics import Edit

    with pytest.raises(ValueError):
        apply_edits("abcdef\n", [Edit(1, 1, 1, 4, "x"), Edit(1, 3, 1, 5, "y")])
    assert apply_edits("abcdef\n", [Edit(1, 1, 1, 3, "X"), Edit(1, 5, 1, 6, "Y")]) == "XcdYf\n"


@pytest.mark.parametrize("source", SOURCES)
def test_every_fix_a_check_announces_is_one_fix_can_apply(source):
    """``check`` shows a fix (``= fix (unsafe): ...``, "1 fixable with --unsafe-fixes") without
    computing its edits; ``--fix`` then computes them. The two must agree: a rule offers no
    fix its fixer refuses (a constant init over ``self.parameters()``, biases included), and a
    finding moved to the call whose arguments cause it loses the fix of the class's code."""
    announced = {(d.line, d.column, d.code) for d in _fixable(analyse_source(source, "f.py"))}
    applicable = {(d.line, d.column, d.code) for d in _fixable(lint_with_edits(source, "f.py", FIXES))}
    assert announced == applicable
