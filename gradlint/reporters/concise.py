"""``path:line:col: CODE message`` — one line per finding, for grep, pre-commit and editors."""

from __future__ import annotations


from gradlint.reporters import verdict_line


def render(diagnostics, **_) -> str:
    out = []
    for d in diagnostics:
        out.append(f"{d.path}:{d.line}:{d.column}: {d.code} {d.message}\n")
        verdict = verdict_line(d)
        if verdict:
            out.append(f"   {verdict}\n")
    return "".join(out)
