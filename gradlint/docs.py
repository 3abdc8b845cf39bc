"""Generate the rule reference (``docs/rules.md``) from the rules' own documentation."""

from __future__ import annotations

from gradlint.rule import all_rules


def render_rules_markdown() -> str:
    out = ["# gradlint rules\n\n", "Generated from each rule's documentation by `python -m gradlint.docs`; do not edit.\n\n"]
    out.append("| code | name | default severity | summary |\n|---|---|---|---|\n")
    for rule in all_rules():
        out.append(f"| [{rule.code}](#{rule.code.lower()}-{rule.name}) | {rule.name} | {rule.severity} | {rule.summary} |\n")
    for rule in all_rules():
        out.append(f"\n## {rule.code} {rule.name}\n\n")
        out.append(f"Default severity: {rule.severity}.")
        if rule.fix_safety:
            out.append(f" Fixes: {rule.fix_safety}.")
        out.append("\n\n")
        # demote the rule's own headings one level below the rule's
        out.append(rule.documentation().replace("\n## ", "\n### ").replace("## What it does", "### What it does", 1))
        out.append("\n")
    return "".join(out)


def main() -> None:
    from pathlib import Path

    target = Path("docs") / "rules.md"
    target.parent.mkdir(exist_ok=True)
    target.write_text(render_rules_markdown(), encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
