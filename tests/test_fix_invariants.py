"""Layer 3: fixes parse, converge, and carry the safety their rule declares."""

import ast
from pathlib import Path

import libcst
import pytest

from gradlint.engine import lint_source
from gradlint.fixes import apply_edits
from gradlint.rule import all_rules, rule_by_code

from conftest import FIXTURES

SOURCES = [pytest.param(s, id=f"{r.code}-invalid-{i}") for r in all_rules() for i, s in enumerate(r.INVALID)]
SOURCES += [pytest.param(p.read_text(), id=p.name) for p in sorted(FIXTURES.rglob("*.py")) if p.name != "broken_syntax.py"]


def _fixable(diags):
    return [d for d in diags if d.fix is not None]


@pytest.mark.parametrize("source", SOURCES)
def test_fixes_parse_converge_and_declare_safety(source):
    text = source
    for _ in range(5):
        fixable = _fixable(lint_source(text, "f.py"))
        if not fixable:
            break
        for d in fixable:
            assert d.fix.applicability == rule_by_code(d.code).fix_safety, d
            assert d.fix.title and d.fix.edits
        # one fix per round, as --fix applies them: later spans may move
        text = apply_edits(text, fixable[0].fix.edits)
        ast.parse(text)
        libcst.parse_module(text)  # the edit engine accepts it too
    else:
        pytest.fail(f"fixes do not converge:\n{text}")
    assert not _fixable(lint_source(text, "f.py"))


def test_some_fix_is_exercised():
    fixed = 0
    for param in SOURCES:
        if _fixable(lint_source(param.values[0], "f.py")):
            fixed += 1
    assert fixed >= 3


def test_constant_init_fix_matches_the_activation():
    src = (FIXTURES / "models" / "constant_init_mlp.py").read_text()
    d = _fixable(lint_source(src, "f.py"))[0]
    new = apply_edits(src, d.fix.edits)
    assert 'nn.init.kaiming_normal_(m.weight, nonlinearity="relu")' in new
    assert "constant_(m.bias, 0.0)" in new  # biases untouched
    assert not [x for x in lint_source(new, "f.py") if x.code == "GL201"]


def test_apply_edits_rejects_overlaps():
    from gradlint.diagnostics import Edit

    with pytest.raises(ValueError):
        apply_edits("abcdef\n", [Edit(1, 1, 1, 4, "x"), Edit(1, 3, 1, 5, "y")])
    assert apply_edits("abcdef\n", [Edit(1, 1, 1, 3, "X"), Edit(1, 5, 1, 6, "Y")]) == "XcdYf\n"
