"""Layer 4: the rule catalogue itself — codes, names, docs, examples, fixtures."""

import re

from conftest import FIXTURES

from gradlint.rule import DOC_HEADINGS, REQUIRED_HEADINGS, all_rules


def test_rules_are_discovered():
    codes = [r.code for r in all_rules()]
    assert {"GL001", "GL101", "GL201"} <= set(codes)


def test_codes_unique_and_well_formed():
    codes = [r.code for r in all_rules()]
    assert len(codes) == len(set(codes))
    for code in codes:
        assert re.fullmatch(r"GL\d{3}", code), code


def test_names_unique_kebab_case():
    names = [r.name for r in all_rules()]
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"[a-z]+(-[a-z0-9]+)*", name), name
        assert not name.startswith(("use-", "avoid-", "please")), f"{name} gives an order"


def test_severity_and_summary():
    for rule in all_rules():
        assert rule.severity in ("error", "warning", "info"), rule.code
        assert rule.summary and not rule.summary.lower().startswith("please"), rule.code


def test_doc_headings_from_vocabulary_in_order():
    for rule in all_rules():
        headings = re.findall(r"^## (.+?)\s*$", rule.documentation(), re.M)
        assert headings, rule.code
        for h in headings:
            assert h in DOC_HEADINGS, f"{rule.code}: unknown heading {h!r}"
        order = [DOC_HEADINGS.index(h) for h in headings]
        assert order == sorted(order), f"{rule.code}: headings out of order {headings}"
        for h in REQUIRED_HEADINGS:
            assert h in headings, f"{rule.code}: missing ## {h}"
        if rule.fix_safety:
            assert "Fix safety" in headings, f"{rule.code} offers fixes but documents no ## Fix safety"
        if rule.options:
            assert "Options" in headings, f"{rule.code} has options but no ## Options"
            for opt in rule.options:
                assert f"`{opt}`" in rule.doc_sections()["Options"], f"{rule.code}: option {opt} undocumented"


def test_rules_have_examples():
    for rule in all_rules():
        if rule.code == "GL002":
            continue  # an internal error has no source that triggers it on purpose
        assert rule.INVALID, f"{rule.code} has no INVALID examples"
        assert rule.VALID, f"{rule.code} has no VALID examples"


def test_every_rule_has_a_fixture():
    marked = set()
    for path in FIXTURES.rglob("*.py"):
        text = path.read_text(errors="replace")
        marked |= set(re.findall(r"#\s*(?:error|warning|info):\s*(GL\d{3})", text))
        # findings only --dynamic makes (GL9xx): tests/test_dynamic.py measures these marks
        marked |= set(re.findall(r"#\s*measured:\s*(GL9\d\d)", text))
    for rule in all_rules():
        if rule.code == "GL002":
            continue
        assert rule.code in marked, f"no fixture marks an expected {rule.code}"


def test_generated_rule_docs_are_current(update_snapshots):
    from conftest import ROOT

    from gradlint.docs import render_rules_markdown

    target = ROOT / "docs" / "rules.md"
    actual = render_rules_markdown()
    if update_snapshots:
        target.write_text(actual, encoding="utf-8")
    assert target.read_text(encoding="utf-8") == actual, "docs/rules.md is stale: run python -m gradlint.docs"
