"""The vocabularies (gradlint.vocab): members are their text, code names the members."""

import ast
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from gradlint.diagnostics import Diagnostic, Fix
from gradlint.graph.builder import build_graphs
from gradlint.graph.model import Span
from gradlint.rule import RuleContext, all_rules
from gradlint.vocab import (
    WEIGHT_CARRYING,
    Applicability,
    Category,
    Confidence,
    Hazard,
    ModelKind,
    Probe,
    Severity,
    Verdict,
    Vocab,
)

ROOT = Path(__file__).resolve().parent.parent
VOCABS = [c for c in vars(__import__("gradlint.vocab", fromlist=["x"])).values() if isinstance(c, type)]
VOCABS = [c for c in VOCABS if issubclass(c, Vocab) and c is not Vocab]


@pytest.mark.parametrize("vocab", VOCABS, ids=lambda v: v.__name__)
def test_a_member_is_its_text_everywhere_text_goes(vocab):
    for member in vocab:
        assert member == member.value and hash(member) == hash(member.value)
        assert str(member) == f"{member}" == f"{member:s}" == member.value
        assert json.dumps({"k": member}) == json.dumps({"k": member.value})
        assert vocab(member.value) is member
        assert " ".join([member]) == member.value
    assert vocab.values() == tuple(m.value for m in vocab)


def test_severities_come_most_severe_first_as_rules_list_their_levels():
    assert list(Severity) == ["error", "warning", "info"]


def test_diagnostics_turn_text_into_members_and_refuse_other_words():
    d = Diagnostic("m.py", 1, 1, 1, 2, "GL101", "x", "error", "m", confidence="heuristic", hazard="dead")
    assert d.severity is Severity.ERROR and d.confidence is Confidence.HEURISTIC and d.hazard is Hazard.DEAD
    assert Fix("t", "unsafe").applicability is Applicability.UNSAFE
    with pytest.raises(ValueError):
        Diagnostic("m.py", 1, 1, 1, 2, "GL101", "x", "fatal", "m")
    with pytest.raises(ValueError):
        Fix("t", "maybe")


def test_every_layer_of_the_fixtures_has_a_category_member():
    seen = set()
    for path in sorted((ROOT / "fixtures").rglob("*.py")):
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue
        for graph in build_graphs(tree, str(path)):
            for layer in graph.layers():
                assert type(layer.category) is Category, (path, layer.name, layer.category)
                seen.add(layer.category)
    assert WEIGHT_CARRYING & seen and Category.ACTIVATION in seen and Category.NORM in seen


def test_a_rule_may_report_only_the_probes_it_declares():
    rule = SimpleNamespace(code="GL999", name="x", severity=Severity.WARNING, options={}, probes=(Probe.VANISHING,))
    ctx = RuleContext("m.py", ["x"], rule)
    ctx.graph = SimpleNamespace(name="M")
    ctx.report(Span(1, 0, 1, 1), "fine", expect=Probe.VANISHING)
    with pytest.raises(ValueError, match="do not declare"):
        ctx.report(Span(1, 0, 1, 1), "undeclared", expect=Probe.DEAD)
    with pytest.raises(ValueError, match="do not declare"):
        ctx.report(Span(1, 0, 1, 1), "through a target", target=(("model", "M"), ("expect", "symmetric")))


def test_rules_declare_members_and_confirmable_follows_the_probes():
    for rule in all_rules():
        assert type(rule.severity) is Severity
        assert all(type(level) is Severity for level in rule.levels())
        assert all(type(p) is Probe for p in rule.probes)
        assert rule.confirmable == bool(rule.probes)
        assert rule.fix_safety is None or type(rule.fix_safety) is Applicability
        if rule.measured:
            assert type(rule.measures) is Hazard and rule.measured_help
    assert {r.measures for r in all_rules() if r.measured} == {Hazard.VANISHING, Hazard.EXPLODING, Hazard.DEAD}


def _vocabulary_words() -> set[str]:
    vocabs = (Severity, Confidence, Category, Probe, Applicability, Hazard, ModelKind, Verdict)
    return {m.value for vocab in vocabs for m in vocab} - {"none"}


FIELDS = {"severity", "confidence", "category", "hazard", "applicability", "expect", "fix_safety", "verdict"}


def _compared_field(node) -> str | None:
    if isinstance(node, ast.Attribute) and node.attr in FIELDS:
        return node.attr
    if isinstance(node, ast.Name) and node.id in FIELDS:
        return node.id
    return None


@pytest.mark.parametrize("folder", ["gradlint", "rules"])
def test_no_code_compares_a_vocabulary_field_with_a_bare_string_or_a_repr(folder):
    """``layer.category == "norm"`` or ``repr(v) == "UNKNOWN"`` is a typo waiting to happen:
    code compares with the members."""
    words = _vocabulary_words()
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            consts = []
            for side in sides:
                if isinstance(side, ast.Constant) and isinstance(side.value, str):
                    consts.append(side.value)
                elif isinstance(side, (ast.Tuple, ast.Set, ast.List)):
                    consts += [e.value for e in side.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if any(isinstance(s, ast.Call) and getattr(s.func, "id", None) == "repr" for s in sides) and consts:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: repr() compared with text")
            if any(_compared_field(s) for s in sides) and set(consts) & words:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "\n".join(found)
