"""Generate the rule reference (``docs/rules.md``) from the rules' own documentation."""

from __future__ import annotations

import json

from gradlint.rule import all_rules


def levels_markdown(rule) -> list[str]:
    """The levels a rule's findings can have, and when each applies, as markdown lines."""
    levels = rule.levels()
    if len(levels) == 1:
        return [f"Severity: **{next(iter(levels))}**."]
    return [
        f"Severity: **{'**, **'.join(levels)}**, by finding (the default is {rule.severity}):",
        "",
        *(f"- **{level}**: {when}" for level, when in levels.items()),
    ]


def rule_markdown(rule, heading: str = "#") -> str:
    """A rule's page: its title, levels, fixes and options, then its documentation (its own
    headings one level below ``heading``)."""
    lines = [f"{heading} {rule.code} {rule.name}", "", *levels_markdown(rule)]
    if rule.fix_safety:
        lines += ["", f"Fixes: {rule.fix_safety}."]
    if rule.options:
        lines += [
            "",
            f"Options (`[tool.gradlint.rules.{rule.code}]`): "
            + ", ".join(f"`{k} = {json.dumps(v)}`" for k, v in rule.options.items()),
        ]
    doc = rule.documentation().rstrip()
    sub = heading + "#"
    doc = "\n".join(sub + line[2:] if line.startswith("## ") else line for line in doc.splitlines())
    return "\n".join([*lines, "", doc, ""])


def render_rules_markdown() -> str:
    out = [
        "# gradlint rules\n\n",
        "Generated from each rule's documentation by `python -m gradlint.docs`; do not edit.\n\n",
    ]
    out.append("| code | name | severities | summary |\n|---|---|---|---|\n")
    for rule in all_rules():
        out.append(
            f"| [{rule.code}](#{rule.code.lower()}-{rule.name}) | {rule.name} | {'/'.join(rule.levels())} "
            f"| {rule.summary} |\n"
        )
    for rule in all_rules():
        out.append("\n" + rule_markdown(rule, heading="##"))
    return "".join(out)


def render_markdown(text: str, width: int = 100, color: bool = True) -> str:
    """Markdown as a terminal shows it (rich): headings, emphasis, lists, tables and
    highlighted code blocks; plain text when ``color`` is off."""
    import io

    from rich.console import Console
    from rich.markdown import Markdown

    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        emoji=False,
        legacy_windows=False,
    )
    console.print(Markdown(text, code_theme="ansi_dark", hyperlinks=False))
    return "".join(line.rstrip(" ") + "\n" for line in out.getvalue().splitlines())


def main() -> None:
    from pathlib import Path

    target = Path("docs") / "rules.md"
    target.parent.mkdir(exist_ok=True)
    target.write_text(render_rules_markdown(), encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
