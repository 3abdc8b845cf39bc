"""Per-rule snapshots: what a user sees of each rule's Invalid examples, in the full format
(source excerpt, notes, help) and, where the rule has a fix, the diff ``--fix --diff`` shows.

They sit beside the per-model fixtures' snapshots, in ``fixtures/snapshots/rules/``, one file
per rule; refresh them with ``pytest --update-snapshots`` and review the diff. Each example runs
with only its rule selected (and the rules its ``also`` names), as in test_rule_examples.
"""

import pytest
from conftest import FIXTURES, ROOT

from gradlint.apply import fix_source
from gradlint.engine import analyse_source
from gradlint.fixes import unified_diff
from gradlint.reporters import render
from gradlint.rule import all_rules
from gradlint.settings import Settings

SNAPSHOTS = FIXTURES / "snapshots" / "rules"
RULES = [r for r in all_rules() if r.INVALID and not r.measured]


def _snapshot_of(rule) -> str:
    out = [f"# {rule.code} {rule.name}: its Invalid examples, each linted with only its rule\n"]
    for k, example in enumerate(rule.INVALID):
        path = f"{rule.code.lower()}_invalid_{k}.py"
        settings = Settings(select=(rule.code, *example.also), preview=True)
        lines = ", ".join(map(str, example.lines))
        also = f", with {', '.join(example.also)}" if example.also else ""
        out.append(f"\n## Invalid {k} (line {lines}{also})\n\n")
        diagnostics = [d for d in analyse_source(example, path, settings) if d.code == rule.code]
        out.append(render("full", diagnostics, sources={path: str(example)}))
        if rule.fix_safety is not None:
            fixed = fix_source(example, path, settings, unsafe=True).source
            out.append(f"\n### --fix --unsafe-fixes --diff ({rule.fix_safety})\n\n")
            out.append(unified_diff(path, example, fixed) or "(no fix applies)\n")
    return "".join(out)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_rule_snapshot(rule, update_snapshots):
    actual = _snapshot_of(rule)
    snapshot = SNAPSHOTS / f"{rule.code}-{rule.name}.txt"
    if update_snapshots:
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_text(actual, encoding="utf-8")
        return
    assert snapshot.exists(), f"missing snapshot {snapshot.relative_to(ROOT)}; run pytest --update-snapshots"
    expected = snapshot.read_text(encoding="utf-8")
    assert actual == expected, f"snapshot {snapshot.relative_to(ROOT)} differs (pytest --update-snapshots to accept)"


def test_no_snapshot_is_left_from_a_rule_that_is_gone():
    names = {f"{r.code}-{r.name}.txt" for r in RULES}
    stale = sorted(p.name for p in SNAPSHOTS.glob("*.txt") if p.name not in names)
    assert not stale, f"snapshots of no rule: {stale}"
